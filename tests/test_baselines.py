"""The baselines store what they claim, at the bits of VQ4ALL that they are compared with."""

from __future__ import annotations

import pytest
import torch

from vq4all.golden.synthetic import random_codebook
from vq4all.model.baselines import (
    _codebook_size,
    kmeans_codebooks,
    uniform_per_channel,
    weight_count,
)
from vq4all.model.codebook import compressible_layers
from vq4all.model.vq import frozen_at_nearest, prepare_vq, stored_bits
from vq4all.model.workloads.zoo import build

SHAPE = (1, 8, 8)


def _kmeans_cost(vectors: int, D: int, k: int) -> int:  # noqa: N803
    return vectors * (k - 1).bit_length() + k * D * 8


@pytest.mark.parametrize(
    "vectors, budget", [(16, 1000), (300, 300 * 16), (160_000, 160_000 * 16), (5, 10**9)]
)
def test_kmeans_codebook_is_the_largest_that_fits(vectors: int, budget: int) -> None:
    k = _codebook_size(vectors, 8, budget)
    assert 2 <= k <= vectors
    assert _kmeans_cost(vectors, 8, k) <= budget or k == 2
    assert k == vectors or _kmeans_cost(vectors, 8, k + 1) > budget


def test_kmeans_stores_no_more_than_vq4all() -> None:
    model = build("cnn", SHAPE)
    codebook = random_codebook(65536, 8, seed=0)
    vq4all_bits = stored_bits(prepare_vq(model, codebook))
    quantized = frozen_at_nearest(model, kmeans_codebooks(model, D=8, bits_per_weight=2.0))
    bits = stored_bits(quantized)
    assert 0.9 * vq4all_bits < bits <= vq4all_bits
    with torch.no_grad():
        assert quantized(torch.zeros(2, *SHAPE)).shape == (2, 10)


def test_uniform_counts_levels_and_scales() -> None:
    model = build("mlp", SHAPE)
    quantized, bits = uniform_per_channel(model, bits=2)
    channels = sum(layer.weight.shape[0] for layer in compressible_layers(model).values())
    assert bits == 2 * weight_count(model) + 32 * channels
    for layer in compressible_layers(quantized).values():
        rows = layer.weight.detach().reshape(layer.weight.shape[0], -1)
        assert max(len(torch.unique(row)) for row in rows) <= 4
