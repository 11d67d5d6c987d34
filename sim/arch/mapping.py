"""How a layer program maps onto the accelerator: one layer run of C input columns.

A linear layer is one column of N inputs through M channels. A convolution is the GEMM of
:func:`vq4all.golden.numerics.conv_columns`: each of its ``groups`` convolution groups feeds its
``H' * W'`` im2col columns through its own ``M / groups`` channels, and the whole layer is ONE
run of ``groups * H' * W'`` columns (group-major), so that the configuration, the pipeline fill
and an sram codebook load are paid once per layer. The cycle model, the stream encoder and the
reports all start from :class:`LayerRun`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vq4all.golden.errors import InputError
from vq4all.hw.params import AcceleratorParams, Tiling

if TYPE_CHECKING:  # golden's program types; only their fields are read here, without torch
    from vq4all.golden.layer import LayerProgram
    from vq4all.golden.network import NetworkProgram

__all__ = ["LayerRun", "check_fits", "layer_run", "network_runs"]


@dataclass(frozen=True)
class LayerRun:
    """One layer as the accelerator runs it: ``columns`` input columns of ``in_features``
    inputs, each through ``out_features`` output channels (those of its convolution group).

    ``conv_groups`` groups of ``pixels`` columns each; ``output_shape`` is the layer's output
    (``(M,)`` or ``(M, H', W')``), and ``macs`` the useful multiply-accumulates of the run.
    ``codebook_entries`` is how many codewords the layer's codebook holds: what an SRAM
    codebook loads before the run (``None``: the accelerator's K, a whole universal codebook).
    ``input_shape`` is the layer's input (``(N,)`` or ``(C, H, W)``).
    """

    name: str
    out_features: int
    in_features: int
    conv_groups: int = 1
    pixels: int = 1
    output_shape: tuple[int, ...] = ()
    codebook_entries: int | None = None
    input_shape: tuple[int, ...] = ()

    @property
    def columns(self) -> int:
        return self.conv_groups * self.pixels

    @property
    def macs(self) -> int:
        return self.out_features * self.in_features * self.columns

    def tiling(self, params: AcceleratorParams) -> Tiling:
        """How this run maps onto ``params``' lanes (:meth:`AcceleratorParams.tiling`)."""
        return params.tiling(self.out_features, self.in_features, self.conv_groups, self.pixels)

    @property
    def kind(self) -> str:
        """``linear``; a convolution that is ``depthwise`` (one input and one output channel
        per group), ``grouped``, ``pointwise`` (1x1) or ``conv``."""
        if len(self.input_shape) != 3:
            return "linear"
        if self.conv_groups > 1:
            one_each = self.out_features == 1 and self.input_shape[0] == self.conv_groups
            return "depthwise" if one_each else "grouped"
        return "pointwise" if self.in_features == self.input_shape[0] else "conv"

    @property
    def shape(self) -> tuple[int, int]:
        """``[M, N]``: all output channels of the layer and the inputs of each."""
        return (self.out_features * self.conv_groups, self.in_features)


def layer_run(
    program: LayerProgram, input_shape: tuple[int, ...] | None = None, name: str = ""
) -> LayerRun:
    """The run of ``program`` on one input of ``input_shape`` (``[C, H, W]``, needed for a
    convolution; a linear layer takes ``(N,)``)."""
    if program.kind == "linear":
        return LayerRun(
            name,
            program.out_features,
            program.in_features,
            output_shape=(program.out_features,),
            codebook_entries=program.codebook_size,
            input_shape=(program.in_features,),
        )
    if input_shape is None or len(input_shape) != 3:
        raise InputError(f"a conv2d layer needs its [C, H, W] input shape, not {input_shape}")
    output_shape = program.output_shape(input_shape)
    groups = program.conv.groups
    return LayerRun(
        name,
        program.out_features // groups,
        program.in_features,
        groups,
        output_shape[1] * output_shape[2],
        output_shape,
        program.codebook_size,
        tuple(input_shape),
    )


def network_runs(program: NetworkProgram) -> list[LayerRun]:
    """The run of every layer op of ``program``, in order, for one image."""
    shapes = program.value_shapes()
    return [
        layer_run(program.layers[op.layer], shapes[op.input], op.name) for op in program.layer_ops()
    ]


def check_fits(params: AcceleratorParams, program: LayerProgram, run: LayerRun) -> None:
    """Raise ``ValueError`` naming the field and the limit unless ``run`` of ``program`` fits
    ``params``: its codewords are D long, and its codebook is the ROM's K codewords, or in sram
    mode at most K (a per-layer codebook loads only its own)."""
    size, length = program.codebook_size, program.codeword_length
    fits = size <= params.K if params.mode == "sram" else size == params.K
    if not fits or length != params.D:
        memory = "SRAM of at most" if params.mode == "sram" else "ROM of"
        raise InputError(
            f"field 'codebook_size': the layer's K={size}, D={length} do not fit the "
            f"accelerator's {memory} K={params.K}, D={params.D}"
        )
    if program.activation_bits != params.activation_bits:
        raise InputError(
            f"field 'activation_bits': the layer's {program.activation_bits}-bit activations "
            f"do not match the accelerator's {params.activation_bits}-bit ones"
        )
    limits = (
        ("in_features", f"N={run.in_features} inputs", run.in_features, "max_inputs"),
        ("indices", f"M={run.out_features} outputs", run.out_features, "max_outputs"),
        ("conv", f"{run.columns} columns", run.columns, "max_columns"),
    )
    for field_name, what, size, limit in limits:
        if size > getattr(params, limit):
            raise InputError(
                f"field {field_name!r}: {what} exceed {limit}={getattr(params, limit)}"
            )
