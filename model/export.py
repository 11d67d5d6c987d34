"""Export of a compressed network to a network program (:mod:`golden.network`).

Activation scales are calibrated on real data (never evaluation data): each value's scale is
its largest magnitude over the calibration images divided by 127. A ReLU right after a layer or
a residual add is fused into its requantization. Per output channel, the real multiplier
``alpha[o] * s_cb * s_in / s_out`` becomes ``mult / 2**shift`` with ``mult`` in
``[2**15, 2**16)`` where the shift range allows, and the float bias becomes
``round(b[o] / (alpha[o] * s_cb * s_in))`` in accumulator units.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from golden.artifacts import Codebook, ConvGeometry, LayerProgram
from golden.network import AddOp, FlattenOp, LayerOp, MaxPool2dOp, NetworkProgram, Op, ReluOp
from golden.numerics import MULT_MAX, SHIFT_MAX, SHIFT_MIN
from model.vq import UnsupportedLayerError, VQConv2d, VQLinear
from model.zoo import Residual

__all__ = ["export_network", "fixed_point"]


def fixed_point(real: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``mult``, ``shift`` (int32) with ``mult / 2**shift ~= real`` for each non-negative entry.

    Raises ``ValueError`` naming ``where`` for a multiplier too large for the shift range.
    """
    real = np.asarray(real, dtype=np.float64)
    if not np.isfinite(real).all() or (real < 0).any():
        raise ValueError(f"{where}: requantization multipliers must be finite and non-negative")
    exponent = np.floor(np.log2(np.where(real > 0, real, 1.0)))
    shift = np.clip(15 - exponent, SHIFT_MIN, SHIFT_MAX).astype(np.int64)
    mult = np.round(real * 2.0**shift).astype(np.int64)
    # Rounding can reach 2**16; one bit less shift keeps it in range.
    over = mult > MULT_MAX
    shift[over] -= 1
    mult[over] = np.round(real[over] * 2.0 ** shift[over]).astype(np.int64)
    if (mult > MULT_MAX).any() or (shift < SHIFT_MIN).any():
        raise ValueError(f"{where}: a requantization multiplier of {real.max():.3g} is too large")
    return mult.astype(np.int32), shift.astype(np.int32)


def _scale(value: torch.Tensor) -> float:
    peak = float(value.abs().max())
    return peak / 127.0 if peak > 0 else 1.0


class _Exporter:
    def __init__(self, codebook: Codebook) -> None:
        self.codebook = codebook
        self.layers: list[LayerProgram] = []
        self.graph: list[Op] = []

    def emit(self, op: Op) -> int:
        self.graph.append(op)
        return len(self.graph)

    def layer(
        self,
        name: str,
        module: VQLinear | VQConv2d,
        value: int,
        s_in: float,
        s_out: float,
        relu: bool,
    ) -> int:
        vq = module.vq
        unit = vq.alpha.detach().double().numpy() * self.codebook.scale * s_in
        mult, shift = fixed_point(unit / s_out, f"layer {name!r}")
        bias = np.round(module.bias.detach().double().numpy() / unit)
        conv = None
        if isinstance(module, VQConv2d):
            conv = ConvGeometry(
                module.in_channels,
                tuple(module.kernel_size),
                tuple(module.stride),
                tuple(module.padding),
                module.groups,
            )
        program = LayerProgram(
            codebook_sha256=self.codebook.sha256,
            codebook_size=self.codebook.K,
            codeword_length=self.codebook.D,
            in_features=vq.inputs,
            indices=vq.indices(),
            bias=np.clip(bias, -(2**31), 2**31 - 1).astype(np.int32),
            mult=mult,
            shift=shift,
            relu=relu,
            kind="conv2d" if conv else "linear",
            conv=conv,
            input_scale=s_in,
            output_scale=s_out,
        )
        self.layers.append(program)
        return self.emit(LayerOp(input=value, layer=len(self.layers) - 1, name=name))

    def add(self, a: int, b: int, s_a: float, s_b: float, s_out: float, relu: bool) -> int:
        ratios = np.array([s_a / s_out, s_b / s_out])
        # One shift for both inputs: the one the larger ratio needs.
        _, (shift,) = fixed_point(ratios.max(keepdims=True), "residual add")
        mult = np.round(ratios * 2.0 ** int(shift)).astype(int)
        return self.emit(
            AddOp(
                inputs=(a, b),
                mult=tuple(int(m) for m in mult),
                shift=int(shift),
                relu=relu,
                scale=s_out,
            )
        )

    def sequence(
        self, modules: list[nn.Module], prefix: str, x: torch.Tensor, value: int, scale: float
    ):
        """Export ``modules`` applied to value ``value`` (float calibration activations ``x``)."""
        i = 0
        while i < len(modules):
            module, name = modules[i], f"{prefix}{i}"
            fuse = i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)
            if isinstance(module, (VQLinear, VQConv2d)):
                y = module(x)
                y = torch.relu(y) if fuse else y
                s_out = _scale(y)
                value, scale, x = self.layer(name, module, value, scale, s_out, fuse), s_out, y
                i += 2 if fuse else 1
                continue
            if isinstance(module, Residual):
                body, body_value, body_scale = self.sequence(
                    list(module.body), f"{name}.body.", x, value, scale
                )
                y = body + x
                y = torch.relu(y) if fuse else y
                s_out = _scale(y)
                value = self.add(body_value, value, body_scale, scale, s_out, fuse)
                scale, x = s_out, y
                i += 2 if fuse else 1
                continue
            value = self._host_op(name, module, value)
            x = module(x)
            i += 1
        return x, value, scale

    def _host_op(self, name: str, module: nn.Module, value: int) -> int:
        if isinstance(module, nn.ReLU):
            return self.emit(ReluOp(input=value))
        if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
            return self.emit(FlattenOp(input=value))
        if (
            isinstance(module, nn.MaxPool2d)
            and module.padding == 0
            and module.dilation == 1
            and not module.ceil_mode
        ):
            pair = nn.modules.utils._pair
            return self.emit(
                MaxPool2dOp(
                    input=value, kernel=pair(module.kernel_size), stride=pair(module.stride)
                )
            )
        raise UnsupportedLayerError(
            f"{name} ({module}) has no integer equivalent in a network program"
        )


@torch.no_grad()
def export_network(
    model: nn.Module, codebook: Codebook, calibration: torch.Tensor, dataset: str = ""
) -> NetworkProgram:
    """The network program of a compressed ``nn.Sequential`` (every sub-vector frozen),
    with activation scales calibrated on ``calibration`` images of data set ``dataset``.

    Raises ``UnsupportedLayerError`` naming a module with no integer equivalent and
    ``ValueError`` (or ``ArtifactError``) for a layer whose integers would not fit.
    """
    if not isinstance(model, nn.Sequential):
        raise UnsupportedLayerError(
            f"export needs an nn.Sequential network, not {type(model).__name__}"
        )
    model.eval()
    exporter = _Exporter(codebook)
    input_scale = _scale(calibration)
    exporter.sequence(list(model), "", calibration, 0, input_scale)
    return NetworkProgram(
        codebook_sha256=codebook.sha256,
        input_scale=input_scale,
        input_shape=tuple(calibration.shape[1:]),
        layers=exporter.layers,
        graph=exporter.graph,
        dataset=dataset,
    )
