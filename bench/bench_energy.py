"""The energy answer of the benchmark's networks at 22 nm: VQ4ALL's ROM against int8, int4 and
per-layer VQ designs, beside the accuracies of ``build/bench/model.json``, for each network
written to ``build/bench/energy-<network>-<cells>-<dataflow>/`` (``vq4all energy``'s files).

It reads the programs that ``make bench-model`` saved (``<network>.safetensors``, VQ4ALL's,
and ``<network>-kmeans.safetensors``, per-layer VQ's). Without MobileNetV2's it makes programs of
its layers (16-bit activations) in a few minutes: every sub-vector at its nearest codeword of a
K=2^16 codebook of MobileNetV2's own weights, and each layer's own k-means codebook at the same
bits. Energy, traffic and cycles depend only on the layers, K and each K_l, so they are the
trained programs' figures; the accuracies are the benchmark's, and absent ones are shown as
such. MobileNetV2 takes 67 ms an inference at 200 MHz: the rate is 10 inferences/s.

Usage: python bench/bench_energy.py [--work build/bench] [--rate 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vq4all.golden.fileio import make_directory
from vq4all.golden.network import save_network
from vq4all.sim.energy.model import Schedule
from vq4all.sim.energy.report import Setup, energy_report, load_accuracies
from vq4all.sim.energy.tables import load_table

#: The settings compared: the table's cells (high-performance, low-standby) and the dataflow.
SETTINGS = (("hp", "stream"), ("lstp", "stream"), ("lstp", "decode_once"))


def frozen_programs(work: Path) -> list[Path]:
    """MobileNetV2's VQ4ALL and per-layer VQ programs of the benchmark's layers, K and K_l,
    every sub-vector frozen to its nearest codeword (no distillation)."""
    from vq4all.flow import frozen_mobilenet
    from vq4all.model.baselines import kmeans_codebooks
    from vq4all.model.workloads.mobilenet import load_mobilenet_v2

    codebook, _, program = frozen_mobilenet(65536)
    per_layer = kmeans_codebooks(load_mobilenet_v2(), codebook.D, codebook.index_bits / codebook.D)
    _, _, per_layer_program = frozen_mobilenet(per_layer)
    paths = []
    for name, frozen in (("mobilenetv2", program), ("mobilenetv2-kmeans", per_layer_program)):
        paths.append(make_directory(work / "frozen") / f"{name}.safetensors")
        save_network(paths[-1], frozen)
    return paths


def energy_answers(work: Path, rate_hz: float = 10.0) -> None:
    """Each network's answer in every setting of :data:`SETTINGS`, printed and written."""
    accuracies_file = work / "model.json"
    accuracies = load_accuracies(accuracies_file) if accuracies_file.is_file() else {}
    if not accuracies:
        print(f"no {accuracies_file}: accuracies left out (make bench-model measures them)")
    for network in accuracies or ["mobilenetv2"]:
        programs = [work / f"{network}.safetensors", work / f"{network}-kmeans.safetensors"]
        if not all(path.is_file() for path in programs):
            if network != "mobilenetv2":
                print(f"{network}: no programs of make bench-model in {work}")
                continue
            print(f"{network}: programs of its layers, K and K_l, frozen to their codewords")
            programs = frozen_programs(work)
        for cells, dataflow in SETTINGS:
            setup = Setup(Schedule(rate_hz=rate_hz), dataflow=dataflow)
            table = load_table().with_cells(cells)
            report = energy_report(programs, table, setup, accuracies=accuracies)
            report.write(work / f"energy-{network}-{cells}-{dataflow}")
            print(report.format())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("build/bench"))
    parser.add_argument(
        "--rate", type=float, default=10.0, help="inferences per second (default: 10)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    energy_answers(args.work, args.rate)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
