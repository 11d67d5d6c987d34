"""The top level: streams in, codebook decode, MAC array, requantization, stream out.

Protocol of one layer run, tiled as :meth:`vq4all.hw.params.AcceleratorParams.tiling` says:
``U`` units of ``G`` groups of L output channels, ``S`` steps (index beats) per group. A
dot-product run takes one input column per unit (one for a linear layer, the im2col columns of
a convolution, see :func:`vq4all.golden.numerics.conv_columns`), ``S = J = ceil(N / D)``, each
lane's D multipliers taking a block of D inputs. A column-packed run takes D columns per unit,
``S = N``, each lane's multipliers taking one input of the D columns.

1. ``config``: one beat, ``last_step = S - 1``, ``last_group = G - 1``, ``last_unit = U - 1``,
   ``relu``, ``packed`` (and, in sram mode, ``last_entry``: the number of codewords to load,
   minus one).
2. sram mode only, ``cb_load``: ``last_entry + 1`` codewords, written to rows 0, 1, ...
3. ``index``: ``U * G * S`` beats, unit-major, then group-major: beat ``(u, g, s)`` holds the
   L lanes' codeword indices, each of its lane's channel: of block ``s`` (dot product), or of
   block ``s // D`` (packed: the multipliers take its entry ``s % D``). In a dot-product run
   the channels of group g are ``g*L .. g*L + L - 1`` of one convolution group; in a packed
   run, ``g*L .. g*L + L - 1`` of the whole layer, of any convolution groups.
4. ``act``: L lanes of D activations per beat. Dot product: S beats per column, lane 0's D
   inputs of block s (zero-padded) for every lane, consumed alongside the index beats of group
   0 of that column and buffered for its later groups, so that the lanes never wait for a
   reload. Packed: one beat per index beat, lane l's activations of input s in the D columns
   of the unit, from its own channel's convolution group.
5. ``quant``: ``U * G`` beats of the L channels' bias/mult/shift, each consumed with the last
   index beat of its group.
6. ``out``: ``U * G * O`` beats of L outputs (activations, 8 or 16 bits wide): O = 1 per group
   of a dot-product run, O = D per group of a packed run (its D columns in order). Lanes past M
   in the last group, and columns past the last pixel, carry whatever their padding produces;
   the host drops them.

The configuration, the pipeline fill and, in sram mode, the codebook load are paid once per
layer run, whatever its size. The datapath is a lock-step pipeline whose register stages are
those of its blocks, each stating its own latency (codebook read, MAC array, requantization):
the control and requantization parameters travel beside the data through delays of the same
lengths, and the results enter an output queue of :func:`output_slots` beats. The pipeline
never stalls: a group's last index beat issues only while the queue is sure to have room for
its results (a credit per slot, taken at the issue, returned the cycle after a beat leaves),
so backpressure on ``out`` stops the issue rather than the pipeline, and no clock enable has
to reach every register. The queue holds more results than the pipeline can have in flight,
so without backpressure no beat ever waits for a credit. Stalls on the inputs insert bubbles.
The next run's config is accepted as soon as the last index beat of a run issues, while that
run drains. :data:`PIPELINE_DEPTH` counts the cycles from an issue to its first output beat.

Cycles of a layer run with no idle input and no backpressure, from the config beat to the last
output beat, both counted: ``1 + (last_entry + 1 in sram mode) + U * G * S + PIPELINE_DEPTH +
O - 1`` (:func:`vq4all.sim.arch.cycles.layer_cycles` is this formula, and the tests assert it
against the RTL).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from vq4all.hw.codebook import CodebookMemory
from vq4all.hw.mac import MacArray
from vq4all.hw.params import AcceleratorParams, rejecting_bad_parameters
from vq4all.hw.queue import OutputQueue
from vq4all.hw.requant import Requantizer
from vq4all.hw.stages import MemoryWrite, delayed, registered, registered_memory

__all__ = ["PIPELINE_DEPTH", "Accelerator", "output_slots"]

#: Cycles from a group's last issued index beat to its first output beat.
PIPELINE_DEPTH = (
    CodebookMemory.LATENCY + MacArray.LATENCY + Requantizer.LATENCY + OutputQueue.LATENCY
)


def output_slots(params: AcceleratorParams) -> int:
    """The output queue's depth. A group's last issue takes a credit per output beat (D for a
    packed group) and needs 3D free (see the credits in :class:`Accelerator`). Without
    backpressure a credit is out from two cycles after its issue until two cycles after its
    beat, at most PIPELINE_DEPTH + D cycles, and packed groups come at most every D cycles,
    so that fewer than PIPELINE_DEPTH + 2D are out: with this many, the credits never run
    out."""
    return 1 << (PIPELINE_DEPTH + 5 * params.D + 1).bit_length()


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
        slots = output_slots(params)
        m.submodules.codebook = codebook = self._codebook
        m.submodules.mac = mac = MacArray(params)
        m.submodules.requant = requant = Requantizer(params)
        m.submodules.queue = queue = OutputQueue(params.out_layout.size, slots)
        layer = Signal(params.config_layout)
        step = Signal.like(layer.last_step)
        group = Signal.like(layer.last_group)
        entry = Signal.like(mac.entry)
        first_group = group == 0
        last_step = step == layer.last_step
        # A dot-product run reads each column's activations once, with its first group; a
        # packed run reads each lane's with every beat.
        reads_act = layer.packed | first_group
        running = Signal()
        # Credits for the output queue's slots. A group's last issue takes its output beats'
        # credits, and a returned one counts the cycle after its beat left; both reach the
        # count a cycle late, so that neither the issue decision nor the queue's level nor the
        # output handshake is on a path into it, and whether enough are free is decided from
        # the count a cycle later still: with up to two groups' takes not yet counted, 3D
        # must be free where D are needed.
        credits = Signal(range(slots + 1), init=slots)
        enough = Signal(init=1)
        inputs_ready = (
            self.index.valid
            & (~reads_act | self.act.valid)
            & (~last_step | (self.quant.valid & enough))
        )
        issue = Signal()
        m.d.comb += issue.eq(running & inputs_ready)
        group_issued = registered(m, issue & last_step, "group_issued")
        taken = Mux(group_issued, Mux(layer.packed, params.D, 1), 0)
        returned = registered(m, self.out.valid & self.out.ready, "returned")
        left = credits - taken + returned
        m.d.sync += [credits.eq(left), enough.eq(credits >= 3 * params.D)]
        m.d.comb += [
            self.index.ready.eq(issue),
            self.act.ready.eq(issue & reads_act),
            self.quant.ready.eq(issue & last_step),
        ]
        self._sequence_layer(m, layer, step, group, entry, running, issue, last_step, codebook)

        # The codebook read: the codewords and the buffered activations come out of their
        # memories CodebookMemory.LATENCY cycles after the issue, and so does the beat's
        # control, beside them. The first group of a dot-product column streams its
        # activations in and writes them to the buffer for the column's later groups. The beat
        # on offer is written at the step it will issue at whether or not it issues this cycle
        # (a stream's payload holds until it transfers, and every read of the previous column
        # has issued), so the write does not wait for the issue decision.
        m.d.comb += codebook.addr.eq(self.index.payload)
        (buffered_act,) = registered_memory(
            m,
            platform,
            width=params.act_layout.size,
            depth=params.max_blocks,
            init=[],
            reads=[step],
            name="act_buffer",
            write=MemoryWrite(
                self.act.valid & first_group & ~layer.packed, step, self.act.payload[0]
            ),
        )
        beat = Signal(
            data.StructLayout(
                {
                    "valid": 1,
                    "first": 1,
                    "last": 1,
                    "relu": 1,
                    "from_stream": 1,
                    "packed": 1,
                    "entry": entry.shape(),
                }
            )
        )
        m.d.comb += [
            beat.valid.eq(issue),
            beat.first.eq(step == 0),
            beat.last.eq(last_step),
            beat.relu.eq(layer.relu),
            beat.from_stream.eq(first_group),
            beat.packed.eq(layer.packed),
            beat.entry.eq(entry),
        ]
        read = CodebookMemory.LATENCY
        decoded = delayed(m, beat, read, "decoded")
        streamed_act = delayed(m, self.act.payload, read, "streamed_act")

        # The MAC array: each lane's activations (lane 0's for all in a dot product), the
        # products, the accumulators.
        buffered = data.View(params.act_layout, buffered_act)
        shared = Mux(decoded.from_stream, streamed_act[0], buffered)
        m.d.comb += [
            mac.valid.eq(decoded.valid),
            mac.first.eq(decoded.first),
            mac.last.eq(decoded.last),
            mac.packed.eq(decoded.packed),
            mac.entry.eq(decoded.entry),
            mac.codewords.eq(codebook.codewords),
        ]
        for lane in range(params.L):
            m.d.comb += mac.x[lane].eq(Mux(decoded.packed, streamed_act[lane], shared))

        # The requantizer, into the output queue. The channel parameters are consumed with a
        # group's last index beat and kept, from the cycle before its first result leaves the
        # MAC array, for all of its results (a packed group's D columns).
        to_requant = read + MacArray.LATENCY
        kept = Signal(data.StructLayout({"channels": params.quant_layout, "relu": 1}))
        channels = delayed(m, self.quant.payload, to_requant - 1, "channels")
        relu = delayed(m, layer.relu, to_requant - 1, "relu")
        with m.If(mac.result_next):
            m.d.sync += [kept.channels.eq(channels), kept.relu.eq(relu)]
        m.d.comb += [
            requant.valid.eq(mac.result_valid),
            requant.relu.eq(kept.relu),
            requant.acc.eq(mac.acc),
            requant.channels.eq(kept.channels),
            queue.w_en.eq(requant.y_valid),
            queue.w_data.eq(requant.y),
            self.out.valid.eq(queue.r_rdy),
            self.out.payload.eq(queue.r_data),
            queue.r_en.eq(self.out.ready),
        ]
        return m

    def _sequence_layer(
        self, m, layer, step, group, entry, running, issue, last_step, codebook
    ) -> None:
        """Accept a config, load the codebook (sram mode), then step (unit, group, step) per
        issue, and a packed run's codeword entry with its step."""
        D = self.params.D  # noqa: N806 - the paper's name
        loading = Signal()
        index = Signal(unsigned(self.params.index_bits))
        unit = Signal.like(layer.last_unit)
        # After a packed run, the next run's first group may not finish while the last packed
        # group's columns are still leaving the MAC array: its config waits D - 1 cycles.
        settling = Signal(range(max(2, self.params.D)))
        with m.If(settling != 0):
            m.d.sync += settling.eq(settling - 1)
        idle = ~running & ~loading & (settling == 0)
        m.d.comb += self.config.ready.eq(idle)
        with m.If(self.config.valid & idle):
            m.d.sync += [
                layer.eq(self.config.payload),
                step.eq(0),
                group.eq(0),
                unit.eq(0),
                entry.eq(0),
                index.eq(0),
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
                codebook.write_addr.eq(index),
                codebook.write_data.eq(load.payload),
            ]
            with m.If(load.valid & loading):
                m.d.sync += index.eq(index + 1)
                with m.If(index == layer.last_entry):
                    m.d.sync += [loading.eq(0), running.eq(1)]
        with m.If(issue):
            m.d.sync += [step.eq(step + 1), entry.eq(entry + 1)]
            with m.If(entry == D - 1):
                m.d.sync += entry.eq(0)
            with m.If(last_step):
                m.d.sync += [step.eq(0), entry.eq(0), group.eq(group + 1)]
                with m.If(group == layer.last_group):
                    m.d.sync += [group.eq(0), unit.eq(unit + 1)]
                    with m.If(unit == layer.last_unit):
                        m.d.sync += [running.eq(0), settling.eq(Mux(layer.packed, D - 1, 0))]
