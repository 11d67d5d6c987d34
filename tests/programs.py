"""Small network programs with random weights, for tests that need a program quickly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from golden.artifacts import save_codebook
from golden.network import FlattenOp, LayerOp, NetworkProgram, save_network
from golden.synthetic import random_codebook, random_layer

__all__ = ["write_digits_program"]


def write_digits_program(directory: Path, seed: int, name: str = "network") -> Path:
    """A network program for 8x8 digits (flatten, 64 -> 24 ReLU -> 10) with random weights,
    saved as ``{name}.safetensors`` beside its K=256 codebook (of ``seed``); returns its
    path."""
    codebook = random_codebook(256, 8, seed)
    rng = np.random.default_rng(seed)
    hidden = dataclasses.replace(
        random_layer(codebook, 24, 64, True, rng), input_scale=0.01, output_scale=0.1
    )
    logits = dataclasses.replace(
        random_layer(codebook, 10, 24, False, rng), input_scale=0.1, output_scale=0.2
    )
    graph = [FlattenOp(input=0), LayerOp(1, 0, "hidden"), LayerOp(2, 1, "logits")]
    program = NetworkProgram(codebook.sha256, 0.01, (1, 8, 8), [hidden, logits], graph, "digits")
    save_codebook(directory / "codebook.safetensors", codebook)
    save_network(directory / f"{name}.safetensors", program)
    return directory / f"{name}.safetensors"
