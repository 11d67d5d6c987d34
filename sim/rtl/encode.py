"""A layer program and its input as the accelerator's stream beats (the protocol is in
:mod:`vq4all.hw.accelerator`), packed into the bit vectors of the generated Verilog, and the output
beats back into the layer's output.

The beats that do not depend on the input (config, codebook load, indices, requantization) are
built once per layer; only the activations are packed per input, with numpy.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from amaranth.hdl import Shape
from amaranth.lib import data

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.golden.layer import LayerProgram
from vq4all.golden.numerics import conv_columns
from vq4all.hw.codebook import pack_codewords
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.mapping import LayerRun, check_fits, layer_run

__all__ = ["LayerBeats", "from_words", "pack", "pack_bytes", "pack_words", "to_words"]


def pack(layout: data.Layout | Shape, value) -> int:
    """The unsigned integer whose bits are ``value`` laid out as ``layout`` (LSB first)."""
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return sum(pack(layout.elem_shape, item) << (i * width) for i, item in enumerate(value))
    if isinstance(layout, data.StructLayout):
        return sum(pack(fld.shape, value[name]) << fld.offset for name, fld in layout)
    width = Shape.cast(layout).width
    return int(value) & ((1 << width) - 1)


def field_offsets(layout: data.Layout | Shape, offset: int = 0) -> list[tuple[int, int]]:
    """``(offset, width)`` of every scalar field of ``layout``, in :func:`pack`'s order."""
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [
            field
            for i in range(layout.length)
            for field in field_offsets(layout.elem_shape, offset + i * width)
        ]
    if isinstance(layout, data.StructLayout):
        return [
            field for _, fld in layout for field in field_offsets(fld.shape, offset + fld.offset)
        ]
    return [(offset, Shape.cast(layout).width)]


def pack_words(layout: data.Layout, values: np.ndarray) -> np.ndarray:
    """Beats of ``layout`` whose scalar fields, in :func:`pack`'s order, are the columns of
    ``values`` (integers ``[beats, fields]``, each taken modulo 2**width), as 32-bit words
    (:func:`to_words`' form): :func:`pack` for many beats at once, in numpy."""
    fields = field_offsets(layout)
    values = np.asarray(values, dtype=np.int64).reshape(-1, len(fields))
    words = np.zeros((len(values), -(-layout.size // 32)), dtype=np.uint64)
    for column, (offset, width) in enumerate(fields):
        field = values[:, column].astype(np.uint64) & np.uint64((1 << width) - 1)
        while width > 0:  # the field, split at word boundaries
            word, shift = divmod(offset, 32)
            take = min(width, 32 - shift)
            part = field & np.uint64((1 << take) - 1)
            words[:, word] |= part << np.uint64(shift)
            field >>= np.uint64(take)
            offset, width = offset + take, width - take
    return words.astype("<u4")


def from_words(words: np.ndarray) -> list[int]:
    """Beats as 32-bit words (:func:`to_words`' form) back to integers."""
    rows = np.ascontiguousarray(words, dtype="<u4")
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


def pack_bytes(rows: np.ndarray) -> list[int]:
    """Each row of bytes ``[n, k]`` (uint8) as one little-endian integer: the packing of an
    array of int8 (or little-endian int16) entries, entry 0 in the low byte(s)."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    width = rows.shape[1]
    if width in (1, 2, 4, 8):
        return rows.view(f"<u{width}").reshape(-1).tolist()
    raw = rows.tobytes()
    return [int.from_bytes(raw[i : i + width], "little") for i in range(0, len(raw), width)]


def to_words(beats: list[int], width: int) -> np.ndarray:
    """Beats of ``width`` bits as 32-bit words, ``[beats, ceil(width / 32)]`` (uint32, the low
    word first): how a C++ Verilator model holds a port of that width."""
    count = -(-width // 32)
    raw = b"".join(beat.to_bytes(4 * count, "little") for beat in beats)
    return np.frombuffer(raw, dtype="<u4").reshape(len(beats), count)


def _bytes_to_words(rows: np.ndarray) -> np.ndarray:
    """Rows of bytes ``[n, k]`` as 32-bit words ``[n, ceil(k / 4)]``, zero-padded."""
    pad = -rows.shape[1] % 4
    rows = np.pad(np.ascontiguousarray(rows, dtype=np.uint8), [(0, 0), (0, pad)])
    return rows.view("<u4")


class LayerBeats:
    """The beats of ``program`` on the accelerator ``params``, for any input of
    ``input_shape`` (``[C, H, W]`` for a convolution; a linear layer needs none).

    In sram mode ``codebook`` (the one the layer indexes: the universal one, or the layer's
    own) is loaded whole before the run. Output channels
    are padded to a multiple of L with index 0 and multiplier 0, whose outputs are dropped.
    Raises ``ValueError`` naming the field and the limit if the layer does not fit ``params``.
    """

    def __init__(
        self,
        params: AcceleratorParams,
        program: LayerProgram,
        codebook: Codebook,
        input_shape: tuple[int, ...] | None = None,
        name: str = "",
    ) -> None:
        program.check_codebook(codebook)
        self.run: LayerRun = layer_run(program, input_shape, name)
        check_fits(params, program, self.run)
        self.params, self.program, self.codebook = params, program, codebook
        # Activations as the streams pack them: entry 0 in the low bits, little-endian.
        self.act_dtype = np.dtype(f"<i{params.activation_bits // 8}")
        self.input_shape = input_shape if input_shape is not None else (program.in_features,)
        self.tiling = tiling = self.run.tiling(params)
        config = {
            "last_step": tiling.steps - 1,
            "last_group": tiling.groups - 1,
            "last_unit": tiling.units - 1,
            "relu": int(program.relu),
            "packed": int(tiling.packed),
        }
        self.cb_load: list[int] = []
        if params.mode == "sram":
            config["last_entry"] = codebook.K - 1
            self.cb_load = pack_codewords(codebook.codewords)
        self.config = [pack(params.config_layout, config)]
        # The channels as the lanes take them, [sets, groups * L, ...]: a dot-product run's
        # groups are those of each convolution group (one set each), a packed run's those of
        # the whole layer (one set). Padding channels take index 0 and multiplier 0.
        lanes = params.L
        sets = 1 if tiling.packed else self.run.conv_groups
        per_set = len(program.indices) // sets

        def lane_channels(array: np.ndarray, pad_value: int = 0) -> np.ndarray:
            array = array.reshape(sets, per_set, *array.shape[1:])
            pad = [(0, 0), (0, tiling.groups * lanes - per_set)] + [(0, 0)] * (array.ndim - 2)
            return np.pad(array, pad, constant_values=pad_value)

        # Beat (g, s) of a set carries the codeword index of channels g*L .. g*L+L-1 for step
        # s: block s, or block s // D of a packed run.
        indices = lane_channels(program.indices).reshape(sets, tiling.groups, lanes, -1)
        if tiling.packed:
            indices = np.repeat(indices, params.D, axis=3)[..., : tiling.steps]
        self._index_words = pack_words(
            params.index_layout, indices.transpose(0, 1, 3, 2).reshape(-1, lanes)
        ).reshape(sets, tiling.groups * tiling.steps, -1)
        channels = np.stack(
            [
                lane_channels(program.bias),
                lane_channels(program.mult),
                lane_channels(program.shift, 1),
            ],
            axis=-1,
        )
        self._quant_words = pack_words(
            params.quant_layout, channels.reshape(-1, lanes * 3)
        ).reshape(sets, tiling.groups, -1)
        # A packed run's lane l of group g takes the activations of its channel's convolution
        # group.
        channel = np.minimum(np.arange(tiling.groups * lanes), len(program.indices) - 1)
        self._lane_conv_group = channel // self.run.out_features

    def columns(self, x: np.ndarray) -> np.ndarray:
        """The input columns of one input ``x`` (int8 or int16, the layer's activations, of
        ``input_shape``): int64 ``[conv groups, pixels, N]``."""
        expected = self.act_dtype.newbyteorder("=")
        if x.dtype != expected or tuple(x.shape) != tuple(self.input_shape):
            raise InputError(
                f"activations must be {expected} of shape {tuple(self.input_shape)}, not "
                f"{x.dtype} {tuple(x.shape)}"
            )
        if self.program.kind == "linear":
            return x.astype(np.int64).reshape(1, 1, -1)
        geometry = self.program.conv
        return conv_columns(
            torch.from_numpy(x[None]),
            kernel_size=geometry.kernel_size,
            stride=geometry.stride,
            padding=geometry.padding,
            groups=geometry.groups,
            zero_point=self.program.input_zero_point,
        )[0].numpy()

    def _act_bytes(self, x: np.ndarray) -> np.ndarray:
        """The act beats of input ``x`` as bytes, ``[beats, L * D * bytes per activation]``:
        a dot-product run's columns zero-padded to whole blocks in lane 0 (the other lanes
        zero), a packed run's lanes each with input s of the unit's D pixels (zero past the
        last) of its convolution group."""
        columns = self.columns(x)
        tiling, lanes, width = self.tiling, self.params.L, self.params.D
        if tiling.packed:
            groups, pixels, inputs = columns.shape
            padded = np.zeros((groups, tiling.units * width, inputs), dtype=self.act_dtype)
            padded[:, :pixels] = columns
            # [lane channels, units, D, N] -> [units, groups, N, L, D]
            per_lane = padded[self._lane_conv_group].reshape(
                tiling.groups, lanes, tiling.units, width, inputs
            )
            acts = np.ascontiguousarray(per_lane.transpose(2, 0, 4, 1, 3))
        else:
            acts = np.zeros((*columns.shape[:2], tiling.blocks, lanes, width), self.act_dtype)
            flat = acts[..., 0, :].reshape(*columns.shape[:2], -1)
            flat[..., : columns.shape[2]] = columns
            acts[..., 0, :] = flat.reshape(*columns.shape[:2], tiling.blocks, width)
        return acts.view(np.uint8).reshape(-1, lanes * width * self.act_dtype.itemsize)

    def inputs(self, x: np.ndarray) -> dict[str, list[int]]:
        """The packed beats of every input stream for input ``x``, by port name (cb_load is
        empty in rom mode)."""
        words = self.input_words(x)
        return {
            "config": self.config,
            "cb_load": self.cb_load,
            "act": pack_bytes(self._act_bytes(x)),
            "index": from_words(words["index"]),
            "quant": from_words(words["quant"]),
        }

    @functools.cached_property
    def _fixed_words(self) -> dict:
        streams = self.params.input_streams
        return {
            "config": to_words(self.config, streams["config"].size),
            "cb_load": to_words(self.cb_load, self.params.codeword_layout.size),
        }

    def _per_unit(self, words: np.ndarray) -> np.ndarray:
        """Each set's beats ``[sets, beats, words]`` repeated for each unit, in stream order:
        a dot-product run's sets are its convolution groups, each repeated for its pixels; a
        packed run's one set is repeated for each unit of D pixels."""
        sets, beats, width = words.shape
        repeats = self.tiling.units // sets
        repeated = np.broadcast_to(words[:, None], (sets, repeats, beats, width))
        return repeated.reshape(-1, width)

    def input_words(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The beats of every input stream for input ``x`` as 32-bit words (:func:`to_words`),
        by port name (cb_load is empty in rom mode)."""
        fixed = self._fixed_words
        return {
            "config": fixed["config"],
            "cb_load": fixed["cb_load"],
            "act": _bytes_to_words(self._act_bytes(x)),
            "index": self._per_unit(self._index_words),
            "quant": self._per_unit(self._quant_words),
        }

    @property
    def output_beats(self) -> int:
        """Output beats of one run (:attr:`Tiling.out_beats`)."""
        return self.tiling.out_beats

    def outputs(self, beats: list[int]) -> np.ndarray:
        """The layer's output (``run.output_shape``) from its packed output beats: L
        activations per beat, lane 0 in the low bits."""
        lanes = self.params.L
        raw = b"".join(beat.to_bytes(lanes * self.act_dtype.itemsize, "little") for beat in beats)
        return self._outputs_from_lanes(np.frombuffer(raw, dtype=self.act_dtype).reshape(-1, lanes))

    def outputs_from_words(self, words: np.ndarray) -> np.ndarray:
        """The layer's output from its output beats as 32-bit words (:func:`to_words`)."""
        lanes = np.ascontiguousarray(words, dtype="<u4").view(self.act_dtype)
        return self._outputs_from_lanes(lanes[:, : self.params.L])

    def _outputs_from_lanes(self, lanes: np.ndarray) -> np.ndarray:
        run, tiling = self.run, self.tiling
        if tiling.packed:
            # [units, groups, D columns, L] -> [groups * L channels, units * D pixels]
            beats = lanes.reshape(tiling.units, tiling.groups, tiling.outputs, -1)
            channels = beats.transpose(1, 3, 0, 2).reshape(tiling.groups * self.params.L, -1)
            channels = channels[: run.out_features * run.conv_groups, : run.pixels]
        else:
            lanes_out = lanes.reshape(run.conv_groups, run.pixels, -1)
            channels = lanes_out[..., : run.out_features].transpose(0, 2, 1)
        # A writable copy of the bytes, in native byte order.
        return np.array(channels, dtype=self.act_dtype.newbyteorder("=")).reshape(run.output_shape)
