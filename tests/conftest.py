"""Shared fixtures: a seeded random codebook and generator, and a scratch directory."""

from __future__ import annotations

import numpy as np
import pytest

from golden.synthetic import random_codebook

#: The seed of every randomised test; printed so that a failure can be replayed.
SEED = 20241209


def pytest_report_header() -> str:
    return f"random seed: {SEED} (tests/conftest.py)"


@pytest.fixture(scope="session")
def seed() -> int:
    return SEED


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def codebook(seed: int):
    return random_codebook(256, 8, seed)
