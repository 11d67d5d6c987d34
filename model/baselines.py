"""Baselines at the same bits per weight, with everything they store counted.

``kmeans_per_layer``
    Classic per-layer vector quantization: each layer's channel-normalized sub-vectors (the
    same D and normalization as VQ4ALL) get their own k-means codebook, stored in int8 next to
    the indices. ``k`` is the largest power of two whose indices plus codebook fit the budget
    of bits per weight, so a small layer gets a small codebook.
``uniform_per_channel``
    Symmetric uniform quantization with ``2**bits`` levels per output channel
    (``(i + 0.5) * step`` for ``i`` in ``[-2**(bits-1), 2**(bits-1))``), the step chosen per
    channel to minimise the squared error; one 32-bit scale per channel.

Both are post-training: no retraining, which is the point of comparison with VQ4ALL's
training. Each returns the quantized model (BatchNorm folded) and the bits it stores for its
weights, so that bits per weight are measured, not assumed.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from model.codebook import channel_rows, compressible_layers
from model.fold import fold_batchnorm

__all__ = ["kmeans_per_layer", "uniform_per_channel", "weight_count"]

#: Bits of one stored per-channel scale (float32).
SCALE_BITS = 32


def weight_count(model: nn.Module) -> int:
    """Weights of the Linear/Conv2d layers (biases and norms are not compressed by anyone)."""
    return sum(layer.weight.numel() for layer in compressible_layers(model).values())


def _lloyd(
    vectors: torch.Tensor, k: int, iterations: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    centers = vectors[torch.randperm(len(vectors), generator=generator)[:k]].clone()
    for _ in range(iterations):
        assign = torch.cdist(vectors, centers).argmin(dim=1)
        sums = torch.zeros_like(centers).index_add_(0, assign, vectors)
        counts = torch.bincount(assign, minlength=k).to(vectors.dtype)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
    return centers, torch.cdist(vectors, centers).argmin(dim=1)


def kmeans_per_layer(
    model: nn.Module,
    D: int = 8,  # noqa: N803 - the paper's name
    bits_per_weight: float = 2.0,
    iterations: int = 25,
    seed: int = 0,
) -> tuple[nn.Module, int]:
    """Per-layer k-means VQ within ``bits_per_weight``; returns the model and its stored bits
    (indices, int8 codebooks and per-channel scales)."""
    generator = torch.Generator().manual_seed(seed)
    quantized = fold_batchnorm(copy.deepcopy(model))
    total_bits = 0
    with torch.no_grad():
        for layer in compressible_layers(quantized).values():
            rows, alpha = channel_rows(layer.weight)
            out_channels, inputs = rows.shape
            blocks = -(-inputs // D)
            vectors = nn.functional.pad(rows / alpha[:, None], (0, blocks * D - inputs)).reshape(
                -1, D
            )
            budget = bits_per_weight * layer.weight.numel()
            k = 2
            while (
                k * 2 <= len(vectors) and len(vectors) * math.log2(k * 2) + k * 2 * D * 8 <= budget
            ):
                k *= 2
            centers, assign = _lloyd(vectors, k, iterations, generator)
            scale = centers.abs().max() / 127
            centers = torch.round(centers / scale) * scale  # the int8 codebook it stores
            rows = centers[assign].reshape(out_channels, blocks * D)[:, :inputs] * alpha[:, None]
            layer.weight.copy_(rows.reshape(layer.weight.shape).to(layer.weight.dtype))
            total_bits += len(vectors) * int(math.log2(k)) + k * D * 8 + out_channels * SCALE_BITS
    return quantized, total_bits


def uniform_per_channel(model: nn.Module, bits: int = 2) -> tuple[nn.Module, int]:
    """Per-channel symmetric uniform quantization; returns the model and its stored bits."""
    quantized = fold_batchnorm(copy.deepcopy(model))
    levels = 2 ** (bits - 1)
    total_bits = 0
    with torch.no_grad():
        for layer in compressible_layers(quantized).values():
            rows, _ = channel_rows(layer.weight)
            peak = rows.abs().max(dim=1, keepdim=True).values.clamp_min(1e-12)
            best, best_error = rows, torch.full((rows.shape[0], 1), float("inf"), dtype=rows.dtype)
            for fraction in torch.linspace(0.05, 1.0, 40, dtype=rows.dtype):
                step = fraction * peak / (levels - 0.5)
                q = (torch.floor(rows / step).clamp(-levels, levels - 1) + 0.5) * step
                error = (q - rows).pow(2).sum(dim=1, keepdim=True)
                better = error < best_error
                best = torch.where(better, q, best)
                best_error = torch.where(better, error, best_error)
            layer.weight.copy_(best.reshape(layer.weight.shape).to(layer.weight.dtype))
            total_bits += rows.numel() * bits + rows.shape[0] * SCALE_BITS
    return quantized, total_bits
