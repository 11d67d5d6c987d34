"""The cocotb testbench of the accelerator: clock, reset, stream endpoints, golden model and an
in-order scoreboard, in one class."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from vq4all.golden.layer import run_layer
from vq4all.hw.accelerator import output_slots
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.rtl.encode import LayerBeats
from vq4all.sim.rtl.host import DRAIN_CYCLES, LayerResult, hang_budget
from vq4all.sim.rtl.streams import StreamSink, StreamSource, random_gaps

__all__ = ["CLOCK_PERIOD_NS", "AcceleratorTestbench"]

CLOCK_PERIOD_NS = 10


class AcceleratorTestbench:
    """Drives the generated ``vq4all_accel`` through its streams and checks it against golden.

    ``idle`` inserts random gaps between input beats, ``backpressure`` randomly holds the
    output's ready low; both are seeded by ``seed`` (and again by :meth:`reseed`).
    """

    def __init__(
        self,
        dut,
        params: AcceleratorParams,
        *,
        idle: bool = False,
        backpressure: bool = False,
        seed: int = 0,
    ) -> None:
        self.dut = dut
        self.params = params
        self.idle, self.backpressure = idle, backpressure
        self.sources = {name: StreamSource(dut, name) for name in params.input_streams}
        self.sink = StreamSink(dut, "out")
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart the stall generators from ``seed``: a run that starts with the pipeline
        empty then stalls the same way whatever ran before it, so it can be replayed alone."""
        for i, source in enumerate(self.sources.values()):
            source.idle = random_gaps(seed + i) if self.idle else None
        # Bursts of backpressure longer than the output queue, so that it fills and stops the
        # issue, as well as short ones.
        self.sink.backpressure = (
            random_gaps(seed + 100, 0.1, 2 * output_slots(self.params))
            if self.backpressure
            else None
        )

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

    async def run_layer(
        self, beats: LayerBeats, x: np.ndarray, expected: np.ndarray | None = None
    ) -> LayerResult:
        """Run one layer on its input ``x`` (one image's value, no batch axis) and check it
        against golden's output ``expected`` (computed here when not given); raise
        ``TimeoutError`` if it hangs."""
        for name, payloads in beats.inputs(x).items():
            if name in self.sources:
                self.sources[name].cycles.clear()
                self.sources[name].send(payloads)
        self.sink.clear()
        expected_beats = beats.output_beats
        budget = hang_budget(beats)
        for _ in range(budget):
            if len(self.sink.received) >= expected_beats:
                break
            await RisingEdge(self.dut.clk)
        else:
            raise TimeoutError(
                f"layer {beats.run.name or beats.run.shape}: {len(self.sink.received)} of "
                f"{expected_beats} output beats after {budget} cycles"
            )
        # Nothing else is in flight now: any further beat would be a duplicate.
        for _ in range(DRAIN_CYCLES):
            await RisingEdge(self.dut.clk)
        await ReadOnly()
        if len(self.sink.received) != expected_beats:
            raise AssertionError(f"{len(self.sink.received)} output beats for {expected_beats}")
        if not all(source.done for source in self.sources.values()):
            raise AssertionError("the layer produced all outputs before consuming all inputs")
        if expected is None:
            expected = run_layer(beats.codebook, beats.program, x[None])[0]
        first_input = self.sources["config"].cycles[0]
        return LayerResult(
            beats.outputs(self.sink.received), expected, self.sink.cycles[-1] - first_input + 1
        )
