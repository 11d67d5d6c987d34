"""Benchmark of VQ4ALL against the baselines at 2 bits per weight.

One universal codebook (K=2^16, D=8) is built from all the networks here: the Fashion-MNIST
zoo and MobileNetV2 with its ImageNet weights. Then every network is compressed against it and
compared with the float model, per-layer k-means VQ and uniform 2-bit per-channel quantization
(and uniform 4- and 8-bit, for scale): accuracy on the 10k Fashion-MNIST test images, or, for
MobileNetV2 (no ImageNet labels here), fidelity to the float model on crops of photos that were
not used to distil or calibrate. The zoo distils jointly on Fashion-MNIST training images;
MobileNetV2 block by block (``schedule="blockwise"``) on colour-jittered crops of the
calibration photos; one more MobileNetV2 row compresses its classifier alone, every other
layer float, to show what a single 2-bit layer costs on this measure. Bits per weight count
everything each method stores for its weights except the universal codebook, which is shared
by every network and sits in ROM.

Usage: python bench/bench_model.py [--skip-mobilenet] [--distill 10000] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from golden.artifacts import save_codebook
from golden.network import predictions
from model.baselines import kmeans_per_layer, uniform_per_channel, weight_count
from model.codebook import build_codebook
from model.compress import CompressConfig, compress
from model.data import DATASETS, Dataset, load_fashion_mnist
from model.export import export_network
from model.metrics import fidelity
from model.mobilenet import (
    CALIBRATION_PHOTOS,
    EVALUATION_PHOTOS,
    load_mobilenet_v2,
    photo_crops,
)
from model.vq import stored_bits
from model.zoo import ZOO, evaluate, trained

#: Uniform per-channel quantization at 2 bits, the baseline, and at 4 and 8 bits for scale.
REFERENCE_BITS = (2, 4, 8)


def _row(network: str, method: str, scores: dict, bits: float, seconds: float, **extra) -> dict:
    return {
        "network": network,
        "method": method,
        **scores,
        "bits_per_weight": bits,
        "compression": 32 / bits,
        "seconds": seconds,
        **extra,
    }


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _methods(
    network: str, model, codebook, distill: Dataset, config: CompressConfig, score, integer=None
) -> list[dict]:
    """Rows of every method for one network; ``integer(compressed)`` scores the exported
    program's golden integer inference, where the network can be exported."""
    weights = weight_count(model)
    rows = [_row(network, "float", score(model), 32.0, 0.0)]
    result, seconds = _timed(compress, model, codebook, distill, config)
    bits = stored_bits(result.model, codebook) / weights
    pnc = {"steps": result.steps, "frozen_by_pnc": result.frozen_by_pnc}
    rows.append(_row(network, "VQ4ALL universal", score(result.model), bits, seconds, **pnc))
    if integer is not None:
        rows.append(_row(network, "VQ4ALL int8 golden", integer(result.model), bits, 0.0))
    (kmeans, bits), seconds = _timed(kmeans_per_layer, model, codebook.D)
    rows.append(_row(network, "per-layer k-means", score(kmeans), bits / weights, seconds))
    for precision in REFERENCE_BITS:
        (uniform, bits), seconds = _timed(uniform_per_channel, model, precision)
        method = f"uniform {precision}-bit"
        rows.append(_row(network, method, score(uniform), bits / weights, seconds))
    return rows


def classifier_only(mobilenet, codebook, photos: Dataset, config: CompressConfig, score) -> dict:
    """MobileNetV2 with only its classifier compressed (jointly, on the pooled features of the
    distillation crops), every other layer float."""
    start = time.perf_counter()
    with torch.no_grad():
        pooled = torch.cat([mobilenet.embed(part) for part in photos.train_x.split(128)])
    # Distillation only: no test split.
    features = Dataset("pooled", pooled, photos.train_y, pooled[:0], photos.train_y[:0], 1000)
    result = compress(mobilenet.classifier, codebook, features, config)
    model = copy.deepcopy(mobilenet)
    model.classifier = result.model
    float_weights = weight_count(mobilenet) - weight_count(mobilenet.classifier)
    bits = (stored_bits(result.model, codebook) + 32 * float_weights) / weight_count(mobilenet)
    seconds = time.perf_counter() - start
    return _row("mobilenet_v2", "VQ4ALL classifier", score(model), bits, seconds)


def golden_accuracy(compressed, codebook, data: Dataset) -> dict:
    """Accuracy of the exported program's golden integer inference (activation scales
    calibrated on training images)."""
    program = export_network(compressed, codebook, data.calibration())
    correct = predictions(codebook, program, data.test_x) == data.test_y.numpy()
    return {"metric": 100.0 * float(correct.mean())}


def _print_table(rows: list[dict], crops: int) -> None:
    print(
        f"\n{'network':<14}{'method':<20}{'accuracy %':>11}{'bits/w':>8}{'ratio':>7}{'time s':>8}"
    )
    for row in rows:
        extra = f"  top-5 {row['top5_overlap']:.1f}%, KL {row['kl']:.3f}" if "kl" in row else ""
        print(
            f"{row['network']:<14}{row['method']:<20}{row['metric']:>11.2f}"
            f"{row['bits_per_weight']:>8.3f}{row['compression']:>7.1f}{row['seconds']:>8.1f}{extra}"
        )
    print(
        f"mobilenet_v2: top-1 agreement with the float model, not accuracy, on "
        f"{len(EVALUATION_PHOTOS)} photos x {crops} crops"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-mobilenet", action="store_true")
    parser.add_argument("--distill", type=int, default=10000, help="training images that distil")
    parser.add_argument("--crops", type=int, default=32, help="evaluation crops per photo")
    parser.add_argument(
        "--distill-crops", type=int, default=80, help="MobileNetV2 distillation crops per photo"
    )
    parser.add_argument(
        "--distill-size", type=int, default=160, help="MobileNetV2 distillation crop side"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("build/bench"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    fashion = load_fashion_mnist()
    epochs = DATASETS["fashion-mnist"][1]
    zoo = {name: trained(name, fashion, epochs=epochs, seed=args.seed) for name in ZOO}
    sources = dict(zoo)
    if not args.skip_mobilenet:
        mobilenet = load_mobilenet_v2()
        sources["mobilenet_v2"] = mobilenet
    codebook = build_codebook(sources, K=65536, D=8, seed=args.seed)
    save_codebook(args.work / "universal_codebook.safetensors", codebook)
    print(f"universal codebook from {', '.join(sources)}: sha256 {codebook.sha256[:16]}...")

    rows = []
    distill = fashion.training_subset(args.distill)
    config = CompressConfig(seed=args.seed)
    for name, model in zoo.items():

        def accuracy(m) -> dict:
            return {"metric": evaluate(m, fashion.test_x, fashion.test_y)}

        def integer(m) -> dict:
            return golden_accuracy(m, codebook, fashion)

        rows += _methods(name, model, codebook, distill, config, accuracy, integer)
    if not args.skip_mobilenet:
        train = photo_crops(
            CALIBRATION_PHOTOS,
            args.distill_crops,
            seed=args.seed,
            size=args.distill_size,
            jitter=True,
        )
        test = photo_crops(EVALUATION_PHOTOS, args.crops, seed=args.seed + 1)
        with torch.no_grad():
            pseudo = mobilenet(train).argmax(dim=1)
        no_labels = torch.zeros(len(test), dtype=torch.long)
        photos = Dataset("photos", train, pseudo, test, no_labels, classes=1000)

        def agreement(model) -> dict:
            scores = fidelity(mobilenet, model, test)
            return {"metric": scores.pop("top1_agreement"), **scores}

        config = CompressConfig(schedule="blockwise", batch=32, seed=args.seed)
        rows += _methods("mobilenet_v2", mobilenet, codebook, photos, config, agreement)
        head = CompressConfig(batch=32, seed=args.seed)
        rows.append(classifier_only(mobilenet, codebook, photos, head, agreement))
    _print_table(rows, args.crops)
    (args.work / "bench_model.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
