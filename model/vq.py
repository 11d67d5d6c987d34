"""Differentiable candidate assignments over a universal codebook, and Progressive Network
Construction (PNC).

Every weight sub-vector ``v`` (channel-normalized, see :mod:`vq4all.model.codebook`) keeps its
``n`` nearest codewords ``c_1..c_n`` as candidates, with logits initialised to
``log(d_min / d_i)`` so that the softmax ratios are inversely proportional to the distances.
The effective weight of channel ``o`` is ``alpha[o] * sum_i r_i c_i``, with ``alpha`` the
channel's RMS times a gain that training may adjust (golden folds alpha into requantization, so
it costs the hardware nothing). PNC freezes a sub-vector to its best candidate (a one-hot mask;
its logits get no more gradient) once its largest ratio exceeds a threshold. A network is
compressed when every sub-vector is frozen: then it holds hard indices only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.model.codebook import channel_rows
from vq4all.model.graph import UnsupportedLayerError, fold_batchnorm

__all__ = [
    "UnsupportedLayerError",
    "VQ_LAYERS",
    "VQConv2d",
    "VQLinear",
    "VQWeight",
    "frozen_at_nearest",
    "nearest_codewords",
    "prepare_vq",
    "stored_bits",
    "constant_parameters",
    "unsupported_layers",
    "vq_layers",
]

#: Modules with parameters that the compressor knows: compressed (Linear, Conv2d), or folded
#: into one, or a host op of the program (BatchNorm, LayerNorm).
SUPPORTED = (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)
#: Bits of one stored per-channel scale (float32), for every method that stores one.
SCALE_BITS = 32
#: Chunk the nearest-codeword search to about this many distance entries at a time.
SEARCH_CHUNK = 1 << 24


def nearest_codewords(
    vectors: torch.Tensor, codewords: torch.Tensor, count: int, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and Euclidean distances ``[n, count]`` of the nearest codewords of each vector,
    over the dimensions where ``mask`` is true (all by default).

    The search is a chunked float32 matmul + top-k (memory-bound, so float32 halves its time);
    the distances of the chosen candidates are then recomputed in the inputs' precision.
    """
    if mask is not None:
        vectors, codewords = vectors[:, mask], codewords[:, mask]
    search = codewords.to(torch.float32)
    norms = search.pow(2).sum(dim=1)
    chunk = max(1, SEARCH_CHUNK // len(codewords))
    indices = []
    for start in range(0, len(vectors), chunk):
        part = vectors[start : start + chunk].to(torch.float32)
        squared = norms - 2 * part @ search.T
        indices.append(squared.topk(count, dim=1, largest=False).indices)
    index = torch.cat(indices)
    distance = (vectors[:, None, :] - codewords[index]).norm(dim=-1)
    order = distance.argsort(dim=1, stable=True)
    return index.gather(1, order), distance.gather(1, order)


class VQWeight(nn.Module):
    """The candidate-assignment parametrization of one layer's weight ``[O, ...]`` over
    ``codebook``: the universal one, or the layer's own (per-layer VQ, ``own_codebook``)."""

    def __init__(
        self, weight: torch.Tensor, codebook: Codebook, candidates: int, own_codebook: bool = False
    ) -> None:
        super().__init__()
        # The integer codebook the indices point into, which export writes the program against.
        self.source, self.own_codebook = codebook, own_codebook
        rows, alpha = channel_rows(weight)
        out_channels, inputs = rows.shape
        length = codebook.D
        blocks = -(-inputs // length)
        padded = torch.nn.functional.pad(rows / alpha[:, None], (0, blocks * length - inputs))
        vectors = padded.reshape(out_channels, blocks, length)
        float_codebook = torch.from_numpy(codebook.codewords).to(torch.float64) * codebook.scale
        index = torch.empty(out_channels, blocks, candidates, dtype=torch.long)
        distance = torch.empty(out_channels, blocks, candidates, dtype=torch.float64)
        # The last block of a row may be partly padding: its distance ignores those entries.
        tail = inputs - (blocks - 1) * length
        if blocks > 1:
            whole = vectors[:, :-1].reshape(-1, length)
            index[:, :-1], distance[:, :-1] = (
                t.reshape(out_channels, blocks - 1, candidates)
                for t in nearest_codewords(whole, float_codebook, candidates)
            )
        mask = torch.arange(length) < tail
        index[:, -1], distance[:, -1] = nearest_codewords(
            vectors[:, -1], float_codebook, candidates, mask
        )
        nearest = distance[..., :1].clamp_min(1e-12)
        self.logits = nn.Parameter(torch.log(nearest / distance.clamp_min(1e-12)).to(torch.float32))
        self.register_buffer("candidates", index)
        self.register_buffer("rms", alpha.to(torch.float32))
        # Training may rescale a channel: alpha = rms * gain is what golden folds into M/S.
        self.gain = nn.Parameter(torch.ones_like(self.rms))
        self.register_buffer("codebook", float_codebook.to(torch.float32))
        # A sub-vector whose candidates all agree on its valid entries (typical of a last block
        # of one or two inputs) has nothing to learn: it is frozen at once.
        valid = torch.ones(blocks, length, dtype=torch.bool)
        valid[-1] = mask
        options = float_codebook[index]
        alike = (
            ((options == options[..., :1, :]) | ~valid[None, :, None, :]).all(dim=-1).all(dim=-1)
        )
        self.register_buffer("frozen", alike)
        self.register_buffer("choice", index[..., 0].clone())
        self.register_buffer("temperature", torch.ones(()))
        self.shape = tuple(weight.shape)
        self.inputs = inputs

    @property
    def alpha(self) -> torch.Tensor:
        """The per-channel scale ``[O]``: the channel RMS times its trained gain."""
        return self.rms * self.gain

    def soft_ratios(self) -> torch.Tensor:
        """``softmax(logits / temperature)`` of every sub-vector, frozen or not."""
        return torch.softmax(self.logits / self.temperature, dim=-1)

    def ratios(self) -> torch.Tensor:
        """Softmax ratios ``[O, J, n]``; frozen sub-vectors are one-hot on their choice."""
        soft = self.soft_ratios()
        hard = (self.candidates == self.choice[..., None]).to(soft.dtype)
        return torch.where(self.frozen[..., None], hard, soft)

    def forward(self) -> torch.Tensor:
        vectors = (self.ratios()[..., None] * self.codebook[self.candidates]).sum(dim=2)
        rows = vectors.reshape(self.shape[0], -1)[:, : self.inputs] * self.alpha[:, None]
        return rows.reshape(self.shape)

    @torch.no_grad()
    def freeze_confident(self, threshold: float) -> None:
        """PNC: freeze every sub-vector whose largest ratio exceeds ``threshold``."""
        best, which = self.soft_ratios().max(dim=-1)
        newly = (best > threshold) & ~self.frozen
        self.choice[newly] = self.candidates.gather(-1, which[..., None])[..., 0][newly]
        self.frozen |= newly

    @torch.no_grad()
    def freeze_all(self) -> None:
        """Freeze the stragglers to their largest ratio (the rule at the end of training)."""
        self.freeze_confident(-1.0)

    def regularizer(self) -> torch.Tensor:
        """``mean(r * (1 - r))`` over unfrozen sub-vectors: pushes every ratio to 0 or 1."""
        soft = self.soft_ratios()
        active = ~self.frozen
        if not active.any():
            return self.logits.sum() * 0
        return (soft * (1 - soft))[active].mean()

    def indices(self) -> np.ndarray:
        """Hard codeword indices ``[O, J]`` (int32); raises unless every sub-vector is frozen."""
        if not bool(self.frozen.all()):
            raise ValueError(f"{int((~self.frozen).sum())} sub-vectors are not frozen yet")
        return self.choice.to(torch.int32).numpy().copy()


class VQLinear(nn.Module):
    """A Linear layer whose weight is a :class:`VQWeight`."""

    def __init__(
        self, layer: nn.Linear, codebook: Codebook, candidates: int, own_codebook: bool = False
    ) -> None:
        super().__init__()
        self.vq = VQWeight(layer.weight, codebook, candidates, own_codebook)
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_features)
        self.bias = nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.vq(), self.bias)


class VQConv2d(nn.Module):
    """A Conv2d layer (grouped and depthwise included) whose weight is a :class:`VQWeight`."""

    def __init__(
        self, layer: nn.Conv2d, codebook: Codebook, candidates: int, own_codebook: bool = False
    ) -> None:
        super().__init__()
        if (
            layer.padding_mode != "zeros"
            or layer.dilation != (1, 1)
            or isinstance(layer.padding, str)
        ):
            raise UnsupportedLayerError(f"{layer}: only zero padding given as numbers, no dilation")
        self.vq = VQWeight(layer.weight, codebook, candidates, own_codebook)
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels)
        self.bias = nn.Parameter(bias.detach().clone())
        self.in_channels = layer.in_channels
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.groups = layer.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(
            x, self.vq(), self.bias, self.stride, self.padding, 1, self.groups
        )


#: The compressed layers: what tracing keeps whole.
VQ_LAYERS = (VQLinear, VQConv2d)


def unsupported_layers(model: nn.Module) -> dict[str, str]:
    """The type name of every layer with weights of its own that has no GEMM form for the
    codebook (not a Linear, Conv2d, BatchNorm or LayerNorm), by module path. A module with
    children is no layer: its own parameters (a class token, position embeddings) are values
    that the model reads, constants of its program (:func:`constant_parameters`)."""
    return {
        name: type(module).__name__
        for name, module in model.named_modules()
        if not isinstance(module, SUPPORTED)
        and not any(True for _ in module.children())
        and any(True for _ in module.parameters(recurse=False))
    }


def constant_parameters(model: nn.Module) -> dict[str, int]:
    """The size of every parameter that a module with children holds itself (a class token,
    position embeddings), by path: a constant of the program, stored as codes."""
    return {
        f"{name}.{pname}".lstrip("."): parameter.numel()
        for name, module in model.named_modules()
        if any(True for _ in module.children()) and not isinstance(module, SUPPORTED)
        for pname, parameter in module.named_parameters(recurse=False)
    }


def prepare_vq(
    model: nn.Module,
    codebook: Codebook | Mapping[str, Codebook],
    candidates: int = 8,
    keep: tuple[str, ...] = (),
) -> nn.Module:
    """A copy of ``model`` (BatchNorm folded) with every Linear/Conv2d replaced by its VQ version.

    ``codebook`` is the universal codebook, or each layer's own by qualified name (per-layer
    VQ; :func:`vq4all.model.baselines.kmeans_codebooks`). The layers named in ``keep`` (of
    :func:`unsupported_layers`) stay as they are. Raises :class:`UnsupportedLayerError` listing
    every other layer with weights that is not a Linear, Conv2d or BatchNorm2d, and
    ``ValueError`` naming a layer with NaN/inf weights.
    """
    unsupported = [
        f"{name} ({kind})" for name, kind in unsupported_layers(model).items() if name not in keep
    ]
    if unsupported:
        raise UnsupportedLayerError(
            f"cannot compress {len(unsupported)} layer(s) with weights: {', '.join(unsupported)}; "
            "supported are Linear, Conv2d (any groups), BatchNorm and LayerNorm"
        )
    own = not isinstance(codebook, Codebook)
    if not own and not 1 <= candidates <= codebook.K:
        raise InputError(f"candidates={candidates!r} must be in [1, K={codebook.K}]")
    if own and candidates < 1:
        raise InputError(f"candidates={candidates!r} must be at least 1")
    vq = fold_batchnorm(model)

    def codebook_of(qualified: str) -> tuple[Codebook, int]:
        """The layer's codebook, and its candidates: a small own codebook offers fewer."""
        if not own:
            return codebook, candidates
        if qualified not in codebook:
            raise InputError(f"layer {qualified!r} has no codebook of its own")
        return codebook[qualified], min(candidates, codebook[qualified].K)

    def replace(parent: nn.Module, prefix: str) -> None:
        for name, child in parent.named_children():
            qualified = f"{prefix}{name}"
            try:
                if isinstance(child, nn.Linear):
                    layer = VQLinear(child, *codebook_of(qualified), own)
                    setattr(parent, name, layer)
                elif isinstance(child, nn.Conv2d):
                    layer = VQConv2d(child, *codebook_of(qualified), own)
                    setattr(parent, name, layer)
                else:
                    replace(child, f"{qualified}.")
            except ValueError as error:
                raise type(error)(f"layer {qualified!r}: {error}") from None

    replace(vq, "")
    return vq


def frozen_at_nearest(
    model: nn.Module, codebook: Codebook | Mapping[str, Codebook], keep: tuple[str, ...] = ()
) -> nn.Module:
    """:func:`prepare_vq` with one candidate: every sub-vector frozen at its nearest codeword of
    its layer's codebook, no training (post-training VQ; a program's layers without distilling
    them)."""
    return prepare_vq(model, codebook, candidates=1, keep=keep).eval()


def stored_bits(model: nn.Module) -> int:
    """Bits a compressed network stores for its weights: ``ceil(log2 K)`` per sub-vector, one
    ``SCALE_BITS`` scale per output channel, and a layer's own int8 codebook (per-layer VQ). The
    universal codebook is shared, in ROM, and not counted here."""
    return sum(
        layer.frozen.numel() * layer.source.index_bits
        + layer.shape[0] * SCALE_BITS
        + (layer.source.codewords.size * 8 if layer.own_codebook else 0)
        for layer in vq_layers(model).values()
    )


def vq_layers(model: nn.Module) -> dict[str, VQWeight]:
    """The :class:`VQWeight` of every compressed layer, by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, VQWeight)}
