"""The host side of RTL runs, whatever drives the clock: a layer run's result, how long a layer
may take, and the host loop of a whole network.

Two drivers run layers on the generated accelerator: the cocotb testbench
(:mod:`vq4all.sim.rtl.testbench`, every cycle from Python, with idle inputs and backpressure) and
the C++ harness (:mod:`vq4all.sim.rtl.harness`, whole layer runs at Verilator's speed). Both go
through
:class:`NetworkHost`, so a network image is run, checked and recorded the same way by either.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vq4all.golden.codebook import Codebook
from vq4all.golden.network import LayerOp, load_network, network_values
from vq4all.hw.accelerator import PIPELINE_DEPTH
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.rtl.build import SimulationError
from vq4all.sim.rtl.encode import LayerBeats
from vq4all.sim.rtl.job import Job

__all__ = [
    "MismatchError",
    "DRAIN_CYCLES",
    "NETWORK_RESULT",
    "PROGRESS_NAME",
    "LayerResult",
    "NetworkHost",
    "append_progress",
    "hang_budget",
]

#: A layer that has not finished after this many cycles per input beat is hung.
HANG_FACTOR = 20
#: Cycles to watch the output after a layer's last beat, long enough for a duplicate to surface
#: through the pipeline even under backpressure.
DRAIN_CYCLES = 4 * PIPELINE_DEPTH
PROGRESS_NAME = "progress.jsonl"
NETWORK_RESULT = "network"


def hang_budget(beats: LayerBeats) -> int:
    """Cycles after which a run of ``beats`` counts as hung."""
    index_beats = beats.tiling.beats
    return HANG_FACTOR * (index_beats + len(beats.cb_load) + 50)


class MismatchError(SimulationError):
    """An RTL output differed from golden; the message says where (and, from
    :func:`vq4all.sim.rtl.network.simulate_network`, how to replay it)."""


@dataclass(frozen=True)
class LayerResult:
    """What one layer run produced: outputs and golden outputs (the layer's output shape),
    cycles from the config beat to the last output beat (both included)."""

    outputs: np.ndarray
    expected: np.ndarray
    cycles: int

    @property
    def matches(self) -> bool:
        return np.array_equal(self.outputs, self.expected)

    def first_mismatch(self) -> dict:
        """Where the outputs first differ: the output channel, the pixel (``[y, x]``, or None
        for a linear layer), the expected and actual values, and how many differ."""
        differ = np.argwhere(self.outputs != self.expected)
        where = tuple(int(i) for i in differ[0])
        return {
            "channel": where[0],
            "pixel": list(where[1:]) or None,
            "expected": int(self.expected[where]),
            "actual": int(self.outputs[where]),
            "mismatched": len(differ),
            "outputs": int(self.expected.size),
        }


#: A layer op's request to the driver: its beats, its input (no batch axis) and golden's
#: output for that input when the host already has it (else None: the driver computes it).
LayerRequest = tuple[LayerBeats, np.ndarray, np.ndarray | None]
#: Images whose golden values are computed together, up front: batched, golden is cheap next to
#: the simulation; per layer run it would cost more than the simulation itself.
GOLDEN_BATCH = 64


def append_progress(path: Path, result: dict) -> None:
    """A line of progress for a result of :meth:`NetworkHost.result`'s form: the images done,
    the simulated cycles, the wall time and the mismatches so far."""
    line = {
        "images": len(result["images"]),
        "simulated_cycles": result["simulated_cycles"],
        "wall_seconds": result["wall_seconds"],
        "mismatches": len(result["mismatches"]),
    }
    with path.open("a") as handle:
        handle.write(json.dumps(line) + "\n")


class NetworkHost:
    """The host loop of a network run, image by image: every layer op on the RTL with that
    layer's indices and requantization parameters and the real activations of the ops before
    it, every host op (pooling, flatten, ReLU, residual add) in golden between them, as a host
    CPU would. :meth:`result` is what was measured (``network.json``, read by
    :mod:`vq4all.sim.rtl.network`); with ``progress``, each image done also appends a line there.
    """

    def __init__(
        self,
        params: AcceleratorParams,
        program: str | os.PathLike,
        codebook: Codebook | None,
        keep_going: bool = False,
        progress: Path | None = None,
    ) -> None:
        self.params, self.codebook, self.keep_going = params, codebook, keep_going
        self.program = load_network(program, codebook)
        shapes = self.program.value_shapes()
        layer_ops = {i: op for i, op in enumerate(self.program.graph) if isinstance(op, LayerOp)}
        self.beats = {
            i: LayerBeats(
                params,
                self.program.layers[op.layer],
                self.program.layer_codebook(op.layer, codebook),
                shapes[op.input],
                op.name,
            )
            for i, op in layer_ops.items()
        }
        self.progress = progress
        if progress is not None:
            progress.write_text("")
        self.restart()

    @classmethod
    def for_job(cls, job: Job, codebook: Codebook | None) -> NetworkHost:
        """The host of ``job``'s network run, its progress lines in the job's results."""
        return cls(
            job.params,
            job.network.program,
            codebook,
            job.network.keep_going,
            Path(job.results_dir) / PROGRESS_NAME,
        )

    def restart(self) -> None:
        """Forget what was measured: the next images start a new :meth:`result`."""
        self.layers = {
            i: {"op": i, "name": beats.run.name, "cycles": [], "bit_exact": []}
            for i, beats in self.beats.items()
        }
        self.images: list[dict] = []
        self.mismatches: list[dict] = []
        self.simulated_cycles = 0
        self.wall_seconds = 0.0
        self._clock = time.perf_counter()

    def inputs(
        self, images: torch.Tensor, labels: list[int], indices: list[int]
    ) -> Iterator[tuple[torch.Tensor, int, int, list[torch.Tensor]]]:
        """(image, its index in the test set, its label, golden's values of it) of every image
        of ``images``."""
        self._clock = time.perf_counter()
        for start in range(0, len(images), GOLDEN_BATCH):
            batch = images[start : start + GOLDEN_BATCH]
            golden = network_values(self.codebook, self.program, batch)
            for i, image in enumerate(batch):
                yield image, indices[start + i], labels[start + i], [value[i] for value in golden]

    def image(
        self, image: torch.Tensor, index: int, golden: list[torch.Tensor]
    ) -> Generator[LayerRequest, LayerResult, dict]:
        """Run one image: yields each layer op's request, takes the driver's result back, and
        returns the image's record (the RTL's and golden's predictions, bit-exactness).
        ``golden`` holds golden's values of the image; once a layer output differs, the later
        layers' inputs are not golden's, and the driver computes golden on the inputs they
        get. A mismatch is recorded, and raises :class:`MismatchError` unless the run keeps
        going."""
        program = self.program
        values = [program.quantize(image[None])]
        exact = True
        for i, op in enumerate(program.graph):
            if not isinstance(op, LayerOp):
                values.append(op.apply(values))
                continue
            expected = golden[i + 1].numpy() if exact else None
            result = yield self.beats[i], values[op.input][0].numpy(), expected
            self.layers[i]["cycles"].append(result.cycles)
            self.layers[i]["bit_exact"].append(result.matches)
            if not result.matches:
                exact = False
                where = {"image": index, "layer": op.name, "op": i}
                self.mismatches.append(where | result.first_mismatch())
                if not self.keep_going:
                    raise MismatchError(f"image {index}, layer {op.name!r}: RTL != golden")
            # The RTL's output goes on, as it would on the hardware.
            values.append(torch.from_numpy(result.outputs[None]))
        prediction = int(values[-1][0].to(torch.int64).argmax())
        return {
            "index": index,
            "prediction": prediction,
            "golden_prediction": int(golden[-1].to(torch.int64).argmax()),
            "bit_exact": exact,
        }

    def image_done(self, record: dict, label: int, cycles: int) -> None:
        """Record an image that took ``cycles`` simulated cycles. Its wall time is all of it
        since the previous image: golden, the host ops and the driver's."""
        now = time.perf_counter()
        self.images.append(record | {"label": label})
        self.simulated_cycles += cycles
        self.wall_seconds += now - self._clock
        self._clock = now
        if self.progress is not None:
            append_progress(self.progress, self.result())

    def result(self) -> dict:
        """What was measured since the last :meth:`restart`: per layer op its cycles and
        bit-exactness on each image, each image's record, the mismatches, the simulated cycles
        and the wall time."""
        return {
            "layers": list(self.layers.values()),
            "images": self.images,
            "mismatches": self.mismatches,
            "simulated_cycles": self.simulated_cycles,
            "wall_seconds": self.wall_seconds,
        }
