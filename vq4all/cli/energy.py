"""``vq4all energy``: the cycle/energy model over programs, a table and a setup."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from vq4all.cli.options import positive
from vq4all.sim.energy.tables import DEFAULT_TABLE as ENERGY_TABLE

__all__ = ["add_commands"]

#: Where ``make bench-model`` writes the methods' accuracies, read when it exists.
BENCH_ACCURACIES = Path("build/bench/model.json")


def _size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in KiB") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in KiB (>= 0)")
    return value


def _cmd_energy(args: argparse.Namespace) -> None:
    from vq4all.sim.energy.model import Schedule
    from vq4all.sim.energy.report import Setup, energy_report, load_accuracies, parse_schedule
    from vq4all.sim.energy.tables import load_table

    table = load_table(args.table)
    if args.cells:
        table = table.with_cells(args.cells)
        table.entry("codebook_sram", "read")  # refuses a cell type the table does not have
    schedule = parse_schedule(args.schedule) if args.schedule else Schedule()
    accuracy_file = args.accuracy or (BENCH_ACCURACIES if BENCH_ACCURACIES.exists() else None)
    defaults = [
        f"--table {args.table} (the default)" if args.table == ENERGY_TABLE else "",
        "" if args.schedule else f"--schedule {_schedule_text(schedule)} (the default)",
        f"accuracies from {accuracy_file}" if accuracy_file and not args.accuracy else "",
    ]
    if any(defaults):
        print(f"using {' and '.join(filter(None, defaults))}")
    setup = Setup(schedule, args.weight_sram, args.act_buffer, args.dataflow)
    accuracies = load_accuracies(accuracy_file) if accuracy_file else None
    report = energy_report(args.programs, table, setup, L=args.L, accuracies=accuracies)
    written = report.write(args.output)
    print(report.format())
    print(f"  wrote {', '.join(str(path) for path in written)}")


def _schedule_text(schedule) -> str:
    return ",".join(f"{key}={str(value).lower()}" for key, value in asdict(schedule).items())


def add_commands(commands) -> None:
    energy = commands.add_parser(
        "energy",
        help="energy and traffic of VQ4ALL's ROM against int8, int4 and per-layer VQ designs",
        description="The cycle/energy model: each network's programs on VQ4ALL's ROM codebook, "
        "a universal SRAM codebook, per-layer VQ codebooks (given a per-layer VQ program), and "
        "int8 and int4 weights, each storing its own weights in a weight SRAM or DRAM, on the "
        "same MAC array, priced by an Accelergy energy table, beside each method's accuracy, "
        "with sweeps and plots.",
    )
    energy.add_argument(
        "programs",
        nargs="+",
        type=Path,
        help="network programs (or linear layer programs): a VQ4ALL program per network, and "
        "optionally a per-layer VQ program of the same layers",
    )
    energy.add_argument(
        "--schedule",
        help="key=value,... of switch_every (inferences per task), rate_hz, evict_on_switch, "
        "double_buffer; the programs run round-robin in the order given "
        "(default: switch_every=10,rate_hz=100,evict_on_switch=true,double_buffer=false)",
    )
    energy.add_argument(
        "--weight-sram",
        type=_size,
        metavar="KiB",
        help="the weight SRAM of every architecture, in KiB; 0 reads the weights from DRAM "
        "(default: each architecture's sized to hold its weights)",
    )
    energy.add_argument(
        "--act-buffer",
        type=_size,
        metavar="KiB",
        help="the activation buffer, in KiB; a layer whose input and output do not fit spills "
        "to DRAM (default: sized to the largest layer)",
    )
    energy.add_argument(
        "--dataflow",
        choices=("stream", "decode_once"),
        default="stream",
        help="stream: every beat reads its weights, as the RTL does; decode_once: a tile's "
        "weights decoded once into a weight buffer and reused across columns (default: stream)",
    )
    energy.add_argument(
        "--accuracy",
        type=Path,
        help="JSON of each method's accuracy: build/bench/model.json or {network: {method: "
        f"value}} (default: {BENCH_ACCURACIES} if it exists)",
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
