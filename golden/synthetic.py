"""Seeded random codebooks, layers and activations for tests, the demo and benchmarks.

The random codebook reserves three rows so that tests can reach the extremes of the
arithmetic: row 0 is all zeros, row 1 all -128 and row 2 all 127.
"""

from __future__ import annotations

import math

import numpy as np

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.golden.layer import LayerProgram
from vq4all.golden.numerics import (
    MULT_MAX,
    SHIFT_MAX,
    accumulator_range,
    activation_range,
    product_max,
)

__all__ = [
    "ZERO_ROW",
    "MIN_ROW",
    "MAX_ROW",
    "random_activations",
    "random_codebook",
    "random_layer",
]

ZERO_ROW, MIN_ROW, MAX_ROW = 0, 1, 2


def random_codebook(K: int, D: int, seed: int) -> Codebook:  # noqa: N803 - the paper's names
    """A uniform random int8 codebook with the reserved extreme rows (K >= 4)."""
    if K < 4:
        raise InputError(f"K={K!r} leaves no room for the reserved rows")
    codewords = np.random.default_rng(seed).integers(-128, 128, size=(K, D), dtype=np.int8)
    codewords[ZERO_ROW] = 0
    codewords[MIN_ROW] = -128
    codewords[MAX_ROW] = 127
    return Codebook(codewords, scale=1 / 128, provenance={"kind": "random", "seed": seed})


def random_activations(
    rng: np.random.Generator, shape: tuple[int, ...], extreme: int | None = None, bits: int = 8
) -> np.ndarray:
    """``bits``-wide activations (int8 or int16), uniform, or all equal to ``extreme``."""
    dtype = np.dtype(f"int{bits}")
    if extreme is not None:
        return np.full(shape, extreme, dtype=dtype)
    low, high = activation_range(bits)
    return rng.integers(low, high + 1, size=shape, dtype=dtype)


def random_layer(
    codebook: Codebook,
    out_features: int,
    in_features: int,
    relu: bool,
    rng: np.random.Generator,
    extreme_row: int | None = None,
    activation_bits: int = 8,
) -> LayerProgram:
    """A random linear layer whose outputs spread over the range of its ``activation_bits``.

    With ``extreme_row`` every index is that row and the bias is the largest the accumulator
    bound allows, so the accumulator reaches its maximum magnitude.
    """
    blocks = -(-in_features // codebook.D)
    padded = blocks * codebook.D
    half_range = -activation_range(activation_bits)[0]
    if extreme_row is None:
        # Uniform entries of [-h, h) have a standard deviation of about h / sqrt(3) (74 for
        # int8), so a typical accumulator has one of about sqrt(N) * 74 * h / sqrt(3).
        typical = math.sqrt(padded) * 74 * half_range / math.sqrt(3)
        indices = rng.integers(0, codebook.K, size=(out_features, blocks), dtype=np.int32)
        bias = rng.integers(-typical, typical + 1, size=out_features).astype(np.int64)
        mult = rng.integers(2**14, MULT_MAX + 1, size=out_features, dtype=np.int32)
        # Scale it to about a third of the output range (40 steps for int8), so that few
        # outputs saturate.
        steps = half_range * 40 / 128
        shift = np.clip(np.round(np.log2(mult * typical / steps)), 1, SHIFT_MAX).astype(np.int32)
    else:
        indices = np.full((out_features, blocks), extreme_row, dtype=np.int32)
        signs = np.where(np.arange(out_features) % 2 == 0, 1, -1)
        largest = accumulator_range(activation_bits)[1] - padded * product_max(activation_bits)
        bias = (signs * largest).astype(np.int64)
        mult = rng.integers(0, MULT_MAX + 1, size=out_features, dtype=np.int32)
        mult[0] = MULT_MAX
        shift = rng.integers(1, SHIFT_MAX + 1, size=out_features, dtype=np.int32)
    return LayerProgram(
        codebook_sha256=codebook.sha256,
        codebook_size=codebook.K,
        codeword_length=codebook.D,
        in_features=in_features,
        indices=indices,
        bias=bias,
        mult=mult,
        shift=shift,
        relu=relu,
        activation_bits=activation_bits,
    )
