"""``vq4all energy``: the cycle/energy model over programs, a table and a schedule."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from vq4all.cli.options import positive
from vq4all.sim.energy.tables import DEFAULT_TABLE as ENERGY_TABLE

__all__ = ["add_commands"]


def _cmd_energy(args: argparse.Namespace) -> None:
    from vq4all.sim.energy.model import Schedule
    from vq4all.sim.energy.report import energy_report, parse_schedule
    from vq4all.sim.energy.tables import load_table

    table = load_table(args.table)
    if args.cells:
        table = table.with_cells(args.cells)
        table.entry("codebook_sram", "read")  # refuses a cell type the table does not have
    schedule = parse_schedule(args.schedule) if args.schedule else Schedule()
    defaults = [
        f"--table {args.table} (the default)" if args.table == ENERGY_TABLE else "",
        "" if args.schedule else f"--schedule {_schedule_text(schedule)} (the default)",
    ]
    if any(defaults):
        print(f"using {' and '.join(filter(None, defaults))}")
    report = energy_report(args.programs, table, schedule, L=args.L)
    written = report.write(args.output)
    print(report.format())
    print(f"  wrote {', '.join(str(path) for path in written)}")


def _schedule_text(schedule) -> str:
    return ",".join(f"{key}={str(value).lower()}" for key, value in asdict(schedule).items())


def add_commands(commands) -> None:
    energy = commands.add_parser(
        "energy",
        help="energy and traffic of ROM vs SRAM codebooks, per layer, network and schedule",
        description="The cycle/energy model: the programs on a ROM codebook (VQ4ALL), a "
        "per-layer SRAM codebook and a universal SRAM codebook, priced by an Accelergy energy "
        "table, under a task-switching schedule, with sweeps and plots.",
    )
    energy.add_argument(
        "programs", nargs="+", type=Path, help="network programs (or linear layer programs)"
    )
    energy.add_argument(
        "--schedule",
        help="key=value,... of switch_every (inferences per task), rate_hz, evict_on_switch, "
        "double_buffer; the programs run round-robin in the order given "
        "(default: switch_every=10,rate_hz=100,evict_on_switch=true,double_buffer=false)",
    )
    energy.add_argument(
        "--table",
        default=ENERGY_TABLE,
        help=f"Accelergy ERT YAML file, or a shipped table: 22nm, 45nm (default: {ENERGY_TABLE})",
    )
    energy.add_argument("--cells", help="SRAM cell type of the table (default: the table's)")
    energy.add_argument("--L", type=positive, default=4, help="output lanes (default: 4)")
    energy.add_argument("-o", "--output", type=Path, default=Path("build/energy"))
    energy.set_defaults(run=_cmd_energy)
