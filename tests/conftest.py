"""Shared fixtures: a seeded random codebook and generator, and, for the tests that need real
networks, the zoo trained on digits, a universal codebook and compressed networks."""

from __future__ import annotations

import numpy as np
import pytest

from vq4all.golden.synthetic import random_codebook

#: The seed of every randomised test; printed so that a failure can be replayed.
SEED = 20241209
#: The universal codebook's sources. Every other zoo network (rescnn with its residual add,
#: dscnn with its depthwise layer) is compressed against a codebook that never saw it.
SOURCES = ("mlp", "cnn")


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


@pytest.fixture(scope="session")
def digits():
    from vq4all.model.workloads.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def zoo(digits, tmp_path_factory):
    """Every zoo network trained on digits (in a weight cache of this session's own)."""
    from vq4all.model.workloads.zoo import ZOO, trained

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VQ4ALL_CACHE", str(cache))
        return {name: trained(name, digits, epochs=15, progress=False) for name in ZOO}


@pytest.fixture(scope="session")
def universal(zoo):
    """The universal codebook (K=2^16, D=8) of the SOURCES."""
    from vq4all.model.codebook import build_codebook

    return build_codebook({name: zoo[name] for name in SOURCES}, K=65536, D=8, seed=0)


@pytest.fixture(scope="session")
def compressed_zoo(zoo, universal, digits):
    """``compressed_zoo(name)``: zoo network ``name`` compressed against ``universal`` with the
    default configuration, once per session."""
    from vq4all.model.compress import compress

    done = {}

    def get(name: str):
        if name not in done:
            done[name] = compress(
                zoo[name], universal, digits.train_x, digits.train_y, progress=False
            )
        return done[name]

    return get


@pytest.fixture(scope="session")
def branchy(digits):
    """A network of a user's own (tests/programs.py's Branchy: not an nn.Sequential), trained
    on digits."""
    import torch

    from tests.programs import Branchy
    from vq4all.model.workloads.zoo import train_float

    torch.manual_seed(0)
    return train_float(Branchy(), digits, epochs=8, progress=False)


@pytest.fixture(scope="session")
def model_file(branchy, tmp_path_factory):
    """A folder with ``net.py`` (Branchy's source and a factory ``make``) and ``net.pt`` (its
    trained weights), as a user would give them."""
    import inspect

    import torch

    from tests.programs import Branchy, write_model_file

    directory = tmp_path_factory.mktemp("user")
    write_model_file(directory / "net.py", inspect.getsource(Branchy), "Branchy")
    torch.save(branchy.state_dict(), directory / "net.pt")
    return directory
