"""A small Vision Transformer on digits through the whole flow, written to
``build/bench/vit.json``: trained in float, compressed against the universal codebook that
``make demo`` built (none of its sources is a transformer), exported with the transformer ops
of the program, and scored in golden's integers.

It prints float, VQ4ALL and golden top-1 accuracy on the 497 digits test images, bits per
weight, and how often golden's integers agree with the float VQ model. The program it writes
(``build/vit/network.safetensors``, data set ``digits``) runs on the RTL with::

    vq4all simulate --network build/vit/network.safetensors \\
        --codebook build/demo/codebook.safetensors --images 20

Usage: python bench/bench_vit.py [--codebook build/demo/codebook.safetensors] [--epochs 60]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import vq4all
from vq4all.golden.codebook import load_codebook
from vq4all.golden.fileio import make_directory, write_json
from vq4all.golden.network import predictions
from vq4all.model.export import export_network
from vq4all.model.workloads.data import load_dataset
from vq4all.model.workloads.vit import TinyViT
from vq4all.model.workloads.zoo import evaluate, train_float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codebook", type=Path, default=Path("build/demo/codebook.safetensors"))
    parser.add_argument("--epochs", type=int, default=60, help="float training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/vit"))
    args = parser.parse_args()
    if not args.codebook.exists():
        raise SystemExit(f"{args.codebook}: no codebook; run 'make demo' first, or give --codebook")
    codebook = load_codebook(args.codebook)
    digits = load_dataset("digits")
    start = time.monotonic()
    torch.manual_seed(args.seed)
    model = train_float(TinyViT(), digits, args.epochs, args.seed, progress=False)
    trained = time.monotonic()
    result = vq4all.compress(
        model, codebook, [(digits.train_x, digits.train_y)], held_out=digits.test_x
    )
    compressed = time.monotonic()
    program = export_network(result.model, codebook, result.calibration[:256], "digits")
    make_directory(args.out)
    vq4all.save(result, args.out / "compressed.safetensors")
    vq4all.save_program(program, args.out / "network.safetensors")
    golden = predictions(codebook, program, digits.test_x)
    float_vq = result.model(digits.test_x).argmax(1).numpy()
    figures = {
        "float_accuracy": evaluate(model, digits.test_x, digits.test_y),
        "vq4all_accuracy": evaluate(result.model, digits.test_x, digits.test_y),
        "golden_accuracy": 100 * float((golden == digits.test_y.numpy()).mean()),
        "golden_agrees_with_float_vq": 100 * float((golden == float_vq).mean()),
        "bits_per_weight": result.report.bits_per_weight,
        "weights": result.report.weights,
        "layers": len(program.layers),
        "ops": len(program.graph),
        "codebook_sha256": codebook.sha256,
        "train_seconds": round(trained - start, 1),
        "compress_seconds": round(compressed - trained, 1),
    }
    write_json(make_directory("build/bench") / "vit.json", figures)
    print(
        f"TinyViT on digits ({figures['weights']:,} weights, {figures['layers']} layers, "
        f"{figures['ops']} ops): float {figures['float_accuracy']:.2f}%, VQ4ALL "
        f"{figures['vq4all_accuracy']:.2f}% at {figures['bits_per_weight']:.2f} bits per weight, "
        f"golden {figures['golden_accuracy']:.2f}% (= float VQ on "
        f"{figures['golden_agrees_with_float_vq']:.2f}%); wrote {args.out / 'network.safetensors'}"
    )


if __name__ == "__main__":
    main()
