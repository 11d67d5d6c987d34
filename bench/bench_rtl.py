"""Benchmark of the RTL on a 256x1024 layer with the paper's codebook size (K=2^16, D=8).

For each codebook mode it prints the simulated cycles, the utilization, the wall time and the
simulated cycles per second through cocotb, and the cycles per second of a plain Verilator C++
harness on the same Verilog and the same beats, as the ceiling. Every output is checked
bit-exactly against golden on both paths.

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

from golden.artifacts import save_codebook, save_layer
from golden.layer import run_layer
from golden.synthetic import random_activations, random_codebook, random_layer
from hw.params import AcceleratorParams
from sim.build import WAIVERS, Simulator
from sim.encode import LayerBeats, pack
from sim.job import Job
from sim.toolchain import activate_verilator

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "verilator_harness.cpp"
#: The C++ harness replays the layer until at least this many cycles, for a stable timing.
HARNESS_MIN_CYCLES = 2_000_000


def _write_beats(path: Path, layout_size: int, beats: list[int]) -> None:
    words = math.ceil(layout_size / 32)
    payload = b"".join(beat.to_bytes(4 * words, "little") for beat in beats)
    path.write_bytes(np.array([len(beats), words], dtype="<u4").tobytes() + payload)


def _harness_beats(params, codebook, program, x, directory: Path) -> None:
    beats = LayerBeats(params, program, codebook)
    directory.mkdir(parents=True, exist_ok=True)
    inputs = beats.inputs(x)
    for name, layout in params.input_streams.items():
        _write_beats(directory / f"{name}.bin", layout.size, inputs[name])
    # Lanes past M belong to padding channels (multiplier 0), which output 0.
    expected = np.zeros(beats.output_beats * params.L, dtype=np.int8)
    expected[: program.out_features] = run_layer(codebook, program, x[None])[0]
    out = [pack(params.out_layout, group.tolist()) for group in expected.reshape(-1, params.L)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=65536)
    parser.add_argument("--D", type=int, default=8)
    parser.add_argument("--L", type=int, default=4)
    parser.add_argument("--M", type=int, default=256)
    parser.add_argument("--N", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
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


if __name__ == "__main__":
    main()
