"""``vq4all energy``: the model of :mod:`vq4all.sim.energy.model` over the programs of one or more
networks, each beside the accuracy of the method it runs, with its sweeps, written as
``energy.json``, ``energy.csv`` and PNG plots.

A network's VQ4ALL program (of the universal codebook) gives its layers; a per-layer VQ program
of the same layers (its layers' own codebooks) gives ``sram_per_layer`` its codebook sizes; the
uniform architectures run the same layers. Everything is computed and every plot rendered
before the first file is written, so a bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vq4all.golden.container import ArtifactError, artifact_metadata
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import make_directory, write_atomically, write_csv, write_json
from vq4all.golden.layer import LAYER_FORMAT, load_layer
from vq4all.golden.network import NETWORK_FORMAT, load_network
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.mapping import LayerRun, layer_run, network_runs
from vq4all.sim.energy.model import (
    ARCHITECTURES,
    COMPONENTS,
    DATAFLOWS,
    Activity,
    Architecture,
    Memories,
    Program,
    Schedule,
    area_mm2,
    inference_activity,
    memories_for,
    price,
    schedule_activity,
    stored_bytes,
)
from vq4all.sim.energy.tables import EnergyTable

__all__ = [
    "ENERGY_CSV",
    "ENERGY_JSON",
    "EnergyReport",
    "Setup",
    "energy_report",
    "load_accuracies",
    "load_programs",
    "parse_schedule",
]

ENERGY_JSON = "energy.json"
ENERGY_CSV = "energy.csv"
#: What the sweeps span: ROM read energy as a fraction of the SRAM's and the int4 MAC's as a
#: fraction of the int8 one's (no published figure for either, so swept), DRAM energy per bit
#: (HBM2 3.9 to DDR3 70 pJ/bit and beyond), the weight SRAM (none, then 1 KiB to 8 MiB), the
#: task-switch interval in inferences, and the inference rate (one an hour to the most the
#: slowest architecture sustains).
ROM_READ_FRACTIONS = np.round(np.linspace(0.1, 1.0, 19), 4).tolist()
INT4_MAC_FRACTIONS = np.round(np.linspace(0.25, 1.0, 16), 4).tolist()
DRAM_PJ_PER_BIT = np.round(np.geomspace(1.0, 100.0, 21), 4).tolist()
WEIGHT_SRAM_KIB = [0] + [2**i for i in range(14)]
SWITCH_EVERY = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
RATE_POINTS = 25


@dataclass(frozen=True)
class Setup:
    """What the model is asked: the weight SRAM and activation buffer (KiB; ``None`` sizes each
    to fit), the dataflow, and the schedule."""

    schedule: Schedule = Schedule()
    weight_sram_kib: float | None = None
    act_buffer_kib: float | None = None
    dataflow: str = "stream"

    def __post_init__(self) -> None:
        if self.dataflow not in DATAFLOWS:
            raise InputError(f"--dataflow {self.dataflow!r} is not one of {', '.join(DATAFLOWS)}")
        for name in ("weight_sram_kib", "act_buffer_kib"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                flag = "--" + name.removesuffix("_kib").replace("_", "-")
                raise InputError(f"{flag} {value!r} is not a size in KiB (>= 0)")

    def memories(self, params, programs, architecture: Architecture) -> Memories:
        def size(kib):
            return None if kib is None else int(kib * 1024)

        return memories_for(
            params,
            programs,
            architecture,
            size(self.weight_sram_kib),
            size(self.act_buffer_kib),
            self.dataflow,
        )


def _shape(runs: list[LayerRun]) -> tuple:
    return tuple((r.out_features, r.in_features, r.conv_groups, r.pixels) for r in runs)


def load_programs(
    paths: list[str | os.PathLike],
) -> tuple[list[Program], list[dict], int, int, int]:
    """The programs of ``paths`` (network programs, or linear layer programs), one per network:
    each VQ4ALL program with the per-layer VQ programs of the same layers; what identifies each
    file; the universal codebook's K and D; the activation width.

    Raises :class:`ArtifactError` naming the file and field for another kind of file, a
    convolution layer program (its input shape is the network's), VQ4ALL programs of different
    codebooks or any of different activation widths (one accelerator runs them all), and a
    per-layer VQ program with no VQ4ALL program of the same layers.
    """
    universal, per_layer, identities, shapes, widths = [], [], [], set(), set()
    for path in paths:
        found = artifact_metadata(path).get("format")
        if found == NETWORK_FORMAT:
            network = load_network(path)
            runs, layers, own = network_runs(network), network.layers, network.per_layer
            sha256 = network.codebook_sha256
        elif found == LAYER_FORMAT:
            layer = load_layer(path)
            if layer.kind != "linear":
                raise ArtifactError(
                    f"{path}: field 'kind': a {layer.kind} layer program has no input shape; "
                    "give the network program it belongs to"
                )
            runs, layers, own = [layer_run(layer, name=Path(path).stem)], [layer], False
            sha256 = layer.codebook_sha256
        else:
            raise ArtifactError(
                f"{path}: field 'format': {found!r} is neither {NETWORK_FORMAT!r} nor "
                f"{LAYER_FORMAT!r}"
            )
        if not own:
            shapes |= {(layer.codebook_size, layer.codeword_length, sha256) for layer in layers}
            if len(shapes) > 1:
                raise ArtifactError(
                    f"{path}: field 'codebook_sha256': the VQ4ALL programs were compressed "
                    "against different codebooks; one ROM holds one"
                )
        widths |= {layer.activation_bits for layer in layers}
        if len(widths) > 1:
            raise ArtifactError(
                f"{path}: field 'activation_bits': the programs' activations are "
                f"{' and '.join(map(str, sorted(widths)))} bits wide; one accelerator runs one "
                "width"
            )
        (per_layer if own else universal).append((path, runs))
    if not universal:
        raise InputError(
            "the model needs a VQ4ALL program of each network (of the universal codebook)"
        )
    programs, names = [], {}
    for path, runs in universal:
        name = Path(path).stem
        if name in names.values():
            name = f"{Path(path).parent.name}/{name}"
        names[str(path)] = name
        programs.append(Program(name, tuple(runs)))
        identities.append({"name": name, "path": str(path), "layers": len(runs), "kind": "vq4all"})
    for path, runs in per_layer:
        matches = [i for i, p in enumerate(programs) if _shape(p.runs) == _shape(runs)]
        if not matches:
            raise ArtifactError(
                f"{path}: field 'layers': no VQ4ALL program given has the same layers; give the "
                "network's VQ4ALL program beside its per-layer one"
            )
        i = matches[0]
        if programs[i].per_layer_runs is None:
            programs[i] = dataclasses.replace(programs[i], per_layer_runs=tuple(runs))
        identities.append(
            {"name": programs[i].name, "path": str(path), "layers": len(runs), "kind": "per_layer"}
        )
    ((K, D, sha256),) = shapes  # noqa: N806 - the paper's names
    (bits,) = widths
    for identity in identities:
        identity["codebook_sha256"] = sha256 if identity["kind"] == "vq4all" else ""
    return programs, identities, K, D, bits


def load_accuracies(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Accuracies (or agreements), percent, by network and method, from ``path``: the rows of
    ``build/bench/model.json`` (a list ``[{network, method, value}, ...]``, or it under
    ``"rows"``) or a mapping
    ``{network: {method: value}}``. Raises :class:`InputError` naming the file and the entry."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as error:
        raise FileNotFoundError(f"{path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not JSON ({error})") from None
    rows = document.get("rows") if isinstance(document, dict) else document
    if isinstance(rows, list):
        table: dict[str, dict[str, float]] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or not {"network", "method", "value"} <= row.keys():
                raise InputError(f"{path}: field 'rows[{i}]': needs network, method and value")
            table.setdefault(str(row["network"]), {})[str(row["method"])] = row["value"]
        document = table
    if not isinstance(document, dict):
        raise InputError(f"{path}: neither model.json rows nor {{network: {{method: value}}}}")
    for network, methods in document.items():
        if not isinstance(methods, dict):
            raise InputError(f"{path}: field {network!r}: not a mapping of method to value")
        for method, value in methods.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{path}: field '{network}.{method}': {value!r} is not a number")
    return document


def parse_schedule(text: str) -> Schedule:
    """A schedule from ``key=value,...`` (keys of :class:`~vq4all.sim.energy.model.Schedule`): for
    example
    ``switch_every=10,rate_hz=100,evict_on_switch=true``.

    Raises ``ValueError`` naming the key for an unknown key or a bad value.
    """
    fields = {field.name: field.type for field in dataclasses.fields(Schedule)}
    values: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in fields:
            raise InputError(
                f"--schedule: {item!r} is not one of {', '.join(f'{k}=...' for k in fields)}"
            )
        raw = raw.strip()
        try:
            if fields[key] == "bool":
                if raw.lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError
                values[key] = raw.lower() in ("true", "yes", "1")
            else:
                values[key] = int(raw) if fields[key] == "int" else float(raw)
        except ValueError:
            raise InputError(f"--schedule: {key}={raw!r} is not a {fields[key]}") from None
    try:
        return Schedule(**values)
    except ValueError as error:
        raise InputError(f"--schedule: {error}") from None


class _Model:
    """Programs on one accelerator, under one setup; prices any architecture with any table."""

    def __init__(self, programs, params, table, setup: Setup) -> None:
        self.programs, self.params, self.table, self.setup = programs, params, table, setup

    def architectures(self, programs=None) -> list[Architecture]:
        """The architectures every one of ``programs`` runs on."""
        programs = programs or self.programs
        return [a for a in ARCHITECTURES if all(p.runs_on(a) for p in programs)]

    def memories(self, architecture, programs=None, **changes) -> Memories:
        setup = dataclasses.replace(self.setup, **changes)
        return setup.memories(self.params, programs or self.programs, architecture)

    def one_round(self, architecture, programs=None, schedule=None, table=None, **changes):
        """(activity, inferences, memories) of one round of the schedule over ``programs``."""
        programs = programs or self.programs
        schedule, table = schedule or self.setup.schedule, table or self.table
        memories = self.memories(architecture, programs, **changes)
        activity, inferences = schedule_activity(
            self.params, programs, architecture, table, schedule, memories, self.setup.dataflow
        )
        return activity, inferences, memories

    def per_inference(self, architecture, table=None, programs=None, setup=None, **schedule):
        """Energy (pJ) per inference, priced by ``table``, with the schedule's ``changes``."""
        table = table or self.table
        setup = setup or self.setup
        model = (
            _Model(self.programs, self.params, table, setup) if setup is not self.setup else self
        )
        plan = dataclasses.replace(setup.schedule, **schedule)
        activity, inferences, memories = model.one_round(architecture, programs, plan, table)
        energy = price(activity, architecture, memories, table, plan.double_buffer)
        return energy["total"] / inferences


def _row(scope, network, layer, architecture, activity: Activity, memories, table, double) -> dict:
    energy = price(activity, architecture, memories, table, double)
    return {
        "scope": scope,
        "network": network,
        "layer": layer,
        "architecture": architecture.name,
        "cycles": activity.cycles,
        "compute_cycles": activity.compute_cycles,
        "load_cycles": activity.load_cycles,
        "stall_cycles": activity.stall_cycles,
        "mac_count": activity.macs,
        "codebook_loads": activity.codebook_loads,
        **activity.traffic(),
        **{f"energy_{name}_pj": value for name, value in energy.items()},
    }


def _summary(row: dict, memories: Memories, inferences: int = 1) -> dict:
    traffic = {key: row[key] // inferences for key in row if key.endswith("_bytes")}
    return {
        "cycles": row["cycles"] // inferences,
        "load_cycles": row["load_cycles"] // inferences,
        "stall_cycles": row["stall_cycles"] // inferences,
        "codebook_loads": row["codebook_loads"] / inferences,
        "traffic": traffic,
        "energy_pj": {
            name: row[f"energy_{name}_pj"] / inferences for name in (*COMPONENTS, "total")
        },
        "memories_bytes": dataclasses.asdict(memories),
    }


def _break_even(at_zero: float, slope: float) -> float | None:
    """Where ``at_zero + slope * x`` crosses zero, if it does for some x >= 0."""
    if slope == 0:
        return None
    x = -at_zero / slope
    return x if x >= 0 else None


def _columns(rows: list[dict]) -> dict[str, list]:
    return {key: [row[key] for row in rows] for key in rows[0]}


def _sweeps(model: _Model, names: list[str]) -> tuple[dict, dict]:
    """Energy per inference of every architecture against each swept figure, and where VQ4ALL's
    ROM breaks even with each other architecture."""
    table = model.table
    sram_read = table.energy("codebook_sram", "read")
    int8_mac = table.energy("mac", "mac", weight_bits=8)
    word_bits = table.technology.word_bits

    def rom_read(fraction: float) -> EnergyTable:
        return table.with_value("codebook_rom", "read", fraction * sram_read)

    def dram(pj_per_bit: float) -> EnergyTable:
        read = table.with_value("dram", "read", pj_per_bit * word_bits)
        return read.with_value("dram", "write", pj_per_bit * word_bits)

    def int4_mac(fraction: float) -> EnergyTable:
        return table.with_value("mac", "mac", fraction * int8_mac, weight_bits=4)

    def energies(**keywords) -> dict[str, float]:
        return {f"{a}_pj": model.per_inference(a, **keywords) for a in names}

    sweeps = {
        "rom_read_fraction": {"x": ROM_READ_FRACTIONS}
        | _columns([energies(table=rom_read(f)) for f in ROM_READ_FRACTIONS]),
        "dram_pj_per_bit": {"x": DRAM_PJ_PER_BIT}
        | _columns([energies(table=dram(p)) for p in DRAM_PJ_PER_BIT]),
        "int4_mac_fraction": {"x": INT4_MAC_FRACTIONS}
        | _columns([energies(table=int4_mac(f)) for f in INT4_MAC_FRACTIONS]),
        "weight_sram_kib": {"x": WEIGHT_SRAM_KIB}
        | _columns(
            [
                energies(setup=dataclasses.replace(model.setup, weight_sram_kib=k))
                for k in WEIGHT_SRAM_KIB
            ]
        ),
        "switch_every": {"x": SWITCH_EVERY}
        | _columns([energies(switch_every=k) for k in SWITCH_EVERY]),
    }
    # Where each design's weights, every program's together, fit the weight SRAM.
    sweeps["weight_sram_kib"]["fits_kib"] = {
        name: sum(stored_bytes(model.params, p, name) for p in model.programs) / 1024
        for name in names
    }

    # Energy is linear in the ROM read energy, in the DRAM energy per bit and in the period
    # between inferences (what is always powered leaks through it): each break-even point
    # follows from two evaluations per architecture.
    def line(energy_at) -> tuple[float, float]:
        """(energy at 0, slope) of a linear ``energy_at(x)``."""
        at1, at2 = energy_at(1.0), energy_at(2.0)
        return 2 * at1 - at2, at2 - at1

    def along(name: str, tables) -> tuple[float, float]:
        return line(lambda x: model.per_inference(name, table=tables(x)))

    def in_period(name: str) -> tuple[float, float]:
        return line(lambda seconds: model.per_inference(name, rate_hz=1 / seconds))

    lines = {
        name: {
            "rom_read_fraction": along(name, rom_read),
            "dram_pj_per_bit": along(name, dram),
            "rate_hz": in_period(name),
        }
        for name in names
    }
    break_even: dict[str, dict] = {figure: {} for figure in lines["rom"]}
    for name in names:
        if name == "rom":
            continue
        other = model.per_inference(name)
        rom_at0, rom_slope = lines["rom"]["rom_read_fraction"]
        break_even["rom_read_fraction"][name] = _break_even(rom_at0 - other, rom_slope)
        for figure in ("dram_pj_per_bit", "rate_hz"):
            (rom_at0, rom_slope), (at0, slope) = lines["rom"][figure], lines[name][figure]
            parallel = abs(rom_slope - slope) <= 1e-9 * max(abs(rom_slope), abs(slope))
            crossing = None if parallel else _break_even(rom_at0 - at0, rom_slope - slope)
            if figure == "rate_hz":  # crossing is a period; a rate that both can run
                fastest = _most_inferences_per_second(model, ["rom", name])
                crossing = 1 / crossing if crossing and 1 / crossing <= fastest else None
            break_even[figure][name] = crossing
    sweeps["rate_hz"] = _rate_sweep(model, names)
    return sweeps, break_even


def _most_inferences_per_second(model: _Model, names: list[str]) -> float:
    """The most inferences per second that the slowest of ``names`` sustains."""
    unhurried = dataclasses.replace(model.setup.schedule, rate_hz=1e-9)
    busiest = 0.0
    for name in names:
        activity, inferences, _ = model.one_round(name, schedule=unhurried)
        busiest = max(busiest, activity.cycles / inferences)
    return model.table.technology.clock_mhz.value * 1e6 / busiest


def _rate_sweep(model: _Model, names: list[str]) -> dict:
    """Energy per inference against the inference rate, for every SRAM cell type the table
    has: up to 90% of the most the slowest architecture sustains."""
    most = 0.9 * _most_inferences_per_second(model, names)
    rates = np.geomspace(1 / 3600, most, RATE_POINTS).tolist()
    sweep: dict = {"x": rates}
    for cells in model.table.cell_types():
        table = model.table.with_cells(cells)
        for a in names:
            sweep[f"{a}_{cells}_pj"] = [model.per_inference(a, table, rate_hz=r) for r in rates]
    return sweep


#: The names in the answer table of the methods whose weights the architectures run
#: (:attr:`~vq4all.sim.energy.model.Architecture.methods`), as ``model.json`` names them. Their
#: accuracies are all of one kind: weights quantized, float activations.
METHOD_LABELS = {
    "uniform8": "int8",
    "uniform4": "int4 (uniform 4-bit)",
    "kmeans": "per-layer VQ, post-training",
    "perlayer-trained": "per-layer VQ, trained",
    "vq4all": "VQ4ALL",
}


@dataclass(frozen=True)
class EnergyReport:
    """The model's figures for the programs on one accelerator, table and setup;
    :meth:`to_json` is ``energy.json``, whose keys are these fields'. ``answer`` has a row per
    network and method (architecture, accuracy, energy and traffic per inference);
    per-architecture figures are keyed by the architecture's name; ``rows`` are the CSV's (per
    layer, per inference and per schedule); ``dataflows`` the dynamic energy (pJ, no leakage) of
    one inference of each network on each architecture with each dataflow."""

    programs: list[dict]
    table: str
    technology: dict
    assumptions: list[str]
    notes: list[str]
    params: AcceleratorParams
    setup: dict
    architectures: list[dict]
    answer: list[dict]
    networks: dict
    schedule_result: dict
    area_mm2: dict
    sweeps: dict
    break_even: dict
    dataflows: dict
    rows: list[dict]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def format(self, networks: list[str] | None = None) -> str:
        """The answer table of each of ``networks`` (default: all), then the schedule, the
        break-even points and where the figures come from."""
        technology, setup = self.technology, self.setup
        schedule = setup["schedule"]
        lines = [
            f"energy model: {self.table} ({technology['node_nm']:g} nm, "
            f"{technology['cells']} SRAM cells, {technology['clock_mhz']:g} MHz), L x D = "
            f"{self.params.L} x {self.params.D} MACs per cycle, {setup['dataflow']} dataflow, "
            f"weight SRAM {_size_text(setup['weight_sram_kib'])}, activation buffer "
            f"{_size_text(setup['act_buffer_kib'])}; {schedule['rate_hz']:g} inferences/s",
        ]
        row = "  {:<29} {:<19} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}".format
        header = ("method", "architecture", "acc.%", "stored B", "dyn. uJ", "leak uJ")
        for network in networks or self.networks:
            lines.append(f"{network}, per inference:")
            lines.append(row(*header, "total uJ", "DRAM B", "cycles"))
            for entry in (e for e in self.answer if e["network"] == network):
                accuracy, total, leak = entry["accuracy"], entry["energy_pj"], entry["leakage_pj"]
                lines.append(
                    row(
                        entry["method_label"] + (" *" if entry["extreme"] else ""),
                        entry["architecture"],
                        "-" if accuracy is None else f"{accuracy:.2f}",
                        f"{entry['stored_bytes']:,}",
                        f"{(total - leak) * 1e-6:.4f}",
                        f"{leak * 1e-6:.3f}",
                        f"{total * 1e-6:.3f}",
                        f"{entry['dram_bytes']:,}",
                        f"{entry['cycles']:,}",
                    )
                )
        lines.append(
            "  * a labelled extreme: the whole universal codebook reloaded before every layer"
        )
        for network in networks or self.networks:
            saved = ", ".join(
                f"{name} {1 - flows['decode_once'] / flows['stream']:.0%}"
                for name, flows in self.dataflows[network].items()
            )
            lines.append(
                f"  {network}, dynamic energy saved by decoding each tile's weights once: {saved}"
            )
        if len(schedule["order"]) > 1 and self.schedule_result:
            order = "/".join(schedule["order"])
            lines.append(
                f"schedule {order} round-robin, switching every {schedule['switch_every']} "
                "inferences: uJ per inference "
                + ", ".join(
                    f"{name} {result['energy_pj']['total'] * 1e-6:.3f}"
                    for name, result in self.schedule_result.items()
                )
            )
        fractions = self.break_even["rom_read_fraction"]
        scope = "over the schedule" if len(schedule["order"]) > 1 else schedule["order"][0]
        described = ", ".join(
            f"{name} {'never' if value is None else f'{value:.3g}x'}"
            for name, value in fractions.items()
        )
        lines.append(
            f"  {scope}: the ROM read energy (an assumption) as a fraction of the SRAM's up to "
            f"which the ROM takes less energy: vs {described}"
        )
        rates = ", ".join(
            f"{name} at {value:.3g}/s"
            for name, value in self.break_even["rate_hz"].items()
            if value is not None
        )
        if rates:
            lines.append(
                f"  {scope}: the rate at which the ROM takes another design's energy: {rates}"
            )
        lines.append(f"  {len(self.assumptions)} table figures are assumptions (energy.json)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``energy.json``, ``energy.csv`` and the plots into ``out_dir``; return the
        paths. The plots are rendered before anything is written."""
        from vq4all.sim.energy.plots import render

        report = self.to_json()
        images = render(report)
        out = make_directory(out_dir)
        write_json(out / ENERGY_JSON, report)
        write_csv(out / ENERGY_CSV, self.rows, list(self.rows[0]))
        for name, image in images.items():
            write_atomically(out / f"{name}.png", image)
        return [out / ENERGY_JSON, out / ENERGY_CSV, *(out / f"{name}.png" for name in images)]


def _size_text(kib: float | None) -> str:
    return "sized to fit" if kib is None else f"{kib:g} KiB"


def energy_report(
    paths: list[str | os.PathLike],
    table: EnergyTable,
    setup: Setup = Setup(),
    L: int = 4,  # noqa: N803 - the paper's name
    accuracies: dict[str, dict[str, float]] | None = None,
) -> EnergyReport:
    """The model's figures for ``paths`` on an accelerator of ``L`` lanes (its limits those of
    the programs' largest layers), priced by ``table``, under ``setup``, each method beside its
    accuracy from ``accuracies`` (network -> method -> percent)."""
    programs, identities, K, D, bits = load_programs(paths)  # noqa: N806
    accuracies = accuracies or {}
    runs = [run for p in programs for run in p.runs]
    params = AcceleratorParams.for_runs(runs, K, D, L, activation_bits=bits)
    model = _Model(programs, params, table, setup)
    schedule = setup.schedule
    double = schedule.double_buffer
    alone = dataclasses.replace(schedule, switch_every=1)
    rows, networks, answer = [], {}, []
    for program in programs:
        networks[program.name] = {}
        for a in model.architectures([program]):
            memories = model.memories(a, [program])
            layers, _ = inference_activity(
                params, program, a, memories, table, dataflow=setup.dataflow, double_buffer=double
            )
            rows += [
                _row("layer", program.name, run.name, a, activity, memories, table, double)
                for run, activity in zip(program.runs_for(a), layers, strict=True)
            ]
            one, _, _ = model.one_round(a, [program], alone)
            rows.append(_row("inference", program.name, "", a, one, memories, table, double))
            summary = _summary(rows[-1], memories)
            networks[program.name][a.name] = summary
            for method in a.methods:
                accuracy = accuracies.get(program.name, {}).get(method)
                if a.per_layer and method != "kmeans" and accuracy is None:
                    continue  # the trained per-layer row only where it was measured
                answer.append(
                    {
                        "network": program.name,
                        "method": method,
                        "method_label": METHOD_LABELS[method],
                        "architecture": a.name,
                        "architecture_label": a.label,
                        "extreme": a.extreme,
                        "accuracy": accuracy,
                        "energy_pj": summary["energy_pj"]["total"],
                        "leakage_pj": summary["energy_pj"]["leakage"],
                        "dram_bytes": summary["traffic"]["dram_bytes"],
                        "on_chip_read_bytes": summary["traffic"]["on_chip_read_bytes"],
                        "cycles": summary["cycles"],
                        "weight_sram_bytes": memories.weight_sram,
                        "stored_bytes": stored_bytes(params, program, a),
                        "area_mm2": area_mm2(params, a, memories, table, double)["total"],
                    }
                )
    names = [a.name for a in model.architectures()]
    result = {}
    for a in model.architectures():
        activity, inferences, memories = model.one_round(a)
        scope = "+".join(p.name for p in programs)
        rows.append(_row("schedule", scope, "", a, activity, memories, table, double))
        result[a.name] = _summary(rows[-1], memories, inferences) | {"inferences": inferences}
    sweeps, break_even = _sweeps(model, names)
    dataflows = {
        program.name: {
            a.name: {flow: _dynamic_pj(model, a, program, flow, alone) for flow in DATAFLOWS}
            for a in model.architectures([program])
        }
        for program in programs
    }
    technology = table.technology
    notes = []
    if technology.codebook_bytes != K * D:
        notes.append(
            f"the table's codebook memory figures are for a {technology.codebook_bytes:,}-byte "
            f"codebook; this one has {K * D:,} bytes"
        )
    if technology.origin != table.path:
        notes.append(f"the table has no technology section: taken from {technology.origin}")
    missing = [p.name for p in programs if p.per_layer_runs is None]
    if missing:
        notes.append(
            f"no per-layer VQ program of {', '.join(missing)}: sram_per_layer is left out there"
        )
    notes.append(
        "cycles assume the weights and DRAM keep up with one beat per cycle; leakage counts "
        f"the idle time at {schedule.rate_hz:g} inferences/s"
    )
    return EnergyReport(
        programs=identities,
        table=table.path,
        technology={
            "node_nm": technology.node_nm,
            "clock_mhz": technology.clock_mhz.value,
            "cells": technology.cells,
            "word_bits": technology.word_bits,
            "codebook_bytes": technology.codebook_bytes,
            "from": technology.origin,
        },
        assumptions=table.assumptions(),
        notes=notes,
        params=params,
        setup={
            "schedule": dataclasses.asdict(schedule)
            | {
                "order": [p.name for p in programs],
                "inferences_per_round": len(programs) * schedule.switch_every,
            },
            "weight_sram_kib": setup.weight_sram_kib,
            "act_buffer_kib": setup.act_buffer_kib,
            "dataflow": setup.dataflow,
        },
        architectures=[dataclasses.asdict(a) for a in model.architectures()],
        answer=answer,
        networks=networks,
        schedule_result=result,
        area_mm2={
            a.name: area_mm2(params, a, model.memories(a), table, double)
            for a in model.architectures()
        },
        sweeps=sweeps,
        break_even=break_even,
        dataflows=dataflows,
        rows=rows,
    )


def _dynamic_pj(model: _Model, architecture, program: Program, dataflow: str, schedule) -> float:
    """Energy of one inference of ``program`` alone without leakage, with ``dataflow``."""
    flowing = _Model(
        model.programs,
        model.params,
        model.table,
        dataclasses.replace(model.setup, dataflow=dataflow),
    )
    activity, _, memories = flowing.one_round(architecture, [program], schedule)
    energy = price(activity, architecture, memories, model.table, schedule.double_buffer)
    return energy["total"] - energy["leakage"]
