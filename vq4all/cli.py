"""``vq4all``: one entry point, each subcommand a thin layer over a library function.

Errors in the input (bad artifacts, parameters, missing tools) end the program with exit code 2
and one readable line; nothing is half-written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from golden.artifacts import ArtifactError, load_codebook, save_codebook, save_layer
from golden.synthetic import random_activations, random_codebook, random_layer
from hw.params import MODES, AcceleratorParams
from model.compress import SCHEDULES
from sim.build import SimulationError, Simulator, lint_verilog, write_verilog
from sim.job import Job
from sim.toolchain import ToolchainError

__all__ = ["main"]


def _add_params(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("accelerator parameters")
    group.add_argument(
        "--K", type=int, default=None, help="codebook entries (default: the codebook's)"
    )
    group.add_argument(
        "--D", type=int, default=None, help="codeword length (default: the codebook's)"
    )
    group.add_argument("--L", type=int, default=4, help="output lanes (default: 4)")
    group.add_argument("--max-inputs", type=int, default=1024, help="largest N (default: 1024)")
    group.add_argument("--max-outputs", type=int, default=256, help="largest M (default: 256)")
    group.add_argument(
        "--mode", choices=MODES, default="rom", help="codebook memory (default: rom)"
    )


def _params(args: argparse.Namespace, codebook) -> AcceleratorParams:
    for name, value in (("K", codebook.K), ("D", codebook.D)):
        given = getattr(args, name)
        if given is not None and given != value:
            raise ValueError(
                f"--{name} {given} does not match the codebook's {name}={value} ({args.codebook})"
            )
    return AcceleratorParams(
        K=codebook.K,
        D=codebook.D,
        L=args.L,
        max_inputs=args.max_inputs,
        max_outputs=args.max_outputs,
        mode=args.mode,
    )


def _cmd_rtl(args: argparse.Namespace) -> None:
    codebook = load_codebook(args.codebook)
    params = _params(args, codebook)
    verilog = write_verilog(params, args.output, codebook)
    print(f"wrote {verilog} and {verilog.with_name('manifest.json')}")
    if args.lint:
        lint_verilog(verilog)
        print("verilator --lint-only -Wall: clean (waivers: sim/verilator.vlt)")


def _cmd_random_codebook(args: argparse.Namespace) -> None:
    codebook = random_codebook(args.K, args.D, args.seed)
    save_codebook(args.output, codebook)
    print(f"wrote {args.output}: K={codebook.K} D={codebook.D} sha256={codebook.sha256}")


def _cmd_random_layer(args: argparse.Namespace) -> None:
    codebook = load_codebook(args.codebook)
    rng = np.random.default_rng(args.seed)
    program = random_layer(codebook, args.M, args.N, args.relu, rng)
    save_layer(args.output, program)
    inputs = Path(args.output).with_suffix(".npy")
    np.save(inputs, random_activations(rng, (args.N,)))
    print(f"wrote {args.output} ({args.M}x{args.N}, relu={args.relu}) and inputs {inputs}")


def _print_rows(mode: str, rows: list[dict]) -> None:
    for row in rows:
        print(
            f"[{mode}] {row['layer']}: {row['M']}x{row['N']}  cycles {row['cycles']} "
            f"(model {row['model_cycles']})  utilization {row['utilization']:.3f}  "
            f"{row['sim_cycles'] / row['wall_s']:,.0f} cycles/s  "
            f"bit-exact: {'yes' if row['match'] else 'NO'}"
        )


def _cmd_simulate(args: argparse.Namespace) -> None:
    codebook = load_codebook(args.codebook)
    params = _params(args, codebook)
    cases = []
    for layer in args.layers:
        inputs = Path(layer).with_suffix(".npy")
        if not inputs.exists():
            raise FileNotFoundError(f"{inputs}: the inputs of {layer} (int8 .npy) are missing")
        cases.append((str(layer), str(inputs)))
    work = Path(args.work_dir)
    job = Job(params, str(args.codebook), cases, str(work / "results"), seed=args.seed)
    job.load_cases(codebook)  # fail on a bad layer before the build, not inside the simulator
    simulator = Simulator.build(params, codebook, root=work / "build", waves=args.waves)
    rows = simulator.run_layers(
        job, work / "job.json", idle=args.idle, backpressure=args.backpressure
    )
    _print_rows(params.mode, rows)


def _zoo_network(name: str, data, seed: int):
    from model.data import DATASETS
    from model.zoo import trained

    return trained(name, data, epochs=DATASETS[data.name][1], seed=seed)


def _cmd_codebook(args: argparse.Namespace) -> None:
    from model.codebook import build_codebook
    from model.data import load_dataset

    data = load_dataset(args.data)
    sources = {name: _zoo_network(name, data, args.seed) for name in args.sources.split(",")}
    codebook = build_codebook(sources, K=args.K, D=args.D, seed=args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_codebook(args.output, codebook)
    sampled = codebook.provenance["subvectors_sampled"]
    print(f"wrote {args.output}: K={codebook.K} D={codebook.D} from {', '.join(sources)} "
          f"({sampled} sub-vectors) sha256={codebook.sha256}")  # fmt: skip


def _cmd_compress(args: argparse.Namespace) -> None:
    from model.checkpoint import save_compressed
    from model.compress import CompressConfig, compress
    from model.data import load_dataset
    from model.zoo import evaluate

    codebook = load_codebook(args.codebook)
    data = load_dataset(args.data)
    network = _zoo_network(args.network, data, args.seed)
    config = CompressConfig(
        candidates=args.candidates,
        schedule=args.schedule,
        epochs=args.epochs,
        block_steps=args.block_steps,
        seed=args.seed,
    )
    result = compress(network, codebook, data, config)
    compressed = result.model
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_compressed(
        args.output, compressed, args.network, data.image_shape, codebook, args.candidates
    )
    before = evaluate(network, data.test_x, data.test_y)
    after = evaluate(compressed, data.test_x, data.test_y)
    print(
        f"wrote {args.output}: {args.network} on {data.name}: float {before:.2f}% -> VQ4ALL "
        f"{after:.2f}% ({result.steps} steps, {100 * result.frozen_by_pnc:.1f}% frozen by PNC)"
    )


def _cmd_export(args: argparse.Namespace) -> None:
    from golden.network import predictions, save_network
    from model.checkpoint import load_compressed
    from model.data import load_dataset
    from model.export import export_network

    codebook = load_codebook(args.codebook)
    data = load_dataset(args.data)
    compressed, name = load_compressed(args.compressed, codebook)
    program = export_network(compressed, codebook, data.calibration())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_network(args.output, program)
    golden = predictions(codebook, program, data.test_x)
    with torch.no_grad():
        float_vq = compressed(data.test_x).argmax(1).numpy()
    accuracy = 100 * (golden == data.test_y.numpy()).mean()
    print(f"wrote {args.output}: {name}, {len(program.layers)} layers, {len(program.graph)} ops; "
          f"golden integer accuracy {accuracy:.2f}%, agreement with the float VQ model "
          f"{100 * (golden == float_vq).mean():.2f}%")  # fmt: skip


def _cmd_demo(args: argparse.Namespace) -> None:
    from vq4all.demo import run_demo

    results = run_demo(
        args.output, K=args.K, D=args.D, out_features=args.M, in_features=args.N, seed=args.seed
    )
    for mode, rows in results.items():
        _print_rows(mode, rows)
    rom, sram = results["rom"][0]["cycles"], results["sram"][0]["cycles"]
    print(
        f"reloading the codebook into SRAM costs {sram - rom} cycles: {sram / rom:.1f}x the ROM's"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vq4all",
        description="VQ4ALL co-design simulator: universal-codebook decode + MAC accelerator, "
        "bit-exact against a golden PyTorch reference.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rtl = commands.add_parser("rtl", help="generate the accelerator's Verilog and manifest")
    rtl.add_argument("--codebook", required=True, type=Path, help="codebook file (.safetensors)")
    _add_params(rtl)
    rtl.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    rtl.add_argument("--lint", action="store_true", help="also run verilator --lint-only -Wall")
    rtl.set_defaults(run=_cmd_rtl)

    simulate = commands.add_parser(
        "simulate", help="run layer programs through the RTL in Verilator"
    )
    simulate.add_argument(
        "--codebook", required=True, type=Path, help="codebook file (.safetensors)"
    )
    simulate.add_argument(
        "layers", nargs="+", type=Path, help="layer programs; inputs beside them as .npy"
    )
    _add_params(simulate)
    simulate.add_argument("--idle", action="store_true", help="random gaps between input beats")
    simulate.add_argument(
        "--backpressure", action="store_true", help="random backpressure on outputs"
    )
    simulate.add_argument("--seed", type=int, default=0, help="seed of the stall generators")
    simulate.add_argument("--waves", action="store_true", help="dump waveforms (dump.vcd)")
    simulate.add_argument(
        "--work-dir", type=Path, default=Path("build/simulate"), help="build and results"
    )
    simulate.set_defaults(run=_cmd_simulate)

    codebook = commands.add_parser("random-codebook", help="write a seeded random int8 codebook")
    codebook.add_argument("--K", type=int, default=65536)
    codebook.add_argument("--D", type=int, default=8)
    codebook.add_argument("--seed", type=int, default=0)
    codebook.add_argument("-o", "--output", required=True, type=Path)
    codebook.set_defaults(run=_cmd_random_codebook)

    layer = commands.add_parser(
        "random-layer", help="write a seeded random layer program and inputs"
    )
    layer.add_argument("--codebook", required=True, type=Path)
    layer.add_argument("--M", type=int, required=True, help="output features")
    layer.add_argument("--N", type=int, required=True, help="input features")
    layer.add_argument("--relu", action="store_true")
    layer.add_argument("--seed", type=int, default=0)
    layer.add_argument("-o", "--output", required=True, type=Path)
    layer.set_defaults(run=_cmd_random_layer)

    codebook_cmd = commands.add_parser(
        "codebook", help="build a universal codebook from zoo networks"
    )
    codebook_cmd.add_argument(
        "--sources", default="mlp,cnn,rescnn", help="zoo networks (default: mlp,cnn,rescnn)"
    )
    codebook_cmd.add_argument(
        "--data", default="digits", help="digits or fashion-mnist (default: digits)"
    )
    codebook_cmd.add_argument("--K", type=int, default=65536, help="codewords (default: 2^16)")
    codebook_cmd.add_argument("--D", type=int, default=8, help="codeword length (default: 8)")
    codebook_cmd.add_argument("--seed", type=int, default=0)
    codebook_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/codebook.safetensors")
    )
    codebook_cmd.set_defaults(run=_cmd_codebook)

    compress_cmd = commands.add_parser("compress", help="compress a zoo network against a codebook")
    compress_cmd.add_argument(
        "--codebook", type=Path, default=Path("build/model/codebook.safetensors")
    )
    compress_cmd.add_argument("--network", default="dscnn", help="zoo network (default: dscnn)")
    compress_cmd.add_argument(
        "--data", default="digits", help="digits or fashion-mnist (default: digits)"
    )
    compress_cmd.add_argument("--candidates", type=int, default=8, help="candidates per sub-vector")
    compress_cmd.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default="joint",
        help="train every layer at once (joint, default) or one block at a time (blockwise)",
    )
    compress_cmd.add_argument(
        "--epochs", type=int, default=30, help="most epochs of joint assignment training"
    )
    compress_cmd.add_argument(
        "--block-steps", type=int, default=300, help="steps per block of blockwise training"
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
    export_cmd.add_argument("--data", default="digits", help="calibration and evaluation data")
    export_cmd.add_argument(
        "-o", "--output", type=Path, default=Path("build/model/network.safetensors")
    )
    export_cmd.set_defaults(run=_cmd_export)

    demo = commands.add_parser(
        "demo", help="end to end: export a random layer, run it on the RTL, check it"
    )
    demo.add_argument("-o", "--output", type=Path, default=Path("build/demo"))
    demo.add_argument("--K", type=int, default=65536, help="codebook entries (default: 2^16)")
    demo.add_argument("--D", type=int, default=8, help="codeword length (default: 8)")
    demo.add_argument("--M", type=int, default=128, help="layer outputs (default: 128)")
    demo.add_argument("--N", type=int, default=512, help="layer inputs (default: 512)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (
        ArtifactError,
        ValueError,
        ToolchainError,
        FileNotFoundError,
        SimulationError,
    ) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"vq4all: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
