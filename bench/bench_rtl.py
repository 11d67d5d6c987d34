"""Benchmark of the RTL: a 256x1024 layer with the paper's codebook size (K=2^16, D=8), and a
whole compressed network.

For each codebook mode it prints the simulated cycles, the utilization, the wall time and the
simulated cycles per second through cocotb, and the cycles per second of a plain Verilator C++
harness on the same Verilog and the same beats, as the ceiling. Every output is checked
bit-exactly against golden on both paths. Then a whole network (dscnn on digits test images)
through one simulator process, its simulated cycles per second against the C++ loop on the
same design, and its per-layer utilization, written to ``build/bench/rtl.json``.

Usage: python bench/bench_rtl.py [--K 65536] [--M 256] [--N 1024] [--L 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from golden.artifacts import save_codebook, save_layer
from golden.layer import run_layer
from golden.network import LayerOp, quantize_input
from golden.synthetic import random_activations, random_codebook, random_layer
from hw.params import AcceleratorParams
from model.data import load_dataset
from sim.build import WAIVERS, Simulator
from sim.encode import LayerBeats, pack
from sim.job import Job
from sim.network import NetworkSimulation, accelerator_for, simulate_network
from sim.toolchain import activate_verilator
from vq4all.flow import compress_network, export_program, make_codebook, select_test_images

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "verilator_harness.cpp"
#: The C++ harness replays the layer until at least this many cycles, for a stable timing.
HARNESS_MIN_CYCLES = 2_000_000


def _write_beats(path: Path, layout_size: int, beats: list[int]) -> None:
    words = math.ceil(layout_size / 32)
    payload = b"".join(beat.to_bytes(4 * words, "little") for beat in beats)
    path.write_bytes(np.array([len(beats), words], dtype="<u4").tobytes() + payload)


def _harness_beats(params, codebook, program, x, directory: Path, input_shape=None) -> None:
    beats = LayerBeats(params, program, codebook, input_shape)
    directory.mkdir(parents=True, exist_ok=True)
    inputs = beats.inputs(x)
    for name, layout in params.input_streams.items():
        _write_beats(directory / f"{name}.bin", layout.size, inputs[name])
    # The outputs as the out stream carries them: per column, groups of L lanes; the lanes past
    # a group's channels belong to padding channels (multiplier 0), which output 0.
    run = beats.run
    y = run_layer(codebook, program, x[None])[0].reshape(run.conv_groups, run.out_features, -1)
    lanes = np.zeros((run.conv_groups, run.pixels, beats.tiling.groups * params.L), np.int8)
    lanes[..., : run.out_features] = y.transpose(0, 2, 1)
    out = [pack(params.out_layout, group.tolist()) for group in lanes.reshape(-1, params.L)]
    _write_beats(directory / "out.bin", params.out_layout.size, out)


def _build_harness(simulator: Simulator) -> Path:
    verilator = activate_verilator()
    verilog = simulator.build_dir / "vq4all_accel.v"
    source = HARNESS.read_bytes() + verilog.read_bytes()
    out = (
        simulator.build_dir.parent
        / f"harness-{simulator.build_dir.name}-{hashlib.sha256(source).hexdigest()[:8]}"
    )
    binary = out / "harness"
    if binary.exists():
        return binary
    defines = f"-DLANES={simulator.params.L}" + (
        " -DSRAM_MODE" if simulator.params.mode == "sram" else ""
    )
    command = [
        *(str(verilator.executable), "--cc", "--exe", "--build", "--build-jobs", "2"),
        *("-O3", "--x-assign", "fast", "--x-initial", "fast"),
        *("--top-module", "vq4all_accel", "--prefix", "Vtop", "-Mdir", str(out), "-o", "harness"),
        *("-CFLAGS", f"-O2 {defines}", str(WAIVERS), str(verilog), str(HARNESS)),
    ]
    subprocess.run(command, check=True, env=verilator.environment(), capture_output=True, text=True)
    return binary


def bench_mode(mode: str, args, codebook, program, x, work: Path) -> dict:
    params = AcceleratorParams(
        K=args.K, D=args.D, L=args.L, max_inputs=args.N, max_outputs=args.M, mode=mode
    )
    started = time.perf_counter()
    simulator = Simulator.build(params, codebook, root=work / "build")
    build_s = time.perf_counter() - started
    case = (str(work / "layer.safetensors"), str(work / "inputs.npy"))
    job = Job(params, str(work / "codebook.safetensors"), str(work / f"results-{mode}"), [case])
    (row,) = simulator.run_layers(job, work / f"job-{mode}.json")
    if not row["match"]:
        raise SystemExit(f"{mode}: RTL output differs from golden")
    _harness_beats(params, codebook, program, x, work / f"beats-{mode}")
    binary = _build_harness(simulator)
    repeats = max(1, math.ceil(HARNESS_MIN_CYCLES / row["cycles"]))
    result = subprocess.run(
        [str(binary), str(work / f"beats-{mode}"), str(repeats)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode}: C++ harness failed: {result.stdout}{result.stderr}")
    harness = json.loads(result.stdout)
    return {
        "mode": mode,
        "cycles": row["cycles"],
        "model_cycles": row["model_cycles"],
        "utilization": row["utilization"],
        "cocotb_wall_s": row["wall_s"],
        "cocotb_cycles_per_s": row["sim_cycles"] / row["wall_s"],
        "harness_cycles_per_s": harness["cycles"] / harness["wall_s"],
        "harness_cycles": harness["cycles"],
        "build_s": build_s,
    }


def bench_network(args, work: Path) -> dict:
    """dscnn, compressed against a universal codebook of mlp, cnn and rescnn on digits, on
    ``args.images`` test images through the RTL (one simulator process, every layer output
    checked against golden), and the plain C++ loop on the same design replaying the network's
    longest layer run."""
    data = load_dataset("digits")
    net = work / "network"
    codebook = make_codebook(
        net / "codebook.safetensors", data, ["mlp", "cnn", "rescnn"], args.K, args.D, 0, False
    )
    compress_network(net / "dscnn-compressed.safetensors", codebook, data, "dscnn", progress=False)
    export = export_program(
        net / "dscnn.safetensors", codebook, net / "dscnn-compressed.safetensors"
    )
    program = export.program
    simulation = NetworkSimulation(
        net / "dscnn.safetensors", net / "run", L=args.L, build_root=work / "build"
    )
    report = simulate_network(
        simulation, select_test_images(program, count=args.images), progress=False
    )
    # The C++ ceiling on the same design and the same real activations of test image 0.
    params = accelerator_for(program, codebook, "rom", args.L)
    values = [quantize_input(select_test_images(program, count=1).x, program.input_scale)]
    longest = None
    for op in program.graph:
        if isinstance(op, LayerOp):
            layer = program.layers[op.layer]
            x = values[op.input][0].numpy()
            row = next(r for r in report["layers"] if r["name"] == op.name)
            if longest is None or row["cycles"] > longest[0]:
                longest = (row["cycles"], layer, x)
            values.append(torch.from_numpy(run_layer(codebook, layer, x[None])))
        else:
            values.append(op.apply(values))
    cycles, layer, x = longest
    _harness_beats(params, codebook, layer, x, net / "beats", tuple(x.shape))
    binary = _build_harness(Simulator.build(params, codebook, root=work / "build"))
    repeats = max(1, math.ceil(HARNESS_MIN_CYCLES / cycles))
    result = subprocess.run(
        [str(binary), str(net / "beats"), str(repeats)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"network: C++ harness failed: {result.stdout}{result.stderr}")
    harness = json.loads(result.stdout)
    return {
        "network": "dscnn",
        "images": report["images"],
        "images_bit_exact": report["images_bit_exact"],
        "cycles_per_image": report["cycles_per_image"],
        "network_cycles_per_second": report["simulated_cycles_per_second"],
        "harness_cycles_per_second": round(harness["cycles"] / harness["wall_s"]),
        "layers": [
            {key: row[key] for key in ("name", "columns", "cycles", "utilization")}
            for row in report["layers"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=65536)
    parser.add_argument("--D", type=int, default=8)
    parser.add_argument("--L", type=int, default=4)
    parser.add_argument("--M", type=int, default=256)
    parser.add_argument("--N", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=20, help="network test images")
    parser.add_argument("--work", type=Path, default=Path("build/bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    codebook = random_codebook(args.K, args.D, args.seed)
    program = random_layer(codebook, args.M, args.N, relu=True, rng=rng)
    x = random_activations(rng, (args.N,))
    save_codebook(args.work / "codebook.safetensors", codebook)
    save_layer(args.work / "layer.safetensors", program)
    np.save(args.work / "inputs.npy", x)
    print(f"layer {args.M}x{args.N}, K={args.K}, D={args.D}, L={args.L}, seed {args.seed}")
    rows = [bench_mode(mode, args, codebook, program, x, args.work) for mode in ("rom", "sram")]
    print(
        f"{'mode':<5} {'cycles':>8} {'model':>8} {'util':>6} {'wall s':>7} "
        f"{'cocotb cyc/s':>13} {'C++ cyc/s':>12} {'ceiling x':>9}"
    )
    for r in rows:
        ceiling = r["harness_cycles_per_s"] / r["cocotb_cycles_per_s"]
        print(
            f"{r['mode']:<5} {r['cycles']:>8} {r['model_cycles']:>8} {r['utilization']:>6.3f} "
            f"{r['cocotb_wall_s']:>7.2f} {r['cocotb_cycles_per_s']:>13,.0f} "
            f"{r['harness_cycles_per_s']:>12,.0f} {ceiling:>9.0f}"
        )
    (args.work / "bench_rtl.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(f"bit-exact on both paths; figures in {args.work / 'bench_rtl.json'}")
    network = bench_network(args, args.work)
    share = network["network_cycles_per_second"] / network["harness_cycles_per_second"]
    print(
        f"whole network: {network['network']} on {network['images']} digits test images, "
        f"{network['images_bit_exact']} bit-exact, {network['cycles_per_image']:,} cycles per "
        f"image: {network['network_cycles_per_second']:,} simulated cycles/s, plain C++ loop "
        f"on the same design {network['harness_cycles_per_second']:,} ({share:.1%})"
    )
    for row in network["layers"]:
        print(
            f"  {row['name']:<8} {row['columns']:>6} columns {row['cycles']:>8,} cycles "
            f"utilization {row['utilization']:.3f}"
        )
    (args.work / "rtl.json").write_text(json.dumps(network, indent=1) + "\n")
    print(f"figures in {args.work / 'rtl.json'}")


if __name__ == "__main__":
    main()
