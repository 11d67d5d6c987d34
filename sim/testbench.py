"""The cocotb testbench of the accelerator: clock, reset, stream endpoints, golden model and an
in-order scoreboard, in one class."""

from __future__ import annotations

from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from golden.artifacts import Codebook, LayerProgram
from golden.layer import run_layer
from hw.accelerator import PIPELINE_DEPTH
from hw.params import AcceleratorParams
from sim.encode import encode_layer
from sim.streams import StreamSink, StreamSource, random_gaps

__all__ = ["CLOCK_PERIOD_NS", "AcceleratorTestbench", "LayerResult"]

CLOCK_PERIOD_NS = 10
#: A layer that has not finished after this many cycles per issued beat is hung.
HANG_FACTOR = 20
#: Cycles to watch the output after a layer's last beat, long enough for a duplicate to surface
#: through the pipeline even under backpressure.
DRAIN_CYCLES = 4 * PIPELINE_DEPTH


@dataclass(frozen=True)
class LayerResult:
    """What one layer run produced: outputs, golden outputs, cycles from first input beat to
    last output beat (both included)."""

    outputs: np.ndarray
    expected: np.ndarray
    cycles: int

    @property
    def matches(self) -> bool:
        return np.array_equal(self.outputs, self.expected)


class AcceleratorTestbench:
    """Drives the generated ``vq4all_accel`` through its streams and checks it against golden.

    ``idle`` inserts random gaps between input beats, ``backpressure`` randomly holds the
    output's ready low; both are seeded by ``seed``.
    """

    def __init__(
        self,
        dut,
        params: AcceleratorParams,
        codebook: Codebook,
        *,
        idle: bool = False,
        backpressure: bool = False,
        seed: int = 0,
    ) -> None:
        self.dut = dut
        self.params = params
        self.codebook = codebook
        self.sources = {
            name: StreamSource(dut, name, random_gaps(seed + i) if idle else None)
            for i, name in enumerate(params.input_streams)
        }
        self.sink = StreamSink(dut, "out", random_gaps(seed + 100, 0.4) if backpressure else None)

    @property
    def cycle(self) -> int:
        return int(get_sim_time(unit="ns")) // CLOCK_PERIOD_NS

    async def start(self) -> None:
        """Start the clock and the stream loop, and reset the design."""
        cocotb.start_soon(Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start())
        self.dut.out__ready.value = 0
        cocotb.start_soon(self._clocked_loop())
        await self.reset()

    async def reset(self, cycles: int = 2) -> None:
        """Hold the synchronous reset for ``cycles`` and drop everything in flight."""
        for source in self.sources.values():
            source.clear()
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        self.sink.clear()

    async def _clocked_loop(self) -> None:
        endpoints = [*self.sources.values(), self.sink]
        while True:
            await RisingEdge(self.dut.clk)
            for endpoint in endpoints:
                endpoint.drive()
            await ReadOnly()
            cycle = self.cycle
            for endpoint in endpoints:
                endpoint.sample(cycle)

    def _send(self, program: LayerProgram, x: np.ndarray):
        streams = encode_layer(self.params, program, x, self.codebook)
        for name, beats in streams.packed_inputs(self.params).items():
            self.sources[name].cycles.clear()
            self.sources[name].send(beats)
        return streams

    async def run_layer(self, program: LayerProgram, x: np.ndarray) -> LayerResult:
        """Run one layer on int8 inputs ``x [N]``; raise ``TimeoutError`` if it hangs."""
        streams = self._send(program, x)
        self.sink.clear()
        budget = HANG_FACTOR * (len(streams.index) + len(streams.cb_load) + 50)
        for _ in range(budget):
            if len(self.sink.received) >= streams.groups:
                break
            await RisingEdge(self.dut.clk)
        else:
            raise TimeoutError(
                f"layer {program.out_features}x{program.in_features}: {len(self.sink.received)} of "
                f"{streams.groups} output beats after {budget} cycles"
            )
        # Nothing else is in flight now: any further beat would be a duplicate.
        for _ in range(DRAIN_CYCLES):
            await RisingEdge(self.dut.clk)
        await ReadOnly()
        if len(self.sink.received) != streams.groups:
            raise AssertionError(
                f"{len(self.sink.received)} output beats for {streams.groups} groups"
            )
        if not all(source.done for source in self.sources.values()):
            raise AssertionError("the layer produced all outputs before consuming all inputs")
        # out_layout is L signed bytes, lane 0 in the low byte.
        raw = b"".join(beat.to_bytes(self.params.L, "little") for beat in self.sink.received)
        outputs = np.frombuffer(raw, dtype=np.int8)[: program.out_features]
        expected = run_layer(self.codebook, program, x[None, :])[0]
        first_input = self.sources["config"].cycles[0]
        return LayerResult(outputs, expected, self.sink.cycles[-1] - first_input + 1)
