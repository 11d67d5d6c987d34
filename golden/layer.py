"""Golden integer inference of one layer program: what the accelerator must output."""

from __future__ import annotations

import numpy as np
import torch

from golden.artifacts import Codebook, LayerProgram
from golden.numerics import requantize, vq_conv2d, vq_gemm

__all__ = ["layer_accumulators", "run_layer"]


def layer_accumulators(codebook: Codebook, program: LayerProgram, x: np.ndarray) -> np.ndarray:
    """Accumulators (int64) of ``program`` on its ``activation_bits``-wide inputs (int8 or
    int16).

    ``x`` is ``[B, N]`` for a linear layer and ``[B, C, H, W]`` for a conv2d layer.
    """
    program.check_codebook(codebook)
    expected = np.dtype(f"int{program.activation_bits}")
    if x.dtype != expected:
        raise ValueError(f"activations must be {expected}, got {x.dtype}")
    args = (
        torch.from_numpy(codebook.codewords),
        torch.from_numpy(program.indices),
        torch.from_numpy(program.bias),
        torch.from_numpy(x),
    )
    if program.kind == "linear":
        return vq_gemm(*args).numpy()
    geometry = program.conv
    return vq_conv2d(
        *args,
        kernel_size=geometry.kernel_size,
        stride=geometry.stride,
        padding=geometry.padding,
        groups=geometry.groups,
        zero_point=program.input_zero_point,
    ).numpy()


def run_layer(codebook: Codebook, program: LayerProgram, x: np.ndarray) -> np.ndarray:
    """Outputs of ``program`` on inputs ``x``, both ``activation_bits`` wide (see
    :func:`layer_accumulators`)."""
    acc = torch.from_numpy(layer_accumulators(codebook, program, x))
    channel_axis = 1
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    mult = torch.from_numpy(program.mult).reshape(shape)
    shift = torch.from_numpy(program.shift).reshape(shape)
    return requantize(acc, mult, shift, program.relu, program.activation_bits).numpy()
