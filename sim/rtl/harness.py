"""The accelerator in a plain Verilator C++ loop (``harness.cpp``), driven from Python.

cocotb touches every clock from Python, which caps a simulation at tens of thousands of cycles
per second. The harness runs whole layer runs in C++ instead: the host sends a layer run's
beats (every input stream always valid, the output always ready), the harness runs it to its
last output beat, then watches the output for a duplicate, and sends back the output beats and
the cycles from the config beat to the last output beat. The host compares every output with
golden (:meth:`Harness.run_layer`), so the checks are those of the cocotb testbench; only the
stalls (idle inputs, backpressure) and waveforms need cocotb.

One harness process serves a whole network run; its binary is built once per design, beside
the Verilog (:func:`vq4all.sim.rtl.build.design_directory`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vq4all.golden.codebook import Codebook
from vq4all.golden.layer import run_layer
from vq4all.hw.params import AcceleratorParams
from vq4all.hw.verilog import TOP_NAME, VERILOG_NAME
from vq4all.sim.rtl.build import WAIVERS, SimulationError, design_directory
from vq4all.sim.rtl.encode import LayerBeats
from vq4all.sim.rtl.host import DRAIN_CYCLES, LayerResult, NetworkHost, hang_budget
from vq4all.sim.rtl.toolchain import activate_verilator

__all__ = ["HARNESS_SOURCE", "Harness", "HarnessRun"]

HARNESS_SOURCE = Path(__file__).with_name("harness.cpp")
#: The harness's reply statuses.
_STATUS = {
    1: "hung: not every output beat came within the cycle budget",
    2: "an output beat more than the layer has",
    3: "the layer produced all outputs before consuming all inputs",
}


@dataclass(frozen=True)
class HarnessRun:
    """What the harness measured for one request: the cycles of its first repeat (config beat
    to last output beat, both counted), every simulated cycle, the loop's wall time, and the
    output beats as 32-bit words ``[beats, words]``."""

    cycles: int
    simulated_cycles: int
    wall_seconds: float
    outputs: np.ndarray


class Harness:
    """A running harness process for one design. Use as a context manager, after
    :meth:`build`."""

    def __init__(self, params: AcceleratorParams, binary: Path) -> None:
        self.params, self.binary = params, binary
        #: Every cycle simulated so far, drains included.
        self.simulated_cycles = 0
        self._process: subprocess.Popen | None = None
        self._streams: list[str] = []
        self._out_words = 0

    @classmethod
    def build(
        cls,
        params: AcceleratorParams,
        codebook: Codebook | None,
        root: str | os.PathLike = "build/sim",
    ) -> Harness:
        """Generate the Verilog (with ``codebook`` in its ROM, in rom mode) and build the harness
        around it with Verilator (cached by the Verilog's and the harness's hashes). Golden
        checks each layer against the codebook its beats carry."""
        verilator = activate_verilator()
        design = design_directory(params, codebook, root)
        source = HARNESS_SOURCE.read_bytes()
        out = design / f"harness-{hashlib.sha256(source).hexdigest()[:12]}"
        binary = out / "harness"
        if binary.exists():
            return cls(params, binary)
        defines = " -DSRAM_MODE" if params.mode == "sram" else ""
        command = [
            *(str(verilator.executable), "--cc", "--exe", "--build", "--build-jobs", "2"),
            *("-O3", "--x-assign", "fast", "--x-initial", "fast"),
            *("--top-module", TOP_NAME, "--prefix", "Vtop", "-Mdir", str(out), "-o", "harness"),
            *("-CFLAGS", f"-O2{defines}", str(WAIVERS), str(design / VERILOG_NAME)),
            str(HARNESS_SOURCE),
        ]
        result = subprocess.run(
            command, env=verilator.environment(), capture_output=True, text=True, timeout=1800
        )
        (out / "build.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SimulationError(f"building the C++ harness failed: see {out / 'build.log'}")
        return cls(params, binary)

    def __enter__(self) -> Harness:
        self._process = subprocess.Popen(
            [str(self.binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        hello = json.loads(self._process.stdout.readline() or b"{}")
        expected = {
            name: -(-layout.size // 32) for name, layout in self.params.input_streams.items()
        }
        if hello.get("streams") is None or dict(hello["streams"]) != expected:
            self.__exit__(None, None, None)
            raise SimulationError(
                f"{self.binary}: the harness's streams {hello.get('streams')} are not the "
                f"design's {expected}: rebuild it"
            )
        self._streams = list(hello["streams"])
        self._out_words = hello["out"]
        return self

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            try:
                self._process.stdin.write(np.uint32(0).tobytes())
                self._process.stdin.close()
            except BrokenPipeError:
                pass
            self._process.wait(timeout=60)
            self._process.stdout.close()
            self._process = None

    def run(
        self,
        words: dict[str, np.ndarray],
        output_beats: int,
        budget: int,
        repeats: int = 1,
    ) -> HarnessRun:
        """Run the beats ``words`` (by stream, :meth:`vq4all.sim.rtl.encode.LayerBeats.input_words`)
        ``repeats`` times back to back, expecting ``output_beats`` output beats each time.

        Raises :class:`SimulationError` if the run hangs (``budget`` cycles per repeat), gives
        an output beat too many, or leaves inputs unconsumed.
        """
        request = [np.array([1, repeats, budget, DRAIN_CYCLES], dtype="<u4")]
        for name in self._streams:
            beats = np.ascontiguousarray(words[name], dtype="<u4")
            request += [np.array([len(beats)], dtype="<u4"), beats.reshape(-1)]
        request.append(np.array([output_beats], dtype="<u4"))
        process = self._process
        process.stdin.write(b"".join(part.tobytes() for part in request))
        process.stdin.flush()
        header = process.stdout.read(32)
        if len(header) != 32:
            raise SimulationError(f"{self.binary} exited (status {process.poll()})")
        status = int(np.frombuffer(header[:4], "<u4")[0])
        cycles, simulated, wall_ns = (int(v) for v in np.frombuffer(header[4:28], "<u8"))
        received = int(np.frombuffer(header[28:], "<u4")[0])
        outputs = np.frombuffer(process.stdout.read(4 * received * self._out_words), "<u4")
        self.simulated_cycles += simulated
        if status:
            raise SimulationError(
                f"{_STATUS.get(status, f'status {status}')} ({received} of "
                f"{output_beats * repeats} output beats after {simulated} cycles)"
            )
        return HarnessRun(
            cycles, simulated, wall_ns / 1e9, outputs.reshape(received, self._out_words)
        )

    def run_images(
        self, host: NetworkHost, images: torch.Tensor, labels: list[int], indices: list[int]
    ) -> None:
        """Every image of ``images`` (with their labels and test-set indices) through ``host``'s
        network, whole layer runs at a time, recorded by ``host``; the harness must be entered.
        Raises :class:`MismatchError` where ``host`` does."""
        # Between its parallel regions torch's worker threads spin, on the core that the harness
        # needs: with them the run is half as fast. Golden's batches barely need them.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for image, index, label, golden in host.inputs(images, labels, indices):
                start_cycles = self.simulated_cycles
                steps = host.image(image, index, golden)
                request = next(steps)
                while True:
                    result = self.run_layer(*request)
                    try:
                        request = steps.send(result)
                    except StopIteration as done:
                        record = done.value
                        break
                host.image_done(record, label, self.simulated_cycles - start_cycles)
        finally:
            torch.set_num_threads(threads)

    def run_layer(
        self, beats: LayerBeats, x: np.ndarray, expected: np.ndarray | None = None
    ) -> LayerResult:
        """Run one layer on its input ``x`` (one image's value, no batch axis) and check it
        against golden's output ``expected`` (computed here when not given), as
        :meth:`vq4all.sim.rtl.testbench.AcceleratorTestbench.run_layer` does."""
        try:
            run = self.run(beats.input_words(x), beats.output_beats, hang_budget(beats))
        except SimulationError as error:
            raise SimulationError(f"layer {beats.run.name or beats.run.shape}: {error}") from None
        if expected is None:
            expected = run_layer(beats.codebook, beats.program, x[None])[0]
        return LayerResult(beats.outputs_from_words(run.outputs), expected, run.cycles)
