"""Hardware subcommands: ``rtl``, ``simulate``, ``random-codebook``, ``random-layer`` and
``synth``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vq4all.cli.options import (
    accelerator_params,
    add_normalize,
    add_params,
    check_codebook_params,
    normalize_from,
    positive,
    power_of_two,
)
from vq4all.golden.codebook import load_codebook, save_codebook
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import make_directory
from vq4all.golden.layer import save_layer
from vq4all.golden.numerics import ACTIVATION_BITS
from vq4all.golden.synthetic import random_activations, random_codebook, random_layer
from vq4all.sim.rtl.build import Simulator, write_verilog
from vq4all.sim.rtl.job import Job

__all__ = ["add_commands"]


def _cmd_rtl(args: argparse.Namespace) -> None:
    codebook = load_codebook(args.codebook)
    params = accelerator_params(args, codebook)
    verilog = write_verilog(params, args.output, codebook, lint=args.lint)
    print(f"wrote {verilog} and {verilog.with_name('manifest.json')}")
    if args.lint:
        print("verilator --lint-only -Wall: clean (waivers: sim/rtl/verilator.vlt)")


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
        raise InputError("simulating layer programs needs --codebook")
    codebook = load_codebook(args.codebook)
    params = accelerator_params(args, codebook)
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
    from vq4all.flow import select_test_images
    from vq4all.golden.network import load_network
    from vq4all.sim.rtl.network import NetworkSimulation, simulate_network

    if args.codebook is not None:
        check_codebook_params(args, load_codebook(args.codebook))
    program = load_network(args.network)
    if args.activation_bits not in (None, program.activation_bits):
        raise InputError(
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
        jobs=args.jobs,
        ray_address=args.ray_address,
    )
    images = select_test_images(program, args.data, args.images, args.image, normalize_from(args))
    report = simulate_network(simulation, images, progress=not args.quiet)
    print(report.format())
    print(f"  wrote {args.output / 'report.json'} and {args.output / 'report.csv'}")


def _cmd_simulate(args: argparse.Namespace) -> None:
    if (args.network is None) == (not args.layers):
        raise InputError("simulate takes layer programs or --network PROGRAM, one of the two")
    (_simulate_network if args.network is not None else _simulate_layers)(args)


def _cmd_synth(args: argparse.Namespace) -> None:
    from vq4all.golden.synthetic import random_codebook
    from vq4all.hw.fpga.synth import DEFAULT_FPGA_PARAMS, format_synth, synthesize

    if args.codebook:
        codebook = load_codebook(args.codebook)
    else:
        codebook = random_codebook(
            args.K or DEFAULT_FPGA_PARAMS.K, args.D or DEFAULT_FPGA_PARAMS.D, 0
        )
    params = accelerator_params(args, codebook, DEFAULT_FPGA_PARAMS)
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
        "--images", type=positive, default=50, help="the first N test images (default: 50)"
    )
    images.add_argument(
        "--image", type=int, help="this test image alone (to replay one, e.g. with --waves)"
    )
    images.add_argument(
        "--data",
        help="data set of the images (default: the program's), or a file or folder of images",
    )
    add_normalize(images)
    images.add_argument(
        "--keep-going", action="store_true", help="count mismatches instead of stopping"
    )
    images.add_argument("--quiet", action="store_true", help="no progress display")
    images.add_argument(
        "--jobs",
        type=positive,
        default=1,
        help="simulator processes sharing the images, on Ray (default: 1, no Ray)",
    )
    images.add_argument(
        "--ray-address",
        help="a Ray cluster to run the jobs on (default: $RAY_ADDRESS, else one on this machine)",
    )
    add_params(simulate, limits="the network program's largest layer, else ")
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


def add_commands(commands) -> None:
    rtl = commands.add_parser("rtl", help="generate the accelerator's Verilog and manifest")
    rtl.add_argument("--codebook", required=True, type=Path, help="codebook file (.safetensors)")
    add_params(rtl)
    rtl.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    rtl.add_argument(
        "--lint", action="store_true", help="lint with verilator --lint-only -Wall first"
    )
    rtl.set_defaults(run=_cmd_rtl)

    _add_simulate(commands)

    codebook = commands.add_parser("random-codebook", help="write a seeded random int8 codebook")
    codebook.add_argument("--K", type=power_of_two, default=65536)
    codebook.add_argument("--D", type=positive, default=8)
    codebook.add_argument("--seed", type=int, default=0)
    codebook.add_argument("-o", "--output", required=True, type=Path)
    codebook.set_defaults(run=_cmd_random_codebook)

    layer = commands.add_parser(
        "random-layer", help="write a seeded random layer program and inputs"
    )
    layer.add_argument("--codebook", required=True, type=Path)
    layer.add_argument("--M", type=positive, required=True, help="output features")
    layer.add_argument("--N", type=positive, required=True, help="input features")
    layer.add_argument("--relu", action="store_true")
    layer.add_argument(
        "--activation-bits", type=int, choices=ACTIVATION_BITS, default=8, help="default: 8"
    )
    layer.add_argument("--seed", type=int, default=0)
    layer.add_argument("-o", "--output", required=True, type=Path)
    layer.set_defaults(run=_cmd_random_layer)

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
    synth.add_argument("--seeds", type=positive, default=3, help="placement seeds (default: 3)")
    add_params(synth, limits="")
    synth.add_argument("-o", "--output", type=Path, default=Path("build/synth"))
    synth.set_defaults(run=_cmd_synth)
