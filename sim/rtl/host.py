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
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vq4all.golden.codebook import Codebook
from vq4all.golden.network import LayerOp, load_network, network_values
from vq4all.hw.accelerator import PIPELINE_DEPTH
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
    index_beats = beats.run.columns * beats.tiling.beats
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


class NetworkHost:
    """A job's network run, image by image: every layer op on the RTL with that layer's
    indices and requantization parameters and the real activations of the ops before it,
    every host op (pooling, flatten, ReLU, residual add) in golden between them, as a host CPU
    would. Records what was measured as ``network.json`` (read by
    :mod:`vq4all.sim.rtl.network`) and, image by image, as progress lines.
    """

    def __init__(self, job: Job, codebook: Codebook | None) -> None:
        run = job.network
        self.job, self.run, self.codebook = job, run, codebook
        self.program = load_network(run.program, codebook)
        shapes = self.program.value_shapes()
        layer_ops = {i: op for i, op in enumerate(self.program.graph) if isinstance(op, LayerOp)}
        self.beats = {
            i: LayerBeats(
                job.params,
                self.program.layers[op.layer],
                self.program.layer_codebook(op.layer, codebook),
                shapes[op.input],
                op.name,
            )
            for i, op in layer_ops.items()
        }
        self.layers = {
            i: {"op": i, "name": op.name, "cycles": [], "bit_exact": []}
            for i, op in layer_ops.items()
        }
        self.images: list[dict] = []
        self.mismatches: list[dict] = []
        self.simulated_cycles = 0
        self.wall_seconds = 0.0
        self._clock = time.perf_counter()
        self.progress = Path(job.results_dir) / PROGRESS_NAME
        self.progress.write_text("")

    def inputs(self) -> Iterator[tuple[torch.Tensor, int, int, list[torch.Tensor]]]:
        """(image, its index in the test set, its label, golden's values of it) of every image
        of the run."""
        images = torch.from_numpy(np.load(self.run.images, allow_pickle=False))
        labels = np.load(self.run.labels, allow_pickle=False).tolist()
        self._clock = time.perf_counter()
        for start in range(0, len(images), GOLDEN_BATCH):
            batch = images[start : start + GOLDEN_BATCH]
            golden = network_values(self.codebook, self.program, batch)
            for i, image in enumerate(batch):
                yield (
                    image,
                    self.run.image_indices[start + i],
                    labels[start + i],
                    [value[i] for value in golden],
                )

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
                if not self.run.keep_going:
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
        line = {
            "images": len(self.images),
            "simulated_cycles": self.simulated_cycles,
            "wall_seconds": self.wall_seconds,
            "mismatches": len(self.mismatches),
        }
        with self.progress.open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def write(self) -> None:
        self.job.write_result(
            NETWORK_RESULT,
            {
                "layers": list(self.layers.values()),
                "images": self.images,
                "mismatches": self.mismatches,
                "simulated_cycles": self.simulated_cycles,
                "wall_seconds": self.wall_seconds,
            },
        )
