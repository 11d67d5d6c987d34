"""The universal codebook: a kernel density estimate of weight sub-vectors pooled across networks,
sampled, and quantized to int8 (the ROM content).

1. Every Linear/Conv2d weight (BatchNorm folded first) is flattened per output channel, in the
   order of :mod:`vq4all.golden.numerics`, and divided by that channel's RMS: the per-channel scale
   ``alpha`` that golden folds into requantization. Rows are cut into sub-vectors of length D;
   a last, partial sub-vector is left out of the pool (its padding is not weight data).
2. A balanced sample: every source network contributes the same number of sub-vectors
   (``weighting="equal"``), or a number in proportion to its sub-vectors (``"size"``), spread
   equally over its layers (drawn with replacement where a layer has fewer), so that no layer
   dominates the density, nor, by default, any network.
3. A Gaussian KDE of the sample with a diagonal bandwidth by Scott's rule,
   ``h_d = sigma_d * n ** (-1 / (D + 4))``; K codewords are drawn from it exactly (a random
   sample point plus Gaussian noise of that bandwidth).
4. One global scale ``s_cb = max|c| / 127`` quantizes the codewords to int8.

The same seed gives the same codebook, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.model.graph import fold_batchnorm

__all__ = ["build_codebook", "channel_rows", "compressible_layers", "normalized_subvectors"]

#: Sub-vectors drawn from the pool for the density estimate, in total over all networks.
DEFAULT_POOL = 1 << 17


def compressible_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The Linear and Conv2d layers of ``model``, by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def channel_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``[O, N]`` of a weight and their per-channel scale ``alpha [O]`` (the row RMS)."""
    rows = weight.detach().reshape(weight.shape[0], -1).to(torch.float64)
    if not torch.isfinite(rows).all():
        raise InputError("weights contain NaN or inf")
    alpha = rows.pow(2).mean(dim=1).sqrt().clamp_min(1e-12)
    return rows, alpha


def normalized_subvectors(model: nn.Module, length: int) -> dict[str, torch.Tensor]:
    """Each layer's whole sub-vectors ``[n, D]`` of channel-normalized weights (BN folded)."""
    folded = fold_batchnorm(model)
    pools = {}
    for name, layer in compressible_layers(folded).items():
        try:
            rows, alpha = channel_rows(layer.weight)
        except ValueError as error:
            raise InputError(f"layer {name!r}: {error}") from None
        whole = rows.shape[1] // length * length
        if whole:
            pools[name] = (rows[:, :whole] / alpha[:, None]).reshape(-1, length)
    return pools


#: How the density's sample is shared between the source networks (see the module docstring).
WEIGHTINGS = ("equal", "size")


def _balanced_sample(
    networks: dict[str, dict[str, torch.Tensor]],
    total: int,
    weighting: str,
    generator: torch.Generator,
) -> torch.Tensor:
    for name, layers in networks.items():
        if not layers:
            raise InputError(f"network {name!r} has no layer with a whole sub-vector")
    if weighting == "size":
        weights = {name: sum(map(len, layers.values())) for name, layers in networks.items()}
    else:
        weights = dict.fromkeys(networks, 1)
    parts = []
    for name, layers in networks.items():
        per_network = total * weights[name] // sum(weights.values())
        per_layer = max(1, per_network // len(layers))
        for pool in layers.values():
            parts.append(pool[torch.randint(len(pool), (per_layer,), generator=generator)])
    return torch.cat(parts)


def build_codebook(
    networks: dict[str, nn.Module],
    K: int = 65536,  # noqa: N803 - the paper's names
    D: int = 8,  # noqa: N803
    seed: int = 0,
    pool_size: int = DEFAULT_POOL,
    weighting: str = "equal",
) -> Codebook:
    """The universal codebook of ``networks`` (name -> module), each network's share of the
    density set by ``weighting`` (one of :data:`WEIGHTINGS`); see the module docstring.

    Raises ``ValueError`` for NaN/inf weights (naming the layer), a network without a whole
    sub-vector or an unknown weighting.
    """
    if not networks:
        raise InputError("a universal codebook needs at least one source network")
    if weighting not in WEIGHTINGS:
        raise InputError(f"weighting {weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    generator = torch.Generator().manual_seed(seed)
    pools = {}
    for name, net in networks.items():
        try:
            pools[name] = normalized_subvectors(net, D)
        except ValueError as error:
            raise InputError(f"network {name!r}: {error}") from None
    sample = _balanced_sample(pools, pool_size, weighting, generator)
    bandwidth = sample.std(dim=0) * len(sample) ** (-1.0 / (D + 4))
    centers = sample[torch.randint(len(sample), (K,), generator=generator)]
    codewords = centers + torch.randn(K, D, generator=generator, dtype=torch.float64) * bandwidth
    scale = float(codewords.abs().max()) / 127.0
    quantized = torch.round(codewords / scale).clamp(-127, 127).to(torch.int8).numpy()
    provenance = {
        "method": "gaussian-kde",
        "bandwidth_rule": "scott",
        "bandwidth": [round(float(h), 6) for h in bandwidth],
        "sources": {
            name: {layer: len(pool) for layer, pool in layers.items()}
            for name, layers in pools.items()
        },
        "subvectors_sampled": len(sample),
        "weighting": weighting,
        "seed": seed,
    }
    if not math.isfinite(scale) or scale <= 0:
        raise InputError("the sampled codewords are all zero: the source weights are degenerate")
    return Codebook(np.ascontiguousarray(quantized), scale, provenance)
