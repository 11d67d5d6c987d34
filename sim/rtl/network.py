"""Whole network programs on the RTL: the host side of ``vq4all simulate --network``.

It checks the program against the accelerator before anything is simulated (the codebook in
the ROM, every layer within the accelerator's limits), runs test images (real ones, chosen by
the caller from the program's data set) through ONE Verilator process with a progress
display, checks every layer's measured cycles against the closed-form model, and writes
``report.json`` and ``report.csv``.

The process is the C++ harness (:mod:`vq4all.sim.rtl.harness`, whole layer runs at Verilator's
speed) unless stalls or waveforms are asked for: those need cocotb's per-cycle drivers
(:func:`vq4all.sim.rtl.cocotb_accelerator.network_matches_golden`). Either way every layer output is
checked against golden by :class:`vq4all.sim.rtl.host.NetworkHost`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vq4all.golden.codebook import CODEBOOK_FORMAT, Codebook, load_codebook
from vq4all.golden.container import ArtifactError, artifact_metadata
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import make_directory, write_csv, write_json
from vq4all.golden.network import NetworkProgram, load_network
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.cycles import layer_cycles, utilization
from vq4all.sim.arch.mapping import LayerRun, check_fits, network_runs
from vq4all.sim.rtl.build import SimulationError, Simulator
from vq4all.sim.rtl.harness import Harness
from vq4all.sim.rtl.host import NETWORK_RESULT, PROGRESS_NAME, MismatchError, NetworkHost
from vq4all.sim.rtl.job import Job, NetworkRun
from vq4all.sim.rtl.parallel import run_on_ray

__all__ = [
    "REPORT_CSV",
    "REPORT_JSON",
    "CycleModelError",
    "LayerReport",
    "MismatchError",
    "NetworkReport",
    "NetworkSimulation",
    "TestImages",
    "accelerator_for",
    "check_cycles",
    "check_program",
    "find_codebook",
    "simulate_network",
]

REPORT_JSON = "report.json"
REPORT_CSV = "report.csv"


@dataclass(frozen=True)
class LayerReport:
    """One layer op of a network run: a row of ``report.csv`` and of ``report.json``'s
    ``layers``. ``cycles`` is the mean over the images that reached it (every image takes the
    same without stalls), ``None`` (as are ``utilization`` and ``bit_exact``) when none did."""

    name: str
    kind: str
    shape: list[int]
    groups: int
    columns: int
    cycles: int | None
    model_cycles: int
    utilization: float | None
    bit_exact: bool | None


@dataclass(frozen=True)
class NetworkReport:
    """What a network run on the RTL measured; :meth:`to_json` is ``report.json``."""

    network: str
    dataset: str
    mode: str
    params: AcceleratorParams
    codebook_sha256: str
    driver: str
    idle: bool
    backpressure: bool
    images: int
    image_indices: list[int]
    images_bit_exact: int
    rtl_top1: float
    golden_top1: float
    rtl_predictions_equal_golden: bool
    cycles_per_image: int | None
    model_cycles_per_image: int
    simulated_cycles: int
    simulation_wall_seconds: float
    simulated_cycles_per_second: int
    total_wall_seconds: float
    mismatches: list[dict]
    layers: list[LayerReport]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def write(self, out_dir: str | os.PathLike) -> None:
        """``report.json`` and ``report.csv`` (one row per layer) into ``out_dir``."""
        write_json(Path(out_dir) / REPORT_JSON, self.to_json())
        rows = [
            dataclasses.asdict(row) | {"shape": "x".join(map(str, row.shape))}
            for row in self.layers
        ]
        columns = [field.name for field in dataclasses.fields(LayerReport)]
        write_csv(Path(out_dir) / REPORT_CSV, rows, columns)

    def format(self) -> str:
        """The per-layer table and the summary, as text."""
        header = ("layer", "kind", "shape", "groups", "columns", "cycles", "model", "util", "exact")
        width = max([10, *(len(row.name) for row in self.layers)])
        lines = [
            f"[{self.mode}] {self.network} on {self.images} {self.dataset} test images, "
            f"L={self.params.L}",
            "  "
            + " ".join(
                f"{name:{align}{size}}"
                for name, align, size in zip(
                    header, "<<>>>>>>>", (width, 7, 9, 6, 7, 9, 9, 6, 5), strict=True
                )
            ),
        ]
        for row in self.layers:
            lines.append(
                f"  {row.name:<{width}} {row.kind:<7} {'x'.join(map(str, row.shape)):>9} "
                f"{row.groups:>6} {row.columns:>7} {row.cycles:>9,} "
                f"{row.model_cycles:>9,} {row.utilization:>6.3f} "
                f"{'yes' if row.bit_exact else 'NO':>5}"
            )
        same = "=" if self.rtl_predictions_equal_golden else "!="
        top1 = (
            f"predictions RTL {same} golden (no labels)"
            if math.isnan(self.rtl_top1)
            else f"top-1 RTL {100 * self.rtl_top1:.2f}% {same} golden {100 * self.golden_top1:.2f}%"
        )
        lines.append(
            f"  images bit-exact {self.images_bit_exact}/{self.images}; {top1}; "
            f"{self.cycles_per_image:,} cycles per image (model "
            f"{self.model_cycles_per_image:,}); {self.simulated_cycles_per_second:,} "
            "simulated cycles/s"
        )
        return "\n".join(lines)


class CycleModelError(SimulationError):
    """A layer's measured cycles differ from the closed-form model's."""


def find_codebook(program_path: str | os.PathLike, sha256: str) -> Path:
    """The codebook file beside ``program_path`` whose codewords hash to ``sha256``.

    Raises ``FileNotFoundError`` saying what to pass when there is none.
    """
    directory = Path(program_path).parent
    for candidate in sorted(directory.glob("*.safetensors")):
        try:
            metadata = artifact_metadata(candidate)
        except ArtifactError:  # not ours to judge: only a matching codebook is of interest here
            continue
        if metadata.get("format") == CODEBOOK_FORMAT and metadata.get("sha256") == sha256:
            return candidate
    raise FileNotFoundError(
        f"{program_path}: no codebook with sha256 {sha256[:16]}... beside it; give it with "
        "--codebook"
    )


def accelerator_for(
    program: NetworkProgram,
    codebook: Codebook | None,
    mode: str = "rom",
    L: int = 4,  # noqa: N803 - the paper's name
    max_inputs: int | None = None,
    max_outputs: int | None = None,
    max_columns: int | None = None,
) -> AcceleratorParams:
    """Accelerator parameters for ``program``, with its activation width: the limits that are
    not given are the program's largest layer run. The codebook memory holds ``codebook`` (the
    universal one), or for a per-layer VQ program (no ``codebook``) the largest layer's own,
    rounded up to a power of two."""
    if codebook is None:
        largest = max(own.K for own in program.codebooks)
        K, D = 1 << (largest - 1).bit_length(), program.codebooks[0].D  # noqa: N806
    else:
        K, D = codebook.K, codebook.D  # noqa: N806
    return AcceleratorParams.for_runs(
        network_runs(program),
        K,
        D,
        L,
        mode,
        program.activation_bits,
        max_inputs,
        max_outputs,
        max_columns,
    )


def check_program(
    params: AcceleratorParams,
    program: NetworkProgram,
    codebook: Codebook | None,
    path: str | os.PathLike,
) -> list[LayerRun]:
    """The layer runs of ``program`` (file ``path``), once it is known to run on ``params`` with
    ``codebook`` in its ROM (or loaded into its SRAM), or, for a per-layer VQ program (no
    ``codebook``), with each layer's own codebook loaded into its SRAM.

    Raises :class:`ArtifactError` naming both hashes for a program of another codebook, and
    ``ValueError`` naming the layer and the limit for a layer that does not fit.
    """
    if program.per_layer:
        if params.mode != "sram":
            raise InputError(
                f"{path}: field 'codebook_scales': a per-layer VQ program loads each layer's "
                "own codebook into an SRAM; run it with --mode sram"
            )
    elif codebook is None:
        raise InputError(f"{path}: a program of the universal codebook needs the codebook")
    elif program.codebook_sha256 != codebook.sha256:
        memory = "ROM holds" if params.mode == "rom" else "SRAM would load"
        raise ArtifactError(
            f"{path}: field 'codebook_sha256': the program was compressed against codebook "
            f"{program.codebook_sha256}, but the accelerator's {memory} {codebook.sha256}"
        )
    else:
        program.check_codebook(codebook)
    runs = network_runs(program)
    layer_indices = [op.layer for op in program.layer_ops()]
    for run, k in zip(runs, layer_indices, strict=True):
        try:
            check_fits(params, program.layers[k], run)
        except ValueError as error:
            raise InputError(f"{path}: layer {run.name!r} (layers[{k}]): {error}") from None
    return runs


def check_cycles(
    params: AcceleratorParams,
    runs: list[LayerRun],
    measured: list[list[int]],
    model: Callable[[AcceleratorParams, LayerRun], int] = layer_cycles,
) -> None:
    """Raise :class:`CycleModelError` unless every measured cycle count of every layer
    (``measured[layer][image]``, runs without stalls) equals ``model``'s."""
    wrong = [
        f"layer {run.name!r}: measured {sorted(set(cycles))}, model {model(params, run)}"
        for run, cycles in zip(runs, measured, strict=True)
        if any(count != model(params, run) for count in cycles)
    ]
    if wrong:
        raise CycleModelError(f"the cycle model is off: {'; '.join(wrong)}")


@dataclass(frozen=True)
class TestImages:
    """Images ``x [B, *input_shape]`` (float) of data set ``dataset`` with their labels, and
    the index of each in that data set's test split."""

    dataset: str
    x: torch.Tensor
    labels: torch.Tensor
    indices: list[int]


@dataclass(frozen=True)
class NetworkSimulation:
    """A network program run on the RTL: which program and accelerator, and where.

    The limits of :func:`accelerator_for` default to the program's. ``build_root`` holds the
    Verilator builds (default ``out_dir/build``). ``jobs`` harness processes share the images,
    on Ray (:mod:`vq4all.sim.rtl.parallel`): a cluster on this machine, or the one at
    ``ray_address``.
    """

    program: Path
    out_dir: Path = Path("build/simulate")
    codebook: Path | None = None
    mode: str = "rom"
    L: int = 4  # noqa: N815 - the paper's name
    max_inputs: int | None = None
    max_outputs: int | None = None
    max_columns: int | None = None
    idle: bool = False
    backpressure: bool = False
    keep_going: bool = False
    waves: bool = False
    seed: int = 0
    build_root: Path | None = None
    cocotb: bool = False
    jobs: int = 1
    ray_address: str | None = None

    @property
    def driver(self) -> str:
        """``"harness"`` (the C++ loop, whole layer runs) unless stalls, waveforms or ``cocotb``
        ask for cocotb's per-cycle drivers."""
        per_cycle = self.cocotb or self.idle or self.backpressure or self.waves
        return "cocotb" if per_cycle else "harness"

    def replay_command(self, image: int, dataset: str | None = None) -> str:
        """The command line that runs test image ``image`` (of ``dataset``, when it is not the
        program's) alone, with a waveform."""
        words = ["vq4all simulate --network", str(self.program), f"--image {image} --waves"]
        if dataset is not None:
            words.append(f"--data {dataset}")
        defaults = NetworkSimulation(self.program)
        for name in ("codebook", "mode", "L", "max_inputs", "max_outputs", "max_columns", "seed"):
            value = getattr(self, name)
            if value != getattr(defaults, name):
                words.append(f"--{name.replace('_', '-')} {value}")
        words += [f"--{flag}" for flag in ("idle", "backpressure") if getattr(self, flag)]
        return " ".join(words)


class _ProgressDisplay(threading.Thread):
    """Shows the images done, the simulated cycles per second and the mismatches so far, from
    the progress lines that the simulator process writes."""

    def __init__(self, path: Path, total: int, enabled: bool) -> None:
        super().__init__(daemon=True)
        self.path, self.stop = path, threading.Event()
        self.bar = tqdm(total=total, unit="image", desc="RTL", disable=not enabled)

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.update()

    def update(self) -> None:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        if not lines:
            return
        last = json.loads(lines[-1])
        self.bar.n = last["images"]
        speed = last["simulated_cycles"] / max(last["wall_seconds"], 1e-9)
        self.bar.set_postfix(cycles_per_s=f"{speed:,.0f}", mismatches=last["mismatches"])

    def close(self) -> None:
        self.stop.set()
        self.join()
        self.update()
        self.bar.close()


def _layer_reports(params, runs, program, measured) -> list[LayerReport]:
    rows = []
    for run, op, record in zip(runs, program.layer_ops(), measured, strict=True):
        # Without stalls every image takes the same cycles; with stalls, their mean. A layer
        # that no image reached (the run stopped at a mismatch before it) has none.
        ran = bool(record["cycles"])
        cycles = round(sum(record["cycles"]) / len(record["cycles"])) if ran else None
        rows.append(
            LayerReport(
                name=run.name,
                kind=program.layers[op.layer].kind,
                shape=list(run.shape),
                groups=run.conv_groups,
                columns=run.columns,
                cycles=cycles,
                model_cycles=layer_cycles(params, run),
                utilization=round(utilization(params, run, cycles), 4) if ran else None,
                bit_exact=all(record["bit_exact"]) if ran else None,
            )
        )
    return rows


def _mismatch_message(
    simulation: NetworkSimulation, program: NetworkProgram, images: TestImages, mismatches
) -> str:
    first = mismatches[0]
    pixel = f", pixel {first['pixel']}" if first["pixel"] is not None else ""
    other_data = images.dataset if images.dataset != program.dataset else None
    return (
        f"RTL != golden on {len(mismatches)} layer output(s); first: image {first['image']}, "
        f"layer {first['layer']!r} (graph[{first['op']}]), output channel {first['channel']}"
        f"{pixel}: expected {first['expected']}, RTL {first['actual']} ({first['mismatched']} of "
        f"{first['outputs']} outputs differ). Waveform of that run: "
        f"{simulation.replay_command(first['image'], other_data)}"
    )


def _run(simulation, params, codebook, codebook_path, images, progress) -> dict:
    """Run the images in the simulator; return what it measured (``network.json``)."""
    out = make_directory(simulation.out_dir)
    results = make_directory(out / "results")
    for stale in (NETWORK_RESULT + ".json", PROGRESS_NAME):
        (results / stale).unlink(missing_ok=True)
    np.save(out / "images.npy", images.x.numpy())
    np.save(out / "labels.npy", images.labels.numpy())
    run = NetworkRun(
        str(simulation.program),
        str(out / "images.npy"),
        str(out / "labels.npy"),
        list(images.indices),
        simulation.idle,
        simulation.backpressure,
        simulation.keep_going,
    )
    job = Job(params, str(codebook_path), str(results), network=run, seed=simulation.seed)
    root = simulation.build_root or out / "build"
    if simulation.driver == "cocotb":
        simulator = Simulator.build(params, codebook, root=root, waves=simulation.waves)
    else:
        harness = Harness.build(params, codebook, root=root)
    display = _ProgressDisplay(results / PROGRESS_NAME, len(images.indices), progress)
    display.start()
    failure = None
    try:
        if simulation.driver == "cocotb":
            simulator.run(job, out / "job.json", test_filter="network_matches_golden$")
        elif simulation.jobs > 1:
            measured = run_on_ray(
                harness, simulation, codebook_path, images, results / PROGRESS_NAME
            )
            job.write_result(NETWORK_RESULT, measured)
        else:
            host = NetworkHost.for_job(job, codebook)
            try:
                with harness:
                    harness.run_images(host, images.x, images.labels.tolist(), images.indices)
            finally:
                job.write_result(NETWORK_RESULT, host.result())
    except SimulationError as error:  # a mismatch, a hang or a failed cocotb test
        failure = error
    finally:
        display.close()
    result_file = results / f"{NETWORK_RESULT}.json"
    if not result_file.exists():
        raise failure or SimulationError(f"the simulator wrote no {result_file}")
    measured = json.loads(result_file.read_text())
    # A failure with mismatches recorded is the scoreboard's verdict, reported below; any other
    # failure (a hang, a crash) is the simulator's.
    if failure is not None and not measured["mismatches"]:
        raise failure
    return measured


def simulate_network(
    simulation: NetworkSimulation, images: TestImages, progress: bool = True
) -> NetworkReport:
    """Run ``images`` through the program of ``simulation`` on the RTL and return the report
    (also written as ``report.json`` and ``report.csv`` into ``out_dir``).

    Raises, before anything is simulated: :class:`ArtifactError` for a bad program or a program
    of another codebook, ``ValueError`` for a layer that does not fit or images of another
    shape, ``FileNotFoundError`` for missing files. After the run (the report written):
    :class:`MismatchError` if any layer output differed from golden, :class:`CycleModelError`
    if, without stalls, any layer's cycles differ from the model's.
    """
    if simulation.jobs < 1:
        raise InputError(f"--jobs {simulation.jobs}: give at least 1")
    if simulation.jobs > 1 and simulation.driver == "cocotb":
        raise InputError(
            f"--jobs {simulation.jobs}: parallel runs use the C++ harness; --idle, "
            "--backpressure, --waves and --cocotb drive every cycle from one cocotb process"
        )
    program = load_network(simulation.program)
    if program.per_layer:
        if simulation.codebook is not None:
            raise InputError(
                f"--codebook {simulation.codebook}: {simulation.program} is a per-layer VQ "
                "program and carries its layers' own codebooks"
            )
        codebook, codebook_path = None, ""
    else:
        codebook_path = simulation.codebook or find_codebook(
            simulation.program, program.codebook_sha256
        )
        codebook = load_codebook(codebook_path)
    params = accelerator_for(
        program,
        codebook,
        simulation.mode,
        simulation.L,
        simulation.max_inputs,
        simulation.max_outputs,
        simulation.max_columns,
    )
    runs = check_program(params, program, codebook, simulation.program)
    if tuple(images.x.shape[1:]) != tuple(program.input_shape):
        raise InputError(
            f"{simulation.program}: field 'input_shape': {list(program.input_shape)} does not "
            f"match the {images.dataset} images {list(images.x.shape[1:])}"
        )
    started = time.perf_counter()
    measured = _run(simulation, params, codebook, codebook_path, images, progress)
    done = measured["images"]
    predicted = np.array([image["prediction"] for image in done])
    golden = np.array([image["golden_prediction"] for image in done])
    labels = images.labels.numpy()[: len(done)]
    # Images of the user's without labels carry -1: no accuracy to report.
    labelled = bool(done) and bool((labels >= 0).all())
    rows = _layer_reports(params, runs, program, measured["layers"])
    report = NetworkReport(
        network=str(simulation.program),
        dataset=images.dataset,
        mode=params.mode,
        params=params,
        codebook_sha256=program.codebook_sha256,
        driver=simulation.driver,
        idle=simulation.idle,
        backpressure=simulation.backpressure,
        images=len(done),
        image_indices=[image["index"] for image in done],
        images_bit_exact=sum(image["bit_exact"] for image in done),
        rtl_top1=float((predicted == labels).mean()) if labelled else math.nan,
        golden_top1=float((golden == labels).mean()) if labelled else math.nan,
        rtl_predictions_equal_golden=bool(np.array_equal(predicted, golden)),
        cycles_per_image=None
        if any(row.cycles is None for row in rows)
        else sum(row.cycles for row in rows),
        model_cycles_per_image=sum(layer_cycles(params, run) for run in runs),
        simulated_cycles=measured["simulated_cycles"],
        simulation_wall_seconds=round(measured["wall_seconds"], 3),
        simulated_cycles_per_second=round(
            measured["simulated_cycles"] / max(measured["wall_seconds"], 1e-9)
        ),
        total_wall_seconds=round(time.perf_counter() - started, 3),
        mismatches=measured["mismatches"],
        layers=rows,
    )
    report.write(simulation.out_dir)
    if measured["mismatches"]:
        raise MismatchError(_mismatch_message(simulation, program, images, measured["mismatches"]))
    if not (simulation.idle or simulation.backpressure):
        check_cycles(params, runs, [record["cycles"] for record in measured["layers"]])
    return report
