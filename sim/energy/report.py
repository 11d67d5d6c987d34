"""``vq4all energy``: the cycle/energy model of :mod:`vq4all.sim.energy.model` over programs, a
table and a schedule, with its sweeps, written as ``energy.json``, ``energy.csv`` and PNG plots.

Everything is computed and every plot rendered before the first file is written, so a bad
input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
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
from vq4all.sim.arch.mapping import layer_run, network_runs
from vq4all.sim.energy.model import (
    ALTERNATIVE_NAMES,
    ARCHITECTURE_NAMES,
    COMPONENTS,
    ROM,
    Activity,
    Program,
    Schedule,
    codebook_area_mm2,
    inference_activity,
    price,
    schedule_activity,
)
from vq4all.sim.energy.tables import EnergyTable

__all__ = [
    "ENERGY_CSV",
    "ENERGY_JSON",
    "EnergyReport",
    "energy_report",
    "load_programs",
    "parse_schedule",
]

ENERGY_JSON = "energy.json"
ENERGY_CSV = "energy.csv"
#: What the sweeps span: ROM read energy as a fraction of the SRAM's (no published figure, so
#: swept), DRAM energy per bit (HBM2 3.9 to DDR3 70 pJ/bit and beyond), the task-switch
#: interval in inferences, and the inference rate (from one an hour to the accelerator's most).
ROM_READ_FRACTIONS = np.round(np.linspace(0.1, 1.0, 19), 4).tolist()
DRAM_PJ_PER_BIT = np.round(np.geomspace(1.0, 100.0, 21), 4).tolist()
SWITCH_EVERY = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
RATE_POINTS = 25


def load_programs(
    paths: list[str | os.PathLike],
) -> tuple[list[Program], list[dict], int, int, int]:
    """The programs (network programs, or linear layer programs) of ``paths``, what identifies
    each, their codebook's K and D, and their activation width.

    Raises :class:`ArtifactError` naming the file and field for another kind of file, a
    convolution layer program (its input shape is the network's), or programs of different
    codebooks or activation widths (one accelerator runs them all).
    """
    programs, identities, shapes, widths = [], [], set(), set()
    for path in paths:
        found = artifact_metadata(path).get("format")
        if found == NETWORK_FORMAT:
            network = load_network(path)
            runs = network_runs(network)
            sha256, layers = network.codebook_sha256, network.layers
        elif found == LAYER_FORMAT:
            layer = load_layer(path)
            if layer.kind != "linear":
                raise ArtifactError(
                    f"{path}: field 'kind': a {layer.kind} layer program has no input shape; "
                    "give the network program it belongs to"
                )
            runs, sha256, layers = (
                [layer_run(layer, name=Path(path).stem)],
                layer.codebook_sha256,
                [layer],
            )
        else:
            raise ArtifactError(
                f"{path}: field 'format': {found!r} is neither {NETWORK_FORMAT!r} nor "
                f"{LAYER_FORMAT!r}"
            )
        shapes |= {(layer.codebook_size, layer.codeword_length, sha256) for layer in layers}
        if len(shapes) > 1:
            raise ArtifactError(
                f"{path}: field 'codebook_sha256': the programs were compressed against "
                "different codebooks; the model compares one codebook's architectures"
            )
        widths |= {layer.activation_bits for layer in layers}
        if len(widths) > 1:
            raise ArtifactError(
                f"{path}: field 'activation_bits': the programs' activations are "
                f"{' and '.join(map(str, sorted(widths)))} bits wide; one accelerator runs one "
                "width"
            )
        name = Path(path).stem
        if any(other["name"] == name and other["path"] != str(path) for other in identities):
            name = f"{Path(path).parent.name}/{name}"
        programs.append(Program(name, tuple(runs)))
        identities.append({"name": name, "path": str(path), "layers": len(runs)})
    ((K, D, sha256),) = shapes  # noqa: N806 - the paper's names
    (bits,) = widths
    for identity in identities:
        identity["codebook_sha256"] = sha256
    return programs, identities, K, D, bits


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
    """The programs on one accelerator and schedule; prices activity with any table."""

    def __init__(self, programs, params, table, schedule) -> None:
        self.programs, self.params, self.table, self.schedule = programs, params, table, schedule

    def one_round(self, architecture: str, schedule: Schedule | None = None, table=None):
        """The activity of one round of the schedule (see :func:`schedule_activity`)."""
        schedule, table = schedule or self.schedule, table or self.table
        return schedule_activity(self.params, self.programs, architecture, table, schedule)

    def per_inference(
        self, architecture: str, table: EnergyTable | None = None, **changes
    ) -> float:
        """Energy (pJ) per inference of the schedule with ``changes``, priced by ``table``."""
        schedule = dataclasses.replace(self.schedule, **changes)
        table = table or self.table
        activity, inferences = self.one_round(architecture, schedule, table)
        return price(activity, table)["total"] / inferences


def _row(scope, network, layer, architecture, activity: Activity, table: EnergyTable) -> dict:
    energy = price(activity, table)
    return {
        "scope": scope,
        "network": network,
        "layer": layer,
        "architecture": architecture,
        "cycles": activity.cycles,
        "compute_cycles": activity.compute_cycles,
        "load_cycles": activity.load_cycles,
        "stall_cycles": activity.stall_cycles,
        "mac_count": activity.macs,
        "codebook_loads": activity.codebook_loads,
        **activity.traffic(table.technology.word_bits),
        **{f"energy_{name}_pj": value for name, value in energy.items()},
    }


def _break_even(at_zero: float, slope: float) -> float | None:
    """Where ``at_zero + slope * x`` crosses zero, if it does for some x >= 0."""
    if slope == 0:
        return None
    x = -at_zero / slope
    return x if x >= 0 else None


def _sweeps(model: _Model) -> tuple[dict, dict]:
    table = model.table
    sram_read = table.energy("codebook_sram", "read")
    word_bits = table.technology.word_bits

    def ratios(rom_table: EnergyTable, other_table: EnergyTable) -> dict[str, float]:
        rom = model.per_inference(ROM.name, rom_table)
        return {
            f"rom_over_{name}": rom / model.per_inference(name, other_table)
            for name in ALTERNATIVE_NAMES
        }

    def rom_read(fraction: float) -> EnergyTable:
        return table.with_value("codebook_rom", "read", fraction * sram_read)

    def dram(pj_per_bit: float) -> EnergyTable:
        return table.with_value("dram", "read", pj_per_bit * word_bits)

    sweeps = {
        "rom_read_fraction": {"x": ROM_READ_FRACTIONS}
        | _columns([ratios(rom_read(f), table) for f in ROM_READ_FRACTIONS]),
        "dram_pj_per_bit": {"x": DRAM_PJ_PER_BIT}
        | _columns([ratios(table, dram(p)) for p in DRAM_PJ_PER_BIT]),
        "switch_every": {"x": SWITCH_EVERY}
        | _columns(
            [
                {f"{a}_pj": model.per_inference(a, switch_every=k) for a in ARCHITECTURE_NAMES}
                for k in SWITCH_EVERY
            ]
        ),
    }
    # Energy is linear in the ROM read energy and in the DRAM energy per bit: the break-even
    # points follow from two evaluations each.
    break_even: dict[str, dict] = {"rom_read_fraction": {}, "dram_pj_per_bit": {}}
    for name in ALTERNATIVE_NAMES:
        other = model.per_inference(name)
        rom0, rom1 = (model.per_inference(ROM.name, rom_read(f)) for f in (0.0, 1.0))
        break_even["rom_read_fraction"][name] = _break_even(rom0 - other, rom1 - rom0)
        rom = model.per_inference(ROM.name)
        sram0, sram1 = (model.per_inference(name, dram(p)) for p in (0.0, 1.0))
        break_even["dram_pj_per_bit"][name] = _break_even(sram0 - rom, sram1 - sram0)
    sweeps["rate_hz"] = _rate_sweep(model)
    return sweeps, break_even


def _rate_sweep(model: _Model) -> dict:
    """Energy per inference against the inference rate, for every SRAM cell type the table
    has: up to 90% of the most the slowest architecture sustains."""
    unhurried = dataclasses.replace(model.schedule, rate_hz=1e-9)
    busiest = max(
        activity.cycles / inferences
        for activity, inferences in (model.one_round(a, unhurried) for a in ARCHITECTURE_NAMES)
    )
    most = 0.9 * model.table.technology.clock_mhz.value * 1e6 / busiest
    rates = np.geomspace(1 / 3600, most, RATE_POINTS).tolist()
    sweep: dict = {"x": rates}
    for cells in model.table.cell_types():
        table = model.table.with_cells(cells)
        for a in ARCHITECTURE_NAMES:
            sweep[f"{a}_{cells}_pj"] = [model.per_inference(a, table, rate_hz=r) for r in rates]
    return sweep


def _columns(rows: list[dict]) -> dict[str, list]:
    return {key: [row[key] for row in rows] for key in rows[0]}


@dataclass(frozen=True)
class EnergyReport:
    """The model's figures for programs on one accelerator, table and schedule;
    :meth:`to_json` is ``energy.json``, whose keys are these fields'. Per-architecture figures
    are keyed by :data:`~vq4all.sim.energy.model.ARCHITECTURE_NAMES`; ``rows`` are the CSV's
    (per layer, per inference and per schedule)."""

    programs: list[dict]
    table: str
    technology: dict
    assumptions: list[dict]
    notes: list[str]
    params: AcceleratorParams
    schedule: dict
    architectures: list[str]
    networks: dict
    schedule_result: dict
    ratios: dict
    area_mm2: dict
    sweeps: dict
    break_even: dict
    rows: list[dict]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """A few lines: per-inference energy of each network and of the schedule, the
        schedule's traffic, per architecture; the ratios, the break-even and where the figures
        come from."""
        technology = self.technology
        schedule = self.schedule
        row = "  {:<22} {:>12} {:>14} {:>15}".format
        lines = [
            f"energy model: {self.table} ({technology['node_nm']:g} nm, "
            f"{technology['cells']} SRAM cells, {technology['clock_mhz']:g} MHz); schedule "
            f"{'/'.join(schedule['order'])} round-robin, switching every "
            f"{schedule['switch_every']} inferences at {schedule['rate_hz']:g}/s"
            + (", universal SRAM evicted by each switch" if schedule["evict_on_switch"] else "")
            + (", per-layer loads double buffered" if schedule["double_buffer"] else ""),
            row("per inference", "ROM", "SRAM/layer", "SRAM universal"),
        ]
        for name, result in self.networks.items():
            values = [f"{result[a]['energy_pj']['total'] * 1e-6:.3f}" for a in ARCHITECTURE_NAMES]
            lines.append(row(f"{name} uJ", *values))
        results = [self.schedule_result[a] for a in ARCHITECTURE_NAMES]
        per = [r["inferences"] for r in results]
        lines += [
            row("schedule uJ", *(f"{r['energy_per_inference_pj'] * 1e-6:.3f}" for r in results)),
            row(
                "schedule KiB moved",
                *(
                    f"{r['traffic_bytes'] / n / 1024:,.1f}"
                    for r, n in zip(results, per, strict=True)
                ),
            ),
            row(
                "schedule KiB from DRAM",
                *(
                    f"{r['traffic']['dram_read_bytes'] / n / 1024:,.1f}"
                    for r, n in zip(results, per, strict=True)
                ),
            ),
        ]
        ratios, area = self.ratios, self.area_mm2
        lines.append(
            f"  ROM/SRAM per layer: energy {ratios['energy_rom_over_sram_per_layer']:.3g}x, "
            f"traffic {ratios['traffic_rom_over_sram_per_layer']:.3g}x; ROM/SRAM universal: energy "
            f"{ratios['energy_rom_over_sram_universal']:.3g}x, traffic "
            f"{ratios['traffic_rom_over_sram_universal']:.3g}x"
        )
        fractions = self.break_even["rom_read_fraction"]
        described = ", ".join(
            f"{'never' if value is None else f'{value:.3g}x'} (vs {name.replace('_', ' ')})"
            for name, value in fractions.items()
        )
        lines.append(
            f"  codebook area ROM {area['rom']:.3f} mm^2, SRAM {area['sram_universal']:.3f} mm^2; "
            f"ROM wins until its read costs {described} the SRAM read"
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


def energy_report(
    paths: list[str | os.PathLike],
    table: EnergyTable,
    schedule: Schedule,
    L: int = 4,  # noqa: N803 - the paper's name
) -> EnergyReport:
    """The model's figures for ``paths`` on an accelerator of ``L`` lanes (its limits those of
    the programs' largest layers), priced by ``table``, under ``schedule``."""
    programs, identities, K, D, bits = load_programs(paths)  # noqa: N806
    runs = [run for p in programs for run in p.runs]
    params = AcceleratorParams.for_runs(runs, K, D, L, activation_bits=bits)
    model = _Model(programs, params, table, schedule)
    rows, networks = [], {}
    single = dataclasses.replace(schedule, switch_every=1)
    for program in programs:
        networks[program.name] = {}
        for a in ARCHITECTURE_NAMES:
            layers, _ = inference_activity(params, program, a, table, schedule.double_buffer)
            rows += [
                _row("layer", program.name, run.name, a, activity, table)
                for run, activity in zip(program.runs, layers, strict=True)
            ]
            alone, _ = schedule_activity(params, [program], a, table, single)
            rows.append(_row("inference", program.name, "", a, alone, table))
            networks[program.name][a] = _summary(rows[-1])
    result = {}
    for a in ARCHITECTURE_NAMES:
        activity, inferences = model.one_round(a)
        rows.append(_row("schedule", "+".join(p.name for p in programs), "", a, activity, table))
        result[a] = _summary(rows[-1]) | {
            "inferences": inferences,
            "energy_per_inference_pj": rows[-1]["energy_total_pj"] / inferences,
        }
    sweeps, break_even = _sweeps(model)
    ratios = {}
    for name in ALTERNATIVE_NAMES:
        ratios[f"energy_rom_over_{name}"] = (
            result[ROM.name]["energy_pj"]["total"] / result[name]["energy_pj"]["total"]
        )
        ratios[f"traffic_rom_over_{name}"] = (
            result[ROM.name]["traffic_bytes"] / result[name]["traffic_bytes"]
        )
    technology = table.technology
    notes = []
    if technology.codebook_bytes != K * D:
        notes.append(
            f"the table's memory figures are for a {technology.codebook_bytes:,}-byte codebook; "
            f"this one has {K * D:,} bytes"
        )
    if technology.origin != table.path:
        notes.append(f"the table has no technology section: taken from {technology.origin}")
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
        schedule=dataclasses.asdict(schedule)
        | {
            "order": [p.name for p in programs],
            "inferences_per_round": len(programs) * schedule.switch_every,
        },
        architectures=list(ARCHITECTURE_NAMES),
        networks=networks,
        schedule_result=result,
        ratios=ratios,
        area_mm2={
            a: codebook_area_mm2(params, a, table, schedule.double_buffer)
            for a in ARCHITECTURE_NAMES
        },
        sweeps=sweeps,
        break_even=break_even,
        rows=rows,
    )


def _summary(row: dict) -> dict:
    traffic = {key: value for key, value in row.items() if key.endswith(("_bytes", "_accesses"))}
    return {
        "cycles": row["cycles"],
        "compute_cycles": row["compute_cycles"],
        "load_cycles": row["load_cycles"],
        "stall_cycles": row["stall_cycles"],
        "codebook_loads": row["codebook_loads"],
        "traffic": traffic,
        "traffic_bytes": sum(v for k, v in traffic.items() if k.endswith("_bytes")),
        "energy_pj": {name: row[f"energy_{name}_pj"] for name in (*COMPONENTS, "total")},
    }
