"""Benchmark of the RTL: a 256x1024 layer with the paper's codebook size (K=2^16, D=8), and a
whole compressed network.

For each codebook mode it prints the simulated cycles, the utilization, the wall time and the
simulated cycles per second through cocotb, and the cycles per second of the plain Verilator
C++ loop (sim/harness.cpp replaying the same beats back to back), as the ceiling. Every output
is checked bit-exactly against golden on both paths. Then a whole network (dscnn on digits test
images) run as ``vq4all simulate --network`` runs it (the C++ harness driven layer run by layer
run from Python, every layer output checked against golden): its simulated cycles per second
end to end, against the plain loop on the same design and against cocotb's per-cycle drivers,
and its per-layer utilization, written to ``build/bench/rtl.json``. Then MobileNetV2 whole
(its layers frozen at their nearest codewords of a K=256 codebook: the cycles do not depend on
the weights or on K) on photos: cycles per image, utilization by layer kind and simulated
cycles per second, written to ``build/bench/mobilenet.json``. Last, the default ECP5
configuration of ``vq4all synth`` through Yosys and nextpnr with one seed (``--synth-seeds``; 0
skips it), its Fmax and resources written to ``build/bench/synth.json``, so that a change that
costs Fmax shows in the next benchmark, and MobileNetV2's inference rate at that Fmax.

Usage: python bench/bench_rtl.py [--K 65536] [--M 256] [--N 1024] [--L 4] [--seed 0] [--epochs 30]
[--synth-seeds 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from vq4all.cli.options import add_config, config_from
from vq4all.flow import (
    compress_network,
    export_program,
    frozen_mobilenet,
    make_codebook,
    select_test_images,
)
from vq4all.golden.codebook import save_codebook
from vq4all.golden.fileio import make_directory, write_json
from vq4all.golden.layer import run_layer, save_layer
from vq4all.golden.network import network_values, save_network
from vq4all.golden.synthetic import random_activations, random_codebook, random_layer
from vq4all.hw.fpga.synth import DEFAULT_FPGA_PARAMS, format_synth, synthesize
from vq4all.hw.params import AcceleratorParams
from vq4all.model.compress import CompressConfig
from vq4all.model.workloads.data import load_dataset
from vq4all.model.workloads.pictures import EVALUATION_PHOTOS, photo_crops
from vq4all.sim.arch.cycles import layer_cycles, utilization_by_kind
from vq4all.sim.arch.mapping import network_runs
from vq4all.sim.rtl.build import Simulator
from vq4all.sim.rtl.encode import LayerBeats
from vq4all.sim.rtl.harness import Harness
from vq4all.sim.rtl.host import hang_budget
from vq4all.sim.rtl.job import Job
from vq4all.sim.rtl.network import (
    NetworkSimulation,
    TestImages,
    accelerator_for,
    simulate_network,
)

#: The C++ harness replays the layer until at least this many cycles, for a stable timing.
HARNESS_MIN_CYCLES = 2_000_000


def plain_loop(params, codebook, program, x, root: Path, input_shape=None) -> dict:
    """The layer ``program`` on input ``x`` replayed in the C++ harness's loop, back to back,
    until :data:`HARNESS_MIN_CYCLES`; every repeat's outputs checked against golden. Returns
    the cycles of one run and the loop's simulated cycles per second."""
    beats = LayerBeats(params, program, codebook, input_shape)
    repeats = max(1, math.ceil(HARNESS_MIN_CYCLES / layer_cycles(params, beats.run)))
    expected = run_layer(codebook, program, x[None])[0]
    with Harness.build(params, codebook, root=root) as harness:
        run = harness.run(beats.input_words(x), beats.output_beats, hang_budget(beats), repeats)
    for outputs in np.split(run.outputs, repeats):
        if not np.array_equal(beats.outputs_from_words(outputs), expected):
            raise SystemExit(f"{params.mode}: the C++ harness's output differs from golden")
    return {"cycles": run.cycles, "cycles_per_second": run.simulated_cycles / run.wall_seconds}


def bench_mode(mode: str, args, codebook, program, x, work: Path) -> dict:
    params = AcceleratorParams.for_runs(
        [], args.K, args.D, args.L, mode, max_inputs=args.N, max_outputs=args.M
    )
    started = time.perf_counter()
    simulator = Simulator.build(params, codebook, root=work / "build")
    build_s = time.perf_counter() - started
    case = (str(work / "layer.safetensors"), str(work / "inputs.npy"))
    job = Job(params, str(work / "codebook.safetensors"), str(work / f"results-{mode}"), [case])
    (row,) = simulator.run_layers(job, work / f"job-{mode}.json")
    if not row["match"]:
        raise SystemExit(f"{mode}: RTL output differs from golden")
    harness = plain_loop(params, codebook, program, x, work / "build")
    return {
        "mode": mode,
        "cycles": row["cycles"],
        "model_cycles": row["model_cycles"],
        "utilization": row["utilization"],
        "cocotb_wall_s": row["wall_s"],
        "cocotb_cycles_per_s": row["sim_cycles"] / row["wall_s"],
        "harness_cycles_per_s": harness["cycles_per_second"],
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
    compressed = net / "dscnn-compressed.safetensors"
    config = config_from(CompressConfig, args)
    compress_network(compressed, codebook, "dscnn", data.name, config, progress=False)
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
    values = network_values(codebook, program, select_test_images(program, count=1).x)
    cycles = {row.name: row.cycles for row in report.layers}
    longest = max(program.layer_ops(), key=lambda op: cycles[op.name])
    layer, x = program.layers[longest.layer], values[longest.input][0].numpy()
    harness = plain_loop(params, codebook, layer, x, work / "build", tuple(x.shape))
    # cocotb's per-cycle drivers on the same design, for comparison.
    cocotb = simulate_network(
        dataclasses.replace(simulation, out_dir=net / "run-cocotb", cocotb=True),
        select_test_images(program, count=args.cocotb_images),
        progress=False,
    )
    return {
        "network": "dscnn",
        "images": report.images,
        "images_bit_exact": report.images_bit_exact,
        "cycles_per_image": report.cycles_per_image,
        "network_cycles_per_second": report.simulated_cycles_per_second,
        "harness_cycles_per_second": round(harness["cycles_per_second"]),
        "cocotb_network_cycles_per_second": cocotb.simulated_cycles_per_second,
        "layers": [
            {key: getattr(row, key) for key in ("name", "columns", "cycles", "utilization")}
            for row in report.layers
        ],
    }


def bench_mobilenet(args, work: Path) -> dict:
    """MobileNetV2 whole on ``args.mobilenet_images`` photo crops through the RTL, every layer
    output checked against golden and every layer's cycles against the model."""
    codebook, _, program = frozen_mobilenet(256)
    net = make_directory(work / "mobilenet")
    save_codebook(net / "codebook.safetensors", codebook)
    save_network(net / "mobilenetv2.safetensors", program)
    x = photo_crops(EVALUATION_PHOTOS, 2, seed=args.seed)[: args.mobilenet_images]
    images = TestImages("photos", x, torch.full((len(x),), -1), list(range(len(x))))
    simulation = NetworkSimulation(
        net / "mobilenetv2.safetensors", net / "run", L=args.L, build_root=work / "build"
    )
    report = simulate_network(simulation, images, progress=False)
    return {
        "network": "mobilenetv2",
        "L": args.L,
        "images": report.images,
        "images_bit_exact": report.images_bit_exact,
        "cycles_per_image": report.cycles_per_image,
        "utilization": utilization_by_kind(report.params, network_runs(program)),
        "simulated_cycles_per_second": report.simulated_cycles_per_second,
        "wall_seconds_per_image": report.simulation_wall_seconds / report.images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, default=65536)
    parser.add_argument("--D", type=int, default=8)
    parser.add_argument("--L", type=int, default=4)
    parser.add_argument("--M", type=int, default=256)
    parser.add_argument("--N", type=int, default=1024)
    parser.add_argument("--images", type=int, default=200, help="network test images")
    parser.add_argument(
        "--cocotb-images", type=int, default=20, help="network test images through cocotb"
    )
    parser.add_argument(
        "--mobilenet-images", type=int, default=4, help="MobileNetV2 photo crops (0: none)"
    )
    parser.add_argument("--work", type=Path, default=Path("build/bench"))
    parser.add_argument(
        "--synth-seeds", type=int, default=1, help="nextpnr seeds of the synthesis (0: none)"
    )
    add_config(parser, CompressConfig, "dscnn's compression (its seed seeds the layer too)")
    args = parser.parse_args()
    make_directory(args.work)
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
    write_json(args.work / "bench_rtl.json", rows)
    print(f"bit-exact on both paths; figures in {args.work / 'bench_rtl.json'}")
    network = bench_network(args, args.work)
    share = network["network_cycles_per_second"] / network["harness_cycles_per_second"]
    print(
        f"whole network: {network['network']} on {network['images']} digits test images, "
        f"{network['images_bit_exact']} bit-exact, {network['cycles_per_image']:,} cycles per "
        f"image: {network['network_cycles_per_second']:,} simulated cycles/s end to end, plain "
        f"C++ loop on the same design {network['harness_cycles_per_second']:,} ({share:.1%}); "
        f"through cocotb {network['cocotb_network_cycles_per_second']:,}"
    )
    for row in network["layers"]:
        print(
            f"  {row['name']:<8} {row['columns']:>6} columns {row['cycles']:>8,} cycles "
            f"utilization {row['utilization']:.3f}"
        )
    write_json(args.work / "rtl.json", network)
    print(f"figures in {args.work / 'rtl.json'}")
    mobilenet = bench_mobilenet(args, args.work) if args.mobilenet_images > 0 else None
    if mobilenet is not None:
        kinds = ", ".join(f"{kind} {u:.3f}" for kind, u in mobilenet["utilization"].items())
        print(
            f"MobileNetV2 whole, L={args.L}: {mobilenet['images_bit_exact']}/"
            f"{mobilenet['images']} photo crops bit-exact, {mobilenet['cycles_per_image']:,} "
            f"cycles per image (= model), {mobilenet['simulated_cycles_per_second']:,} "
            f"simulated cycles/s ({mobilenet['wall_seconds_per_image']:.1f} s per image); "
            f"utilization: {kinds}"
        )
    synth = bench_synth(args.work, args.synth_seeds) if args.synth_seeds > 0 else None
    if mobilenet is not None:
        if synth is not None:
            fmax = min(synth["fmax_mhz"].values())
            mobilenet["fmax_mhz"] = fmax
            mobilenet["inferences_per_second"] = fmax * 1e6 / mobilenet["cycles_per_image"]
            print(
                f"MobileNetV2 at the synthesised {fmax:.1f} MHz: "
                f"{mobilenet['inferences_per_second']:.1f} inferences/s"
            )
        write_json(args.work / "mobilenet.json", mobilenet)
        print(f"figures in {args.work / 'mobilenet.json'}")


def bench_synth(work: Path, seeds: int) -> dict:
    """``vq4all synth``'s default configuration (its codebook: random, seed 0) on the ECP5."""
    codebook = random_codebook(DEFAULT_FPGA_PARAMS.K, DEFAULT_FPGA_PARAMS.D, 0)
    start = time.monotonic()
    report = synthesize(
        DEFAULT_FPGA_PARAMS,
        codebook.codewords,
        codebook.sha256,
        work / "synth",
        seeds=seeds,
        progress=lambda step: print(f"  synthesis: {step}...", flush=True),
    )
    report["seconds"] = round(time.monotonic() - start, 1)
    write_json(work / "synth.json", report)
    print(format_synth(report))
    print(f"figures in {work / 'synth.json'} ({report['seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
