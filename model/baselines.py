"""Baselines at the same bits per weight, with everything they store counted.

``kmeans_codebooks``
    Classic per-layer vector quantization: each layer's channel-normalized sub-vectors (the
    same D and normalization as VQ4ALL) get their own k-means codebook, stored in int8 next to
    the indices. Its budget is what VQ4ALL stores for the same layer at ``bits_per_weight``:
    ``bits_per_weight * D`` bits per sub-vector, and the same per-channel scales; ``k`` is the
    largest number of codewords whose indices (``ceil(log2 k)`` bits each) plus int8 codebook
    fit it, so a small layer gets a small codebook. Post-training, every sub-vector sits at its
    nearest codeword (:func:`vq4all.model.vq.frozen_at_nearest`): a VQ model that exports to a
    per-layer VQ network program. The same codebooks, trained with VQ4ALL's candidate
    assignments and distillation (:func:`vq4all.model.compress.compress`), are the trained
    per-layer baseline.
``uniform_per_channel``
    Symmetric uniform quantization with ``2**bits`` levels per output channel
    (``(i + 0.5) * step`` for ``i`` in ``[-2**(bits-1), 2**(bits-1))``), the step chosen per
    channel to minimise the squared error; one 32-bit scale per channel.

Uniform quantization returns the quantized model (BatchNorm folded) and the bits it stores for
its weights, and a per-layer VQ model's are :func:`vq4all.model.vq.stored_bits`, so that bits per
weight are measured, not assumed.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from vq4all.golden.codebook import Codebook
from vq4all.model.codebook import channel_rows, compressible_layers
from vq4all.model.graph import fold_batchnorm
from vq4all.model.vq import SCALE_BITS, SEARCH_CHUNK

__all__ = [
    "kmeans_codebooks",
    "uniform_per_channel",
    "uniform_rows",
    "weight_count",
]


def weight_count(model: nn.Module) -> int:
    """Weights of the Linear/Conv2d layers (biases and norms are not compressed by anyone)."""
    return sum(layer.weight.numel() for layer in compressible_layers(model).values())


def _lloyd(
    vectors: torch.Tensor, k: int, iterations: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    centers = vectors[torch.randperm(len(vectors), generator=generator)[:k]].clone()

    def nearest() -> torch.Tensor:
        # In chunks, as the codeword search does: a whole layer against its codebook can be GBs.
        rows = max(1, SEARCH_CHUNK // k)
        return torch.cat([torch.cdist(part, centers).argmin(dim=1) for part in vectors.split(rows)])

    for _ in range(iterations):
        assign = nearest()
        sums = torch.zeros_like(centers).index_add_(0, assign, vectors)
        counts = torch.bincount(assign, minlength=k).to(vectors.dtype)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
    return centers, nearest()


def _codebook_size(vectors: int, D: int, budget: float) -> int:  # noqa: N803
    """The most codewords (at least 2, at most ``vectors``) whose indices, ``ceil(log2 k)``
    bits each, and int8 codebook of ``k * D`` bytes fit ``budget`` bits."""
    best = 2
    for index_bits in range(1, 33):
        fits = int((budget - vectors * index_bits) // (D * 8))
        k = min(2**index_bits, vectors, fits)
        if k > 2 ** (index_bits - 1):
            best = max(best, k)
    return min(best, vectors)


def kmeans_codebooks(
    model: nn.Module,
    D: int = 8,  # noqa: N803 - the paper's name
    bits_per_weight: float = 2.0,
    iterations: int = 25,
    seed: int = 0,
) -> dict[str, Codebook]:
    """Each compressible layer's own int8 k-means codebook within ``bits_per_weight``, by the
    layer's name in the BatchNorm-folded model (as :func:`vq4all.model.vq.prepare_vq` names
    them)."""
    generator = torch.Generator().manual_seed(seed)
    codebooks = {}
    with torch.no_grad():
        for name, layer in compressible_layers(fold_batchnorm(copy.deepcopy(model))).items():
            rows, alpha = channel_rows(layer.weight)
            inputs = rows.shape[1]
            blocks = -(-inputs // D)
            vectors = nn.functional.pad(rows / alpha[:, None], (0, blocks * D - inputs)).reshape(
                -1, D
            )
            k = _codebook_size(len(vectors), D, bits_per_weight * D * len(vectors))
            centers, _ = _lloyd(vectors, k, iterations, generator)
            scale = float(centers.abs().max().clamp_min(1e-12)) / 127
            codewords = torch.round(centers / scale).clamp(-127, 127).to(torch.int8).numpy()
            codebooks[name] = Codebook(codewords, scale, {"method": "kmeans", "layer": name})
    return codebooks


def uniform_rows(rows: torch.Tensor, bits: int) -> torch.Tensor:
    """Each row of ``rows [O, N]`` quantized to ``2**bits`` symmetric uniform levels, the step
    chosen per row to minimise the squared error."""
    levels = 2 ** (bits - 1)
    peak = rows.abs().max(dim=1, keepdim=True).values.clamp_min(1e-12)
    best, best_error = rows, torch.full((rows.shape[0], 1), float("inf"), dtype=rows.dtype)
    for fraction in torch.linspace(0.05, 1.0, 40, dtype=rows.dtype):
        step = fraction * peak / (levels - 0.5)
        q = (torch.floor(rows / step).clamp(-levels, levels - 1) + 0.5) * step
        error = (q - rows).pow(2).sum(dim=1, keepdim=True)
        better = error < best_error
        best = torch.where(better, q, best)
        best_error = torch.where(better, error, best_error)
    return best


def uniform_per_channel(model: nn.Module, bits: int = 2) -> tuple[nn.Module, int]:
    """Per-channel symmetric uniform quantization; returns the model and its stored bits."""
    quantized = fold_batchnorm(copy.deepcopy(model))
    total_bits = 0
    with torch.no_grad():
        for layer in compressible_layers(quantized).values():
            rows, _ = channel_rows(layer.weight)
            best = uniform_rows(rows, bits)
            layer.weight.copy_(best.reshape(layer.weight.shape).to(layer.weight.dtype))
            total_bits += rows.numel() * bits + rows.shape[0] * SCALE_BITS
    return quantized, total_bits
