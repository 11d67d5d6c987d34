"""A simulation job: what the pytest/CLI side hands to the cocotb tests inside the simulator.

The job is a JSON file named by the ``VQ4ALL_JOB`` environment variable. It points at the
codebook and the programs (validated again on load) with their inputs, and names the directory
where each cocotb test writes what it measured as JSON. Its ``cases`` are layer programs with
one input vector each (of the layer's activation width); its ``network`` is a network program
with images to run through it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vq4all.golden.codebook import Codebook, load_codebook
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import write_json
from vq4all.golden.layer import load_layer
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.rtl.encode import LayerBeats

__all__ = ["JOB_ENV", "Job", "NetworkRun", "load_job"]

JOB_ENV = "VQ4ALL_JOB"


@dataclass(frozen=True)
class NetworkRun:
    """A network program run on images: ``images`` (float ``.npy``, ``[B, *input_shape]``),
    ``labels`` (int ``.npy``), the test-set index of each image (for messages and replays), and
    the stalls. With ``keep_going`` a mismatch is counted rather than fatal."""

    program: str
    images: str
    labels: str
    image_indices: list[int]
    idle: bool = False
    backpressure: bool = False
    keep_going: bool = False

    def load_images(self) -> tuple[torch.Tensor, list[int]]:
        """The images (float) and their labels."""
        images = torch.from_numpy(np.load(self.images, allow_pickle=False))
        return images, np.load(self.labels, allow_pickle=False).tolist()


@dataclass(frozen=True)
class Job:
    """Accelerator parameters, the codebook file, and the work: ``cases`` of (layer program,
    inputs ``.npy``) and/or a ``network`` run."""

    params: AcceleratorParams
    codebook: str
    results_dir: str
    cases: list[tuple[str, str]] = field(default_factory=list)
    network: NetworkRun | None = None
    seed: int = 0
    reset_case: int | None = None

    def save(self, path: str | os.PathLike) -> None:
        """Write the job with absolute paths: the simulator runs in another directory."""
        fields = dataclasses.asdict(self)
        fields["codebook"] = str(Path(self.codebook).resolve()) if self.codebook else ""
        fields["cases"] = [[str(Path(name).resolve()) for name in case] for case in self.cases]
        fields["results_dir"] = str(Path(self.results_dir).resolve())
        if self.network is not None:
            for name in ("program", "images", "labels"):
                fields["network"][name] = str(Path(getattr(self.network, name)).resolve())
        write_json(path, fields)

    def load_codebook(self) -> Codebook | None:
        """The universal codebook; none for a per-layer VQ program's job (``codebook`` empty)."""
        return load_codebook(self.codebook) if self.codebook else None

    def load_cases(self, codebook: Codebook) -> list[tuple[str, LayerBeats, np.ndarray]]:
        """(name, beats, inputs) of every case, validated against the codebook and checked to
        fit the accelerator; raise ``ArtifactError``/``ValueError`` naming the file."""
        cases = []
        for program_path, inputs_path in self.cases:
            program = load_layer(program_path, codebook)
            try:
                beats = LayerBeats(self.params, program, codebook)
                inputs = np.load(inputs_path, allow_pickle=False)
                beats.columns(inputs)  # the activations' dtype and shape
            except ValueError as error:
                raise InputError(f"{program_path}: {error}") from None
            cases.append((Path(program_path).stem, beats, inputs))
        return cases

    def write_result(self, name: str, result) -> None:
        path = Path(self.results_dir) / f"{name}.json"
        write_json(path, result)


def load_job(path: str | os.PathLike | None = None) -> Job:
    """The job at ``path``, or at ``$VQ4ALL_JOB``."""
    path = path or os.environ[JOB_ENV]
    fields = json.loads(Path(path).read_text())
    fields["params"] = AcceleratorParams(**fields["params"])
    fields["cases"] = [tuple(case) for case in fields["cases"]]
    if fields["network"] is not None:
        fields["network"] = NetworkRun(**fields["network"])
    return Job(**fields)
