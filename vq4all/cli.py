"""``vq4all``: one entry point, each subcommand a thin layer over a library function.

Errors in the input (bad artifacts, parameters, paths, missing tools) and failed checks end the
program with exit code 2 and one readable line; nothing is half-written.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from golden.artifacts import ArtifactError, load_codebook, make_directory, save_codebook, save_layer
from golden.numerics import ACTIVATION_BITS
from golden.synthetic import random_activations, random_codebook, random_layer
from hw.params import MODES, AcceleratorParams
from hw.synth import SynthesisError
from model.codebook import WEIGHTINGS
from model.compress import SCHEDULES, CompressConfig
from sim.build import LintError, SimulationError, Simulator, write_verilog
from sim.job import Job
from sim.network import CycleModelError
from sim.tables import DEFAULT_TABLE as ENERGY_TABLE
from sim.toolchain import ToolchainError

__all__ = ["main"]

#: What the command line reports as one line with exit code 2.
USER_ERRORS = (
    ArtifactError,
    SynthesisError,
    ValueError,
    OSError,
    ToolchainError,
    SimulationError,
    LintError,
    CycleModelError,
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _power_of_two(text: str) -> int:
    value = _positive(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"{value} is not a power of two")
    return value


def _add_params(parser: argparse.ArgumentParser, limits: str = "") -> None:
    defaults = AcceleratorParams()
    group = parser.add_argument_group(
        "accelerator parameters",
        f"The limits default to {limits}{defaults.max_inputs} inputs, {defaults.max_outputs} "
        f"outputs and {defaults.max_columns} columns.",
    )
    group.add_argument(
        "--K", type=_power_of_two, default=None, help="codebook entries (default: the codebook's)"
    )
    group.add_argument(
        "--D", type=_positive, default=None, help="codeword length (default: the codebook's)"
    )
    group.add_argument("--L", type=_positive, default=4, help="output lanes (default: 4)")
    group.add_argument("--max-inputs", type=_positive, help="largest N (inputs per column)")
    group.add_argument("--max-outputs", type=_positive, help="largest M (outputs per column)")
    group.add_argument("--max-columns", type=_positive, help="most im2col columns in one layer run")
    group.add_argument(
        "--mode", choices=MODES, default="rom", help="codebook memory (default: rom)"
    )
    group.add_argument(
        "--activation-bits",
        type=int,
        choices=ACTIVATION_BITS,
        help="activation width (default: the network program's, else 8)",
    )


def _check_codebook_params(args: argparse.Namespace, codebook) -> None:
    for name, value in (("K", codebook.K), ("D", codebook.D)):
        given = getattr(args, name)
        if given is not None and given != value:
            raise ValueError(
                f"--{name} {given} does not match the codebook's {name}={value} ({args.codebook})"
            )


def _params(args: argparse.Namespace, codebook) -> AcceleratorParams:
    _check_codebook_params(args, codebook)
    defaults = AcceleratorParams()
    return AcceleratorParams(
        K=codebook.K,
        D=codebook.D,
        L=args.L,
        max_inputs=args.max_inputs or defaults.max_inputs,
        max_outputs=args.max_outputs or defaults.max_outputs,
        max_columns=args.max_columns or defaults.max_columns,
        mode=args.mode,
        activation_bits=args.activation_bits or defaults.activation_bits,
    )


def _cmd_rtl(args: argparse.Namespace) -> None:
    codebook = load_codebook(args.codebook)
    params = _params(args, codebook)
    verilog = write_verilog(params, args.output, codebook, lint=args.lint)
    print(f"wrote {verilog} and {verilog.with_name('manifest.json')}")
    if args.lint:
        print("verilator --lint-only -Wall: clean (waivers: sim/verilator.vlt)")


def _cmd_random_codebook(args: argparse.Namespace) -> None:
    codebook = random_codebook(args.K, args.D, args.seed)
    save_codebook(args.output, codebook)
    print(f"wrote {args.output}: K={codebook.K} D={codebook.D} sha256={codebook.sha256}")


def _cmd_random_layer(args: argparse.Namespace) -> None:
    codebook = load_codebook(args.codebook)
    rng = np.random.default_rng(args.seed)
    bits = args.activation_bits
    program = random_layer(codebook, args.M, args.N, args.relu, rng, activation_bits=bits)
    save_layer(args.output, program)
    inputs = Path(args.output).with_suffix(".npy")
    np.save(inputs, random_activations(rng, (args.N,), bits=bits))
    print(f"wrote {args.output} ({args.M}x{args.N}, relu={args.relu}) and inputs {inputs}")


def _print_rows(mode: str, rows: list[dict]) -> None:
    for row in rows:
        print(
            f"[{mode}] {row['layer']}: {row['M']}x{row['N']}  cycles {row['cycles']} "
            f"(model {row['model_cycles']})  utilization {row['utilization']:.3f}  "
            f"{row['sim_cycles'] / row['wall_s']:,.0f} cycles/s  "
            f"bit-exact: {'yes' if row['match'] else 'NO'}"
        )


def _simulate_layers(args: argparse.Namespace) -> None:
    if args.codebook is None:
        raise ValueError("simulating layer programs needs --codebook")
    codebook = load_codebook(args.codebook)
    params = _params(args, codebook)
    cases = []
    for layer in args.layers:
        inputs = Path(layer).with_suffix(".npy")
        for path, what in ((Path(layer), "layer program"), (inputs, f"inputs of {layer}")):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the {what} is missing")
        cases.append((str(layer), str(inputs)))
    work = make_directory(args.output)
    job = Job(params, str(args.codebook), str(work / "results"), cases, seed=args.seed)
    job.load_cases(codebook)  # fail on a bad layer before the build, not inside the simulator
    simulator = Simulator.build(params, codebook, root=work / "build", waves=args.waves)
    rows = simulator.run_layers(
        job, work / "job.json", idle=args.idle, backpressure=args.backpressure
    )
    _print_rows(params.mode, rows)


def _simulate_network(args: argparse.Namespace) -> None:
    from golden.network import load_network
    from sim.network import NetworkSimulation, format_report, simulate_network
    from vq4all.flow import select_test_images

    if args.codebook is not None:
        _check_codebook_params(args, load_codebook(args.codebook))
    program = load_network(args.network)
    if args.activation_bits not in (None, program.activation_bits):
        raise ValueError(
            f"--activation-bits {args.activation_bits} does not match the program's "
            f"{program.activation_bits}-bit activations ({args.network})"
        )
    simulation = NetworkSimulation(
        program=args.network,
        out_dir=args.output,
        codebook=args.codebook,
        mode=args.mode,
        L=args.L,
        max_inputs=args.max_inputs,
        max_outputs=args.max_outputs,
        max_columns=args.max_columns,
        idle=args.idle,
        backpressure=args.backpressure,
        keep_going=args.keep_going,
        waves=args.waves,
        seed=args.seed,
        cocotb=args.cocotb,
    )
    images = select_test_images(program, args.data, args.images, args.image)
    report = simulate_network(simulation, images, progress=not args.quiet)
    print(format_report(report))
    print(f"  wrote {args.output / 'report.json'} and {args.output / 'report.csv'}")


def _cmd_simulate(args: argparse.Namespace) -> None:
    if (args.network is None) == (not args.layers):
        raise ValueError("simulate takes layer programs or --network PROGRAM, one of the two")
    (_simulate_network if args.network is not None else _simulate_layers)(args)


def _cmd_codebook(args: argparse.Namespace) -> None:
    from model.data import load_dataset
    from vq4all.flow import make_codebook

    sources = args.sources.split(",")
    codebook = make_codebook(
        args.output,
        load_dataset(args.data),
        sources,
        args.K,
        args.D,
        args.seed,
        input_shape=args.input_shape,
        weighting=args.weighting,
    )
    sampled = codebook.provenance["subvectors_sampled"]
    print(f"wrote {args.output}: K={codebook.K} D={codebook.D} from {', '.join(sources)} "
          f"({sampled} sub-vectors) sha256={codebook.sha256}")  # fmt: skip


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(size) for size in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W") from None
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W")
    return shape


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(value) for value in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None


def _cmd_compress(args: argparse.Namespace) -> None:
    from model.datafree import DataFreeConfig
    from vq4all.flow import compress_network

    codebook = load_codebook(args.codebook)
    config = CompressConfig(
        candidates=args.candidates,
        schedule=args.schedule,
        epochs=args.epochs,
        block_steps=args.block_steps,
        steps_by_size=args.steps_by_size,
        soft_targets=args.soft_targets,
        tune_steps=args.tune_steps,
        lr=args.lr,
        ratio_weight=args.ratio_weight,
        cache_gib=args.cache_gib,
        seed=args.seed,
    )
    if (args.mean is None) != (args.std is None):
        raise ValueError("--mean and --std go together")
    result = compress_network(
        args.output,
        codebook,
        args.network,
        None if args.data == "none" else args.data,
        config,
        weights=args.weights,
        held_out=args.held_out,
        input_shape=args.input_shape,
        normalize=(args.mean, args.std) if args.mean is not None else None,
        keep_unsupported=args.keep_unsupported,
        data_free=DataFreeConfig(count=args.data_free_images, steps=args.data_free_steps),
    )
    data = "images synthesised from BatchNorm statistics" if args.data == "none" else args.data
    print(f"wrote {args.output}: {args.network} on {data}")
    print(result.report.format())


def _cmd_export(args: argparse.Namespace) -> None:
    from vq4all.flow import export_program

    codebook = load_codebook(args.codebook)
    export = export_program(args.output, codebook, args.compressed, args.activation_bits)
    program = export.program
    accuracy = "" if math.isnan(export.accuracy) else f"accuracy {export.accuracy:.2f}%, "
    print(
        f"wrote {args.output}: {export.network}, {len(program.layers)} layers, "
        f"{len(program.graph)} ops, {program.activation_bits}-bit activations; golden integer "
        f"on {export.checked_on}: {accuracy}agreement with the float VQ model "
        f"{export.agreement:.2f}%"
    )


def _cmd_energy(args: argparse.Namespace) -> None:
    from sim.energy import Schedule
    from sim.energy_report import energy_report, format_energy, parse_schedule, write_energy
    from sim.tables import load_table

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
    written = write_energy(report, args.output)
    print(format_energy(report))
    print(f"  wrote {', '.join(str(path) for path in written)}")


def _schedule_text(schedule) -> str:
    return ",".join(f"{key}={str(value).lower()}" for key, value in asdict(schedule).items())


def _cmd_synth(args: argparse.Namespace) -> None:
    from golden.synthetic import random_codebook
    from hw.synth import DEFAULT_FPGA_PARAMS, format_synth, synthesize

    if args.codebook:
        codebook = load_codebook(args.codebook)
    else:
        codebook = random_codebook(
            args.K or DEFAULT_FPGA_PARAMS.K, args.D or DEFAULT_FPGA_PARAMS.D, 0
        )
    _check_codebook_params(args, codebook)
    params = AcceleratorParams(
        K=codebook.K,
        D=codebook.D,
        L=args.L,
        max_inputs=args.max_inputs or DEFAULT_FPGA_PARAMS.max_inputs,
        max_outputs=args.max_outputs or DEFAULT_FPGA_PARAMS.max_outputs,
        max_columns=args.max_columns or DEFAULT_FPGA_PARAMS.max_columns,
        mode=args.mode,
        activation_bits=args.activation_bits or DEFAULT_FPGA_PARAMS.activation_bits,
    )
    codewords = codebook.codewords if params.mode == "rom" else None
    sha256 = codebook.sha256 if params.mode == "rom" else None
    report = synthesize(
        params,
        codewords,
        sha256,
        args.output,
        args.target,
        args.seeds,
        progress=lambda step: print(f"  {step}...", flush=True),
    )
    print(format_synth(report))
    print(f"  wrote {args.output / 'report.json'} (tool logs beside it)")


def _cmd_demo(args: argparse.Namespace) -> None:
    from vq4all.demo import run_demo

    run_demo(
        args.output,
        K=args.K,
        D=args.D,
        L=args.L,
        sources=args.sources.split(","),
        network=args.network,
        images=args.images,
        sram_images=args.sram_images,
        seed=args.seed,
    )


def _add_simulate(commands) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="run a network program (or layer programs) through the RTL in Verilator",
        description="Run a network program on test images, or layer programs on the inputs "
        "beside them, through the accelerator's RTL in Verilator, bit-exactly against golden.",
    )
    simulate.add_argument(
        "layers", nargs="*", type=Path, help="layer programs; inputs beside them as .npy"
    )
    simulate.add_argument(
        "--network", type=Path, help="network program (vq4all export's output) to run"
    )
    simulate.add_argument(
        "--codebook",
        type=Path,
        help="codebook file (default for --network: the one beside it with the program's hash)",
    )
    images = simulate.add_argument_group("network runs")
    images.add_argument(
        "--images", type=_positive, default=50, help="the first N test images (default: 50)"
    )
    images.add_argument(
        "--image", type=int, help="this test image alone (to replay one, e.g. with --waves)"
    )
    images.add_argument("--data", help="data set of the images (default: the program's)")
    images.add_argument(
        "--keep-going", action="store_true", help="count mismatches instead of stopping"
    )
    images.add_argument("--quiet", action="store_true", help="no progress display")
    _add_params(simulate, limits="the network program's largest layer, else ")
    simulate.add_argument("--idle", action="store_true", help="random gaps between input beats")
    simulate.add_argument(
        "--backpressure", action="store_true", help="random backpressure on outputs"
    )
    simulate.add_argument("--seed", type=int, default=0, help="seed of the stall generators")
    simulate.add_argument(
        "--waves", action="store_true", help="dump waveforms (results/dump.vcd); also WAVES=1"
    )
    images.add_argument(
        "--cocotb",
        action="store_true",
        help="drive every cycle from cocotb, as --idle, --backpressure and --waves do (default: "
        "whole layer runs in a C++ Verilator loop)",
    )
    simulate.add_argument(
        "-o",
        "--output",
        "--work-dir",
        dest="output",
        type=Path,
        default=Path("build/simulate"),
        help="reports, results and builds (default: build/simulate)",
    )
    simulate.set_defaults(run=_cmd_simulate)


def _add_model_commands(commands) -> None:
    codebook_cmd = commands.add_parser(
        "codebook", help="build a universal codebook from zoo networks and your own models"
    )
    codebook_cmd.add_argument(
        "--sources",
        default="mlp,cnn,rescnn",
        help="comma-separated zoo networks and trained models (model.py:factory, model.pt2, "
        "model.ts) (default: mlp,cnn,rescnn)",
    )
    codebook_cmd.add_argument(
        "--input-shape",
        type=_shape,
        default=None,
        help="C,H,W of a TorchScript source's input (torch.export files carry theirs)",
    )
    codebook_cmd.add_argument(
        "--data", default="digits", help="digits or fashion-mnist (default: digits)"
    )
    codebook_cmd.add_argument(
        "--K", type=_power_of_two, default=65536, help="codewords (default: 2^16)"
    )
    codebook_cmd.add_argument("--D", type=_positive, default=8, help="codeword length (default: 8)")
    codebook_cmd.add_argument(
        "--weighting",
        choices=WEIGHTINGS,
        default="equal",
        help="each source's share of the density: the same, or in proportion to its weights "
        "(default: equal)",
    )
    codebook_cmd.add_argument("--seed", type=int, default=0)
    codebook_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/codebook.safetensors")
    )
    codebook_cmd.set_defaults(run=_cmd_codebook)

    compress_cmd = commands.add_parser(
        "compress",
        help="compress a network (a zoo name, your model.py:factory or model.pt2) against a "
        "codebook",
        description="Compress a zoo network, or your own model (a Python file and the name of a "
        "factory in it that returns the nn.Module, with --weights; or a torch.export .pt2 or "
        "TorchScript file), against a universal codebook. The checkpoint rebuilds the model, "
        "so that export takes it as it is.",
    )
    compress_cmd.add_argument(
        "--codebook", type=Path, default=Path("build/model/codebook.safetensors")
    )
    compress_cmd.add_argument(
        "--network",
        default="dscnn",
        help="zoo network, path/to/model.py:factory, or a torch.export (.pt2) or TorchScript "
        "(.pt, .ts) file (default: dscnn)",
    )
    compress_cmd.add_argument(
        "--weights", type=Path, help="state dict of a model file (.safetensors, .pt or .pth)"
    )
    compress_cmd.add_argument(
        "--data",
        default="digits",
        help="calibration and distillation data: digits or fashion-mnist for a zoo network; "
        "for a model file, a .npy/.npz/.safetensors file of images [N,C,H,W] (and labels), a "
        "folder of images, or 'none' to synthesise them from BatchNorm statistics "
        "(default: digits)",
    )
    compress_cmd.add_argument(
        "--held-out", help="images of a model file's to score against the float model"
    )
    compress_cmd.add_argument(
        "--input-shape",
        type=_shape,
        help="C,H,W of a model file's input (for --data none, and TorchScript)",
    )
    compress_cmd.add_argument("--mean", type=_floats, help="per-channel mean of folder images")
    compress_cmd.add_argument("--std", type=_floats, help="per-channel std of folder images")
    compress_cmd.add_argument(
        "--keep-unsupported",
        action="store_true",
        help="keep layers with no GEMM form (an LSTM...) in int8 instead of stopping",
    )
    compress_cmd.add_argument(
        "--data-free-images", type=_positive, default=64, help="images to synthesise (--data none)"
    )
    compress_cmd.add_argument(
        "--data-free-steps", type=_positive, default=200, help="optimizer steps per batch of them"
    )
    compress_cmd.add_argument(
        "--candidates", type=_positive, default=8, help="candidates per sub-vector"
    )
    compress_cmd.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="joint",
        help="train every layer at once (joint, default) or one stage at a time (blockwise)",
    )
    compress_cmd.add_argument(
        "--epochs", type=_positive, default=30, help="most epochs of joint assignment training"
    )
    compress_cmd.add_argument(
        "--block-steps", type=_positive, default=300, help="steps per stage of blockwise training"
    )
    compress_cmd.add_argument(
        "--steps-by-size",
        action="store_true",
        help="blockwise: a stage with more sub-vectors than the mean stage takes as many times "
        "--block-steps",
    )
    compress_cmd.add_argument(
        "--soft-targets",
        action="store_true",
        help="blockwise: the last stage's task loss is the KL divergence from the float "
        "model's output, not cross-entropy against the labels",
    )
    compress_cmd.add_argument(
        "--tune-steps",
        type=int,
        default=0,
        help="blockwise: steps that then tune gains and biases end to end on the output's KL",
    )
    defaults = CompressConfig()
    compress_cmd.add_argument(
        "--lr", type=float, default=defaults.lr, help=f"assignment learning rate ({defaults.lr})"
    )
    compress_cmd.add_argument(
        "--ratio-weight",
        type=float,
        default=defaults.ratio_weight,
        help=f"weight of the ratio regulariser ({defaults.ratio_weight}); lower freezes later",
    )
    compress_cmd.add_argument(
        "--cache-gib",
        type=float,
        default=defaults.cache_gib,
        help=f"blockwise: memory for each stage's cached values ({defaults.cache_gib} GiB); "
        "a stage whose values do not fit for every image distils on the first ones that do",
    )
    compress_cmd.add_argument("--seed", type=int, default=0)
    compress_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/compressed.safetensors")
    )
    compress_cmd.set_defaults(run=_cmd_compress)

    export_cmd = commands.add_parser(
        "export", help="export a compressed network to a network program"
    )
    export_cmd.add_argument(
        "--codebook", type=Path, default=Path("build/model/codebook.safetensors")
    )
    export_cmd.add_argument(
        "--compressed", type=Path, default=Path("build/model/compressed.safetensors")
    )
    export_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/network.safetensors")
    )
    # 16 for a network whose outputs hang on finer differences than 256 codes resolve
    # (MobileNetV2's golden agrees with its float VQ model on 85% of crops at 8, 99% at 16).
    export_cmd.add_argument(
        "--activation-bits",
        type=int,
        choices=ACTIVATION_BITS,
        default=8,
        help="width of the program's activations (the accelerator is built for it)",
    )
    export_cmd.set_defaults(run=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vq4all",
        description="VQ4ALL co-design simulator: universal-codebook decode + MAC accelerator, "
        "bit-exact against a golden PyTorch reference.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rtl = commands.add_parser("rtl", help="generate the accelerator's Verilog and manifest")
    rtl.add_argument("--codebook", required=True, type=Path, help="codebook file (.safetensors)")
    _add_params(rtl)
    rtl.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    rtl.add_argument(
        "--lint", action="store_true", help="lint with verilator --lint-only -Wall first"
    )
    rtl.set_defaults(run=_cmd_rtl)

    _add_simulate(commands)

    codebook = commands.add_parser("random-codebook", help="write a seeded random int8 codebook")
    codebook.add_argument("--K", type=_power_of_two, default=65536)
    codebook.add_argument("--D", type=_positive, default=8)
    codebook.add_argument("--seed", type=int, default=0)
    codebook.add_argument("-o", "--output", required=True, type=Path)
    codebook.set_defaults(run=_cmd_random_codebook)

    layer = commands.add_parser(
        "random-layer", help="write a seeded random layer program and inputs"
    )
    layer.add_argument("--codebook", required=True, type=Path)
    layer.add_argument("--M", type=_positive, required=True, help="output features")
    layer.add_argument("--N", type=_positive, required=True, help="input features")
    layer.add_argument("--relu", action="store_true")
    layer.add_argument(
        "--activation-bits", type=int, choices=ACTIVATION_BITS, default=8, help="default: 8"
    )
    layer.add_argument("--seed", type=int, default=0)
    layer.add_argument("-o", "--output", required=True, type=Path)
    layer.set_defaults(run=_cmd_random_layer)

    _add_model_commands(commands)

    synth = commands.add_parser(
        "synth",
        help="synthesise, place and route the accelerator for an FPGA (Yosys, nextpnr)",
        description="Yosys then nextpnr (YoWASP, from PyPI) on the accelerator behind a "
        "dozen-pin wrapper; Fmax is the median over the placement seeds.",
    )
    synth.add_argument(
        "--codebook", type=Path, help="ROM contents (default: a seeded random codebook of K x D)"
    )
    synth.add_argument("--target", choices=("ecp5", "ice40"), default="ecp5")
    synth.add_argument("--seeds", type=_positive, default=3, help="placement seeds (default: 3)")
    _add_params(synth, limits="")
    synth.add_argument("-o", "--output", type=Path, default=Path("build/synth"))
    synth.set_defaults(run=_cmd_synth)

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
    energy.add_argument("--L", type=_positive, default=4, help="output lanes (default: 4)")
    energy.add_argument("-o", "--output", type=Path, default=Path("build/energy"))
    energy.set_defaults(run=_cmd_energy)

    demo = commands.add_parser(
        "demo",
        help="end to end: codebook, compression, export, then test images through the RTL",
    )
    demo.add_argument("-o", "--output", type=Path, default=Path("build/demo"))
    demo.add_argument(
        "--K", type=_power_of_two, default=65536, help="codebook entries (default: 2^16)"
    )
    demo.add_argument("--D", type=_positive, default=8, help="codeword length (default: 8)")
    demo.add_argument("--L", type=_positive, default=4, help="output lanes (default: 4)")
    demo.add_argument(
        "--sources", default="mlp,cnn,rescnn", help="codebook sources (default: mlp,cnn,rescnn)"
    )
    demo.add_argument(
        "--network", default="dscnn", help="the network compressed and run (default: dscnn)"
    )
    demo.add_argument(
        "--images", type=_positive, default=100, help="test images on the RTL (default: 100)"
    )
    demo.add_argument(
        "--sram-images",
        type=_positive,
        default=2,
        help="of those, run again in sram mode (default: 2)",
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_cmd_demo)
    return parser


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"vq4all: error: {_one_line(error)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
