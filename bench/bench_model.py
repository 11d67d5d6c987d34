"""Benchmark of VQ4ALL against the baselines at 2 bits per weight, written to
``build/bench/model.json``.

One universal codebook (K=2^16, D=8) is built from all the networks here, each sharing its
density in proportion to its weights: the Fashion-MNIST zoo and MobileNetV2 with its ImageNet
weights. Then every network is compressed against it and compared with the float model,
per-layer VQ at the same bits (each layer's own k-means codebook, post-training and trained with
VQ4ALL's distillation: ``kmeans`` and ``perlayer-trained``), and uniform per-channel 2-, 4- and
8-bit quantization, and the exported program's golden integer inference is scored too
(MobileNetV2's with 16-bit activations,
:data:`vq4all.model.workloads.mobilenet.MOBILENET_ACTIVATION_BITS`; the zoo's with 8-bit ones).
The zoo is scored by top-1 accuracy on the 10k Fashion-MNIST test images (it distils jointly on
Fashion-MNIST training images). MobileNetV2 (no ImageNet labels here) is scored by top-1
agreement with the float model, top-5 agreement and KL, on crops of photographs that never
distil or calibrate: half of GCompris's photographs, half of the photographs among Debian's
desktop backgrounds, and three sample photos; it distils stage by stage
(``schedule="blockwise"``) on colour-jittered crops of the other half of each, the other
backgrounds (artwork) and nine other sample images (with ``--stamps``, also on composites of Tux
Paint's photographic stamps, objects cut out of photos, on the backgrounds). Bits per weight
count everything each method stores for its weights (indices, per-channel scales, k-means' own
codebooks) over all weights, except the universal codebook, which is shared by every network and
sits in ROM.

Each network's VQ4ALL and per-layer VQ programs are saved beside ``model.json``, and the energy
model compares them with int8 and int4 designs beside these accuracies
(:func:`bench_energy.energy_answers`).

Usage: python bench/bench_model.py [--skip-zoo] [--skip-mobilenet] [--block-steps 1000] ...
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_energy import energy_answers  # beside this script

from vq4all.cli.options import add_config, config_from
from vq4all.golden.codebook import save_codebook
from vq4all.golden.fileio import make_directory, write_json
from vq4all.golden.network import predictions, save_network
from vq4all.model.baselines import kmeans_codebooks, uniform_per_channel, weight_count
from vq4all.model.checkpoint import save_compressed
from vq4all.model.codebook import WEIGHTINGS, build_codebook
from vq4all.model.compress import CompressConfig, compress
from vq4all.model.export import export_network
from vq4all.model.metrics import fidelity, outputs
from vq4all.model.vq import frozen_at_nearest, stored_bits
from vq4all.model.workloads import mobilenet as mobilenet_module
from vq4all.model.workloads.data import DATASETS, load_dataset
from vq4all.model.workloads.mobilenet import MOBILENET_ACTIVATION_BITS, load_mobilenet_v2
from vq4all.model.workloads.pictures import (
    CALIBRATION_PHOTOS,
    EVALUATION_PHOTOS,
    backgrounds,
    gcompris_photos,
    photo_crops,
    stamp_composites,
    stamps,
)
from vq4all.model.workloads.zoo import ZOO, evaluate, trained

#: MobileNetV2's compression: blockwise (its distillation pictures are few), 16 candidates,
#: slower freezing than the zoo's, stages that take steps by their size, a last stage that
#: distils the float output's KL divergence, then 300 steps of end-to-end tuning. Each choice,
#: and what it was measured to give, is in docs/benchmarks.md.
MOBILENET_CONFIG = CompressConfig(
    schedule="blockwise",
    batch=32,
    block_steps=1000,
    steps_by_size=True,
    soft_targets=True,
    tune_steps=300,
    candidates=16,
    lr=0.05,
    ratio_weight=0.1,
    cache_gib=10.0,
)
#: Uniform per-channel quantization at 2 bits, the baseline, and at 4 and 8 bits for scale.
UNIFORM_BITS = (2, 4, 8)


def _row(network: str, method: str, metric: str, scores: dict, bits: float, seconds: float):
    """A row of model.json: ``value`` is the metric in percent; other scores ride along."""
    extra = {key: value for key, value in scores.items() if key != "value"}
    return {
        "network": network,
        "method": method,
        "metric": metric,
        "value": scores["value"],
        "bits_per_weight": bits,
        "seconds": round(seconds, 1),
        **extra,
    }


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _methods(
    network, metric, model, codebook, distill, config, score, golden, save, work: Path
) -> list[dict]:
    """Rows of every method for one network. ``distill`` is [images, labels or None], emptied
    once compressed (nothing else should hold the images: they are freed before scoring);
    ``score(model)`` and ``golden(compressed)`` give the scores of a model and of the exported
    program of the compressed one; ``save(model, name)`` exports and saves a per-layer VQ
    model's program as ``<network>-<name>.safetensors``, for ``vq4all energy``. Each
    compression keeps its state in ``work`` after every stage or epoch
    (``<network>-<method>.resume``, removed when done): a benchmark stopped part way goes on
    from there when run again with the same code and flags.

    Per-layer VQ has each layer's own k-means codebook at VQ4ALL's index bits per weight (the
    same per-channel scales), post-training (``kmeans``) and trained from there with VQ4ALL's
    candidate assignments, distillation, schedule and budget (``perlayer-trained``)."""
    weights = weight_count(model)
    rows = [_row(network, "float", metric, score(model), 32.0, 0.0)]

    def compressed(method: str, codebooks):
        resume = work / f"{network}-{method}.resume"
        done = compress(model, codebooks, *distill, config, resume=resume)
        resume.unlink(missing_ok=True)
        return done

    result, seconds = _timed(compressed, "vq4all", codebook)
    bits = stored_bits(result.model) / weights
    pnc = {"steps": result.steps, "frozen_by_pnc": result.frozen_by_pnc}
    rows.append(_row(network, "vq4all", metric, score(result.model) | pnc, bits, seconds))
    budget = codebook.index_bits / codebook.D
    codebooks, kmeans_seconds = _timed(
        kmeans_codebooks, model, codebook.D, budget, seed=config.seed
    )
    per_layer, seconds = _timed(compressed, "perlayer-trained", codebooks)
    distill.clear()
    pnc = {"steps": per_layer.steps, "frozen_by_pnc": per_layer.frozen_by_pnc}
    bits = stored_bits(per_layer.model) / weights
    scores = score(per_layer.model) | pnc
    trained = _row(network, "perlayer-trained", metric, scores, bits, kmeans_seconds + seconds)
    save(per_layer.model, "perlayer-trained")
    del per_layer
    scores, seconds = _timed(golden, result.model)
    bits = stored_bits(result.model) / weights
    rows.append(_row(network, "vq4all-golden", metric, scores, bits, seconds))
    kmeans = frozen_at_nearest(model, codebooks)
    bits = stored_bits(kmeans) / weights
    rows.append(_row(network, "kmeans", metric, score(kmeans), bits, kmeans_seconds))
    save(kmeans, "kmeans")
    rows.append(trained)
    for precision in UNIFORM_BITS:
        (uniform, bits), seconds = _timed(uniform_per_channel, model, precision)
        method = f"uniform{precision}"
        rows.append(_row(network, method, metric, score(uniform), bits / weights, seconds))
    return rows


def _zoo_rows(
    zoo, data, codebook, distill_count: int, epochs: int, seed: int, work: Path
) -> list[dict]:
    rows = []
    images, labels = data.train_x[:distill_count], data.train_y[:distill_count]
    for name, model in zoo.items():

        def accuracy(m) -> dict:
            return {"value": evaluate(m, data.test_x, data.test_y)}

        def golden(compressed, name=name) -> dict:
            program = export_network(compressed, codebook, data.calibration(), data.name)
            save_network(work / f"{name}.safetensors", program)
            correct = predictions(codebook, program, data.test_x) == data.test_y.numpy()
            return {"value": 100.0 * float(correct.mean())}

        def save(per_layer, method, name=name) -> None:
            program = export_network(per_layer, None, data.calibration(), data.name)
            save_network(work / f"{name}-{method}.safetensors", program)

        config = CompressConfig(epochs=epochs, seed=seed)
        distill = [images, labels]
        rows += _methods(
            name, "top1", model, codebook, distill, config, accuracy, golden, save, work
        )
    return rows


def _mobilenet_rows(mobilenet, codebook, args) -> tuple[list[dict], dict]:
    """MobileNetV2's rows, and what its evaluation set and stages took."""
    calibration_backgrounds, evaluation_backgrounds = backgrounds()
    calibration_gcompris, evaluation_gcompris = gcompris_photos()
    started = time.perf_counter()
    evaluation_photos = (*evaluation_backgrounds, *evaluation_gcompris, *EVALUATION_PHOTOS)
    calibration_photos = (*calibration_backgrounds, *calibration_gcompris, *CALIBRATION_PHOTOS)
    test = photo_crops(evaluation_photos, args.crops, seed=args.seed + 1)
    train = photo_crops(
        calibration_photos,
        args.distill_crops,
        seed=args.seed,
        size=args.distill_size,
        jitter=True,
    )
    objects = stamps() if args.stamps else []
    if objects:
        composites = stamp_composites(
            objects, calibration_backgrounds, args.stamps, args.seed + 3, args.distill_size
        )
        train = torch.cat([train, composites])
        del composites
    # Shuffled: the early stages, which hold only the first images, see every kind of picture.
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    train = train[order]
    # The export calibrates activation scales at the evaluation resolution.
    calibration = photo_crops(calibration_photos, 2, seed=args.seed + 2)
    float_probabilities = outputs(mobilenet, test).softmax(1)
    float_top1 = float_probabilities.argmax(dim=1)
    info = {
        "evaluation_images": len(test),
        "evaluation_photos": len(evaluation_photos),
        "float_top1_classes": len(set(float_top1.tolist())),
        # How decided the float model is: on crops where it hesitates, any change flips top-1.
        "float_top1_median_probability": round(
            float(float_probabilities.max(dim=1).values.median()), 3
        ),
        "distillation_images": len(train),
        "distillation_photos": len(calibration_photos),
        "distillation_stamps": len(objects),
        "data_seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"mobilenetv2: {info['evaluation_images']} evaluation crops of "
        f"{info['evaluation_photos']} photos, {info['float_top1_classes']} distinct float top-1 "
        f"classes; {info['distillation_images']} distillation images: crops of "
        f"{info['distillation_photos']} other photos, and composites of "
        f"{info['distillation_stamps']} stamps on them"
    )

    def agreement(model) -> dict:
        scores = fidelity(mobilenet, model, test)
        return {
            "value": scores["top1_agreement"],
            "top5": scores["top5_overlap"],
            "kl": scores["kl"],
        }

    def golden(compressed) -> dict:
        # Saved with the images its program calibrates on: `vq4all export --activation-bits 16`
        # and `vq4all simulate` take the benchmark's model, with the same program, without
        # compressing anew.
        save_compressed(
            args.work / "mobilenetv2.compressed.safetensors",
            compressed,
            f"{Path(mobilenet_module.__file__).resolve()}:MobileNetV2",
            tuple(test.shape[1:]),
            codebook,
            args.candidates,
            "",
            calibration,
        )
        program = export_network(
            compressed, codebook, calibration, activation_bits=MOBILENET_ACTIVATION_BITS
        )
        save_network(args.work / "mobilenetv2.safetensors", program)
        integer = predictions(codebook, program, test)
        float_vq = outputs(compressed, test).argmax(dim=1)
        return {
            "value": 100.0 * float((integer == float_top1.numpy()).mean()),
            "agreement_with_vq4all": 100.0 * float((integer == float_vq.numpy()).mean()),
        }

    def save(per_layer, method) -> None:
        program = export_network(
            per_layer, None, calibration, activation_bits=MOBILENET_ACTIVATION_BITS
        )
        save_network(args.work / f"mobilenetv2-{method}.safetensors", program)

    config = config_from(CompressConfig, args)
    distill = [train, None]
    del train  # MobileNetV2's distillation images (4 GB) are freed before scoring
    rows = _methods(
        "mobilenetv2",
        "agreement",
        mobilenet,
        codebook,
        distill,
        config,
        agreement,
        golden,
        save,
        args.work,
    )
    return rows, info


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'network':<13}{'method':<18}{'metric':<10}{'value %':>9}{'bits/w':>8}{'time s':>8}")
    for row in rows:
        extra = f"  top-5 {row['top5']:.1f}%, KL {row['kl']:.3f}" if "kl" in row else ""
        if "agreement_with_vq4all" in row:
            extra += f"  (= float VQ on {row['agreement_with_vq4all']:.1f}%)"
        print(
            f"{row['network']:<13}{row['method']:<18}{row['metric']:<10}{row['value']:>9.2f}"
            f"{row['bits_per_weight']:>8.3f}{row['seconds']:>8.1f}{extra}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--skip-mobilenet", action="store_true")
    parser.add_argument(
        "--data",
        choices=tuple(DATASETS),
        default="fashion-mnist",
        help="the zoo's data set (digits only for a quick check: it installs with pip)",
    )
    parser.add_argument(
        "--zoo", default=",".join(ZOO), help="the zoo networks, comma-separated (default: all)"
    )
    parser.add_argument("--distill", type=int, default=10000, help="zoo distillation images")
    parser.add_argument(
        "--zoo-epochs", type=int, default=CompressConfig().epochs, help="zoo compression epochs"
    )
    parser.add_argument("--K", type=int, default=65536, help="universal codebook entries")
    parser.add_argument("--crops", type=int, default=4, help="evaluation crops per photo")
    parser.add_argument(
        "--distill-crops", type=int, default=45, help="MobileNetV2 distillation crops per photo"
    )
    parser.add_argument(
        "--stamps",
        type=int,
        default=0,
        help="MobileNetV2 distillation composites per Tux Paint stamp (off: see docs)",
    )
    parser.add_argument(
        "--distill-size", type=int, default=160, help="MobileNetV2 distillation crop side"
    )
    parser.add_argument(
        "--codebook-weighting",
        choices=WEIGHTINGS,
        default="size",
        help="each network's share of the codebook's density (default: size)",
    )
    parser.add_argument("--work", type=Path, default=Path("build/bench"))
    add_config(parser, CompressConfig, "MobileNetV2's compression", MOBILENET_CONFIG)
    args = parser.parse_args()
    make_directory(args.work)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    data = load_dataset(args.data)
    epochs = DATASETS[args.data][1]
    zoo = {name: trained(name, data, epochs, args.seed) for name in args.zoo.split(",")}
    mobilenet = load_mobilenet_v2()
    codebook = build_codebook(
        {**zoo, "mobilenetv2": mobilenet},
        K=args.K,
        D=8,
        seed=args.seed,
        weighting=args.codebook_weighting,
    )
    save_codebook(args.work / "universal_codebook.safetensors", codebook)
    stages = {"zoo_and_codebook_seconds": round(time.perf_counter() - started, 1)}
    print(f"universal codebook from {', '.join(zoo)}, mobilenetv2: {codebook.sha256[:16]}...")

    rows = []
    if not args.skip_zoo:
        rows += _zoo_rows(zoo, data, codebook, args.distill, args.zoo_epochs, args.seed, args.work)
    info = {}
    if not args.skip_mobilenet:
        mobilenet_rows, info = _mobilenet_rows(mobilenet, codebook, args)
        rows += mobilenet_rows
    _print_table(rows)
    stages["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"stages: {stages | info}")
    write_json(args.work / "model.json", rows)
    write_json(args.work / "model_run.json", stages | info)
    print(f"wrote {args.work / 'model.json'}")
    energy_answers(args.work)


if __name__ == "__main__":
    main()
