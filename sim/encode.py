"""A layer program and its input as the accelerator's stream beats (the protocol is in
:mod:`hw.accelerator`), and beats packed into the bit vectors of the generated Verilog."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

from golden.artifacts import Codebook, LayerProgram
from hw.params import AcceleratorParams

__all__ = ["LayerStreams", "check_fits", "encode_layer", "pack"]


@dataclass(frozen=True)
class LayerStreams:
    """The beats of one layer run, as nested lists/dicts of the payload layouts' fields."""

    config: dict
    cb_load: list[list[int]]
    index: list[list[int]]
    act: list[list[int]]
    quant: list[list[dict]]
    out_features: int

    def inputs(self) -> dict[str, list]:
        """The beats of every input stream, by port name (cb_load is empty in rom mode)."""
        return {
            "config": [self.config],
            "quant": self.quant,
            "act": self.act,
            "index": self.index,
            "cb_load": self.cb_load,
        }

    def packed_inputs(self, params: AcceleratorParams) -> dict[str, list[int]]:
        """The beats of the accelerator's input streams as the integers of its Verilog ports."""
        beats = self.inputs()
        return {
            name: [pack(layout, beat) for beat in beats[name]]
            for name, layout in params.input_streams.items()
        }

    @property
    def groups(self) -> int:
        return len(self.quant)

    @property
    def blocks(self) -> int:
        return len(self.act)


def encode_layer(
    params: AcceleratorParams,
    program: LayerProgram,
    x: np.ndarray,
    codebook: Codebook | None = None,
) -> LayerStreams:
    """Beats for running ``program`` on one int8 input vector ``x [N]``.

    In sram mode ``codebook`` (the program's) is loaded whole before the layer. Output channels
    are padded to a multiple of L with index 0 and multiplier 0, whose outputs are dropped.
    Raises ``ValueError`` naming the field if the layer does not fit ``params``.
    """
    check_fits(params, program, x)
    lanes, length = params.L, params.D
    groups = -(-program.out_features // lanes)
    pad_channels = groups * lanes - program.out_features
    indices = np.pad(program.indices, ((0, pad_channels), (0, 0)))
    bias, mult = (np.pad(getattr(program, name), (0, pad_channels)) for name in ("bias", "mult"))
    shift = np.pad(program.shift, (0, pad_channels), constant_values=1)
    acts = np.pad(x.astype(np.int64), (0, program.blocks * length - x.shape[0]))
    config = {"last_block": program.blocks - 1, "last_group": groups - 1, "relu": int(program.relu)}
    cb_load: list[list[int]] = []
    if params.mode == "sram":
        if codebook is None:
            raise ValueError("sram mode needs the layer's codebook to load")
        program.check_codebook(codebook)
        config["last_entry"] = codebook.K - 1
        cb_load = codebook.codewords.tolist()
    # Beat (g, j) carries column j of channels g*L .. g*L+L-1: group-major, block-minor.
    index = indices.reshape(groups, lanes, program.blocks).transpose(0, 2, 1).reshape(-1, lanes)
    quant = [
        [
            {"bias": int(bias[c]), "mult": int(mult[c]), "shift": int(shift[c])}
            for c in range(g * lanes, (g + 1) * lanes)
        ]
        for g in range(groups)
    ]
    return LayerStreams(
        config=config,
        cb_load=cb_load,
        index=index.tolist(),
        act=acts.reshape(program.blocks, length).tolist(),
        quant=quant,
        out_features=program.out_features,
    )


def check_fits(params: AcceleratorParams, program: LayerProgram, x: np.ndarray) -> None:
    """Raise ``ValueError`` naming the field unless ``program`` on inputs ``x`` fits ``params``."""
    if program.kind != "linear":
        raise ValueError(f"field 'kind': the accelerator runs linear layers, not {program.kind!r}")
    if (program.codebook_size, program.codeword_length) != (params.K, params.D):
        raise ValueError(
            f"field 'codebook_size': the layer's K={program.codebook_size}, "
            f"D={program.codeword_length} "
            f"do not match the accelerator's K={params.K}, D={params.D}"
        )
    if program.in_features > params.max_inputs:
        raise ValueError(
            f"field 'in_features': N={program.in_features} exceeds max_inputs={params.max_inputs}"
        )
    if program.out_features > params.max_outputs:
        raise ValueError(
            f"field 'indices': M={program.out_features} exceeds max_outputs={params.max_outputs}"
        )
    if x.dtype != np.int8 or x.shape != (program.in_features,):
        raise ValueError(
            f"activations must be int8 of shape ({program.in_features},), not {x.dtype} {x.shape}"
        )


def pack(layout: data.Layout | Shape, value) -> int:
    """The unsigned integer whose bits are ``value`` laid out as ``layout`` (LSB first)."""
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return sum(pack(layout.elem_shape, item) << (i * width) for i, item in enumerate(value))
    if isinstance(layout, data.StructLayout):
        return sum(pack(fld.shape, value[name]) << fld.offset for name, fld in layout)
    width = Shape.cast(layout).width
    return int(value) & ((1 << width) - 1)
