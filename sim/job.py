"""A simulation job: what the pytest/CLI side hands to the cocotb tests inside the simulator.

The job is a JSON file named by the ``VQ4ALL_JOB`` environment variable. It points at the
codebook and layer program artifacts (validated again on load) and the int8 input vectors, and
names the directory where each cocotb test writes its measured results as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from golden.artifacts import Codebook, LayerProgram, load_codebook, load_layer, write_atomically
from hw.params import AcceleratorParams
from sim.encode import check_fits

__all__ = ["JOB_ENV", "Job", "load_job"]

JOB_ENV = "VQ4ALL_JOB"


@dataclass(frozen=True)
class Job:
    """Accelerator parameters, the codebook file, and cases of (layer program, inputs .npy)."""

    params: AcceleratorParams
    codebook: str
    cases: list[tuple[str, str]]
    results_dir: str
    seed: int = 0
    reset_case: int | None = None

    def save(self, path: str | os.PathLike) -> None:
        """Write the job with absolute paths: the simulator runs in another directory."""
        fields = dataclasses.asdict(self)
        fields["codebook"] = str(Path(self.codebook).resolve())
        fields["cases"] = [[str(Path(name).resolve()) for name in case] for case in self.cases]
        fields["results_dir"] = str(Path(self.results_dir).resolve())
        write_atomically(path, (json.dumps(fields, indent=1) + "\n").encode())

    def load_codebook(self) -> Codebook:
        return load_codebook(self.codebook)

    def load_cases(self, codebook: Codebook) -> list[tuple[str, LayerProgram, np.ndarray]]:
        """(name, program, inputs) of every case, validated against the codebook and checked to
        fit the accelerator; raise ``ArtifactError``/``ValueError`` naming the file."""
        cases = []
        for program_path, inputs_path in self.cases:
            program = load_layer(program_path, codebook)
            try:
                inputs = np.load(inputs_path, allow_pickle=False)
                check_fits(self.params, program, inputs)
            except ValueError as error:
                raise ValueError(f"{program_path}: {error}") from None
            cases.append((Path(program_path).stem, program, inputs))
        return cases

    def write_result(self, name: str, rows: list[dict]) -> None:
        path = Path(self.results_dir) / f"{name}.json"
        write_atomically(path, (json.dumps(rows, indent=1) + "\n").encode())


def load_job(path: str | os.PathLike | None = None) -> Job:
    """The job at ``path``, or at ``$VQ4ALL_JOB``."""
    path = path or os.environ[JOB_ENV]
    fields = json.loads(Path(path).read_text())
    fields["params"] = AcceleratorParams(**fields["params"])
    fields["cases"] = [tuple(case) for case in fields["cases"]]
    return Job(**fields)
