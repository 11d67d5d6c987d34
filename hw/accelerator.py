"""The top level: streams in, codebook decode, MAC array, requantization, stream out.

Protocol of one layer run: ``C`` input columns (one for a linear layer, the im2col columns of a
convolution, see :func:`vq4all.golden.numerics.conv_columns`) through a layer of M outputs and N
inputs, with ``J = ceil(N / D)`` blocks and ``G = ceil(M / L)`` groups
(:meth:`vq4all.hw.params.AcceleratorParams.tiling`):

1. ``config``: one beat, ``last_block = J - 1``, ``last_group = G - 1``,
   ``last_column = C - 1``, ``relu`` (and, in sram mode, ``last_entry``: the number of
   codewords to load, minus one).
2. sram mode only, ``cb_load``: ``last_entry + 1`` codewords, written to rows 0, 1, ...
3. ``index``: ``C * G * J`` beats, column-major, then group-major: beat ``(c, g, j)`` holds the
   L lanes' indices of block ``j`` of the output channels ``g*L .. g*L + L - 1`` that column
   ``c`` feeds (the same channels for every column of a layer, or of one convolution group).
4. ``act``: J beats of D activations (zero-padded) per column, consumed alongside the index
   beats of group 0 of that column and buffered for its later groups, so that the lanes never
   wait for a reload.
5. ``quant``: ``C * G`` beats of the L channels' bias/mult/shift, each consumed with the last
   index beat of its group.
6. ``out``: ``C * G`` beats of L outputs (activations, 8 or 16 bits wide). Lanes past M in
   the last group carry whatever their (padding) channels produce; the host drops them.

The configuration, the pipeline fill and, in sram mode, the codebook load are paid once per
layer run, whatever its column count. The datapath is a lock-step pipeline whose register
stages are those of its blocks, each stating its own latency (codebook read, products, adder
tree, accumulator, requantization): the control and requantization parameters travel beside
the data through delays of the same lengths, and the results enter an output queue of
:data:`OUTPUT_SLOTS` beats. The pipeline never stalls: a group's last index beat issues only
while the queue is sure to have a slot for its result (a credit per slot, taken at the issue,
returned when a beat leaves), so backpressure on ``out`` stops the issue rather than the
pipeline, and no clock enable has to reach every register. The queue holds more results than
the pipeline can have in flight, so without backpressure no beat ever waits for a credit.
Stalls on the inputs insert bubbles. The next run's config is accepted as soon as the last
index beat of a run issues, while that run drains. :data:`PIPELINE_DEPTH` counts the cycles
from an issue to its output beat.

Cycles of a layer run with no idle input and no backpressure, from the config beat to the last
output beat, both counted: ``1 + (last_entry + 1 in sram mode) + C * G * J + PIPELINE_DEPTH``
(:func:`vq4all.sim.arch.cycles.layer_cycles` is this formula, and the tests assert it against the
RTL).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from vq4all.hw.codebook import CodebookMemory
from vq4all.hw.mac import MacArray
from vq4all.hw.params import AcceleratorParams, rejecting_bad_parameters
from vq4all.hw.requant import Requantizer
from vq4all.hw.stages import MemoryWrite, delayed, registered_memory

__all__ = ["OUTPUT_SLOTS", "PIPELINE_DEPTH", "Accelerator"]

#: Cycles from a result entering the output queue (a SyncFIFO) to its beat on ``out``.
OUTPUT_LATENCY = 1
#: Cycles from an issued index beat to its output beat.
PIPELINE_DEPTH = CodebookMemory.LATENCY + MacArray.LATENCY + Requantizer.LATENCY + OUTPUT_LATENCY
#: The output queue's depth: a credit is out from a group's last issue until its beat leaves,
#: PIPELINE_DEPTH + 1 cycles without backpressure, so this many never run out.
OUTPUT_SLOTS = 1 << (PIPELINE_DEPTH + 1).bit_length()


class Accelerator(wiring.Component):
    """ROM- or SRAM-codebook decode + MAC accelerator (see the module docstring).

    ``codewords`` (int8 ``[K, D]``) are the ROM contents in rom mode and must be ``None`` in
    sram mode. Raises ``ValueError`` for inconsistent parameters or codewords.
    """

    def __init__(self, params: AcceleratorParams, codewords: np.ndarray | None = None) -> None:
        with rejecting_bad_parameters(self):
            if not isinstance(params, AcceleratorParams):
                raise TypeError(f"params must be AcceleratorParams, not {params!r}")
            self._codebook = CodebookMemory(params, codewords)
        self.params = params
        members = {
            name: In(stream.Signature(layout)) for name, layout in params.input_streams.items()
        }
        members["out"] = Out(stream.Signature(params.out_layout))
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        m.submodules.codebook = codebook = self._codebook
        m.submodules.mac = mac = MacArray(params)
        m.submodules.requant = requant = Requantizer(params)
        m.submodules.queue = queue = SyncFIFO(width=params.out_layout.size, depth=OUTPUT_SLOTS)
        layer = Signal(params.config_layout)
        block = Signal.like(layer.last_block)
        group = Signal.like(layer.last_group)
        first_group = group == 0
        last_block = block == layer.last_block
        running = Signal()
        credits = Signal(range(OUTPUT_SLOTS + 1), init=OUTPUT_SLOTS)
        inputs_ready = (
            self.index.valid
            & (~first_group | self.act.valid)
            & (~last_block | (self.quant.valid & (credits != 0)))
        )
        issue = Signal()
        m.d.comb += issue.eq(running & inputs_ready)
        taken = issue & last_block
        returned = self.out.valid & self.out.ready
        m.d.sync += credits.eq(credits - taken + returned)
        m.d.comb += [
            self.index.ready.eq(issue),
            self.act.ready.eq(issue & first_group),
            self.quant.ready.eq(issue & last_block),
        ]
        self._sequence_layer(m, layer, block, group, running, issue, last_block, codebook)

        # The codebook read: the codewords and the buffered activations come out of their
        # memories CodebookMemory.LATENCY cycles after the issue, and so does the beat's
        # control, beside them. The first group of a column streams its activations in and
        # writes them to the buffer for the column's later groups. The beat on offer is written
        # at the block it will issue at whether or not it issues this cycle (a stream's payload
        # holds until it transfers, and every read of the previous column has issued), so the
        # write does not wait for the issue decision.
        m.d.comb += codebook.addr.eq(self.index.payload)
        (buffered_act,) = registered_memory(
            m,
            platform,
            width=params.activation_bits * params.D,
            depth=params.max_blocks,
            init=[],
            reads=[block],
            name="act_buffer",
            write=MemoryWrite(self.act.valid & first_group, block, self.act.payload),
        )
        beat = Signal(
            data.StructLayout({"valid": 1, "first": 1, "last": 1, "relu": 1, "from_stream": 1})
        )
        m.d.comb += [
            beat.valid.eq(issue),
            beat.first.eq(block == 0),
            beat.last.eq(last_block),
            beat.relu.eq(layer.relu),
            beat.from_stream.eq(first_group),
        ]
        read = CodebookMemory.LATENCY
        decoded = delayed(m, beat, read, "decoded")
        streamed_act = delayed(m, self.act.payload, read, "streamed_act")

        # The MAC array: products, then the accumulator.
        m.d.comb += [
            mac.valid.eq(decoded.valid),
            mac.first.eq(decoded.first),
            mac.last.eq(decoded.last),
            mac.codewords.eq(codebook.codewords),
            mac.x.eq(data.View(params.act_layout, buffered_act)),
        ]
        with m.If(decoded.from_stream):
            m.d.comb += mac.x.eq(streamed_act)

        # The requantizer, into the output queue. The channel parameters are consumed with a
        # group's last index beat and meet its accumulators when they leave the MAC array.
        to_requant = read + MacArray.LATENCY
        m.d.comb += [
            requant.valid.eq(mac.result_valid),
            requant.relu.eq(delayed(m, layer.relu, to_requant, "relu")),
            requant.acc.eq(mac.acc),
            requant.channels.eq(delayed(m, self.quant.payload, to_requant, "channels")),
            queue.w_en.eq(requant.y_valid),
            queue.w_data.eq(requant.y),
            self.out.valid.eq(queue.r_rdy),
            self.out.payload.eq(queue.r_data),
            queue.r_en.eq(self.out.ready),
        ]
        return m

    def _sequence_layer(self, m, layer, block, group, running, issue, last_block, codebook) -> None:
        """Accept a config, load the codebook (sram mode), then step (column, group, block)
        per issue."""
        loading = Signal()
        entry = Signal(unsigned(self.params.index_bits))
        column = Signal.like(layer.last_column)
        idle = ~running & ~loading
        m.d.comb += self.config.ready.eq(idle)
        with m.If(self.config.valid & idle):
            m.d.sync += [
                layer.eq(self.config.payload),
                block.eq(0),
                group.eq(0),
                column.eq(0),
                entry.eq(0),
            ]
            if self.params.mode == "sram":
                m.d.sync += loading.eq(1)
            else:
                m.d.sync += running.eq(1)
        if self.params.mode == "sram":
            load = self.cb_load
            m.d.comb += [
                load.ready.eq(loading),
                codebook.write_en.eq(load.valid & loading),
                codebook.write_addr.eq(entry),
                codebook.write_data.eq(load.payload),
            ]
            with m.If(load.valid & loading):
                m.d.sync += entry.eq(entry + 1)
                with m.If(entry == layer.last_entry):
                    m.d.sync += [loading.eq(0), running.eq(1)]
        with m.If(issue):
            m.d.sync += block.eq(block + 1)
            with m.If(last_block):
                m.d.sync += [block.eq(0), group.eq(group + 1)]
                with m.If(group == layer.last_group):
                    m.d.sync += [group.eq(0), column.eq(column + 1)]
                    with m.If(column == layer.last_column):
                        m.d.sync += running.eq(0)
