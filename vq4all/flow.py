"""The steps of the co-design flow, each a function that the command line and the demo call:
universal codebook, compression, export, and the test images of a network run."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vq4all.api import Result, compress
from vq4all.golden.codebook import Codebook, save_codebook
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import make_directory
from vq4all.golden.network import NetworkProgram, predictions, save_network
from vq4all.model.baselines import kmeans_codebooks, uniform_per_channel
from vq4all.model.checkpoint import load_compressed, save_compressed
from vq4all.model.codebook import build_codebook
from vq4all.model.compress import CompressConfig
from vq4all.model.compress import compress as compress_model
from vq4all.model.datafree import DataFreeConfig
from vq4all.model.export import export_network
from vq4all.model.metrics import outputs
from vq4all.model.user import absolute_spec, is_model_file, load_images, load_model, load_weights
from vq4all.model.vq import frozen_at_nearest
from vq4all.model.workloads.data import DATASETS, Dataset, load_dataset
from vq4all.model.workloads.mobilenet import MOBILENET_ACTIVATION_BITS, load_mobilenet_v2
from vq4all.model.workloads.pictures import CALIBRATION_PHOTOS, photo_crops
from vq4all.model.workloads.zoo import evaluate, trained
from vq4all.sim.rtl.network import TestImages

__all__ = [
    "Baselines",
    "Export",
    "compress_network",
    "export_program",
    "frozen_mobilenet",
    "make_codebook",
    "select_test_images",
    "zoo_baselines",
    "zoo_network",
]


def zoo_network(name: str, data: Dataset, seed: int = 0, progress: bool = True) -> nn.Module:
    """Zoo network ``name`` trained on ``data`` (from the weight cache when trained before)."""
    return trained(name, data, epochs=DATASETS[data.name][1], seed=seed, progress=progress)


def make_codebook(
    path: str | os.PathLike,
    data: Dataset,
    sources: list[str],
    K: int,  # noqa: N803 - the paper's names
    D: int,  # noqa: N803
    seed: int = 0,
    progress: bool = True,
    input_shape: tuple[int, ...] | None = None,
    weighting: str = "equal",
) -> Codebook:
    """The universal codebook of networks ``sources``, saved: zoo networks (trained on
    ``data``) and the user's trained models, each a ``model.py:factory`` or a torch.export or
    TorchScript file (which needs ``input_shape``), shared by ``weighting`` (see
    :func:`vq4all.model.codebook.build_codebook`)."""
    networks = {
        name: load_model(name, input_shape)
        if is_model_file(name)
        else zoo_network(name, data, seed, progress)
        for name in sources
    }
    codebook = build_codebook(networks, K=K, D=D, seed=seed, weighting=weighting)
    make_directory(os.path.dirname(os.path.abspath(path)))
    save_codebook(path, codebook)
    return codebook


def compress_network(
    path: str | os.PathLike,
    codebook: Codebook,
    network: str,
    data: str | None = "digits",
    config: CompressConfig | None = None,
    *,
    weights: str | os.PathLike | None = None,
    held_out: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    keep_unsupported: bool = False,
    data_free: DataFreeConfig | None = None,
    progress: bool = True,
    export_check: bool = True,
    metric: str | None = None,
) -> Result:
    """Network ``network`` compressed against ``codebook`` and saved as a checkpoint that
    rebuilds it: a zoo network (trained on data set ``data``, scored on its test images) or a
    user's ``model.py:factory`` (with ``weights``) on the images of a tensor file or folder
    ``data``, or on images synthesised from its BatchNorm statistics when ``data`` is None
    (``input_shape`` then gives their shape). An interrupted run goes on from
    ``path`` + ``.resume`` (removed when done)."""
    config = config or CompressConfig()
    if is_model_file(network):
        dataset = ""
        if data is None:
            if input_shape is None:
                raise InputError("--data none synthesises images: give --input-shape C,H,W")
            calibration, example = None, torch.zeros(1, *input_shape)
        else:
            images, labels = load_images(data, input_shape, normalize)
            calibration = images if labels is None else [(images, labels)]
            example = images[:1]
        model = load_model(network, tuple(example.shape[1:]))
        if weights is not None:
            load_weights(model, weights)
        network = absolute_spec(network)  # the checkpoint finds it from anywhere
        test = None
        if held_out is not None:
            images, labels = load_images(held_out, tuple(example.shape[1:]), normalize)
            test = images if labels is None else [(images, labels)]
    else:
        if weights is not None:
            raise InputError(f"--weights is for a model file; zoo network {network!r} has its own")
        loaded = load_dataset(data or "digits")
        model = zoo_network(network, loaded, config.seed, progress)
        dataset = loaded.name
        calibration = [(loaded.train_x, loaded.train_y)]
        example = loaded.train_x[:1]
        test = [(loaded.test_x, loaded.test_y)]
    resume = Path(f"{path}.resume")
    result = compress(
        model,
        codebook,
        calibration,
        example,
        held_out=test,
        config=config,
        keep_unsupported=keep_unsupported,
        data_free=data_free,
        resume=resume,
        progress=progress,
        export_check=export_check,
        metric=metric,
    )
    make_directory(os.path.dirname(os.path.abspath(path)))
    kept = tuple(layer.name for layer in result.report.layers if layer.storage != "vq4all")
    save_compressed(
        path,
        result.model,
        network,
        tuple(example.shape[1:]),
        codebook,
        config.candidates,
        dataset,
        result.calibration,
        kept,
    )
    resume.unlink(missing_ok=True)
    return result


@dataclass(frozen=True)
class Export:
    """An exported network program and golden's check of it: its integer accuracy on the test
    images of its data set (percent, NaN for the user's own data) and its agreement with the
    float VQ model (percent) on those test images, or on the calibration images when the data
    set has none here (``checked_on`` says which)."""

    program: NetworkProgram
    network: str
    accuracy: float
    agreement: float
    checked_on: str


def export_program(
    path: str | os.PathLike,
    codebook: Codebook,
    checkpoint: str | os.PathLike,
    activation_bits: int = 8,
) -> Export:
    """The network program of a compressed checkpoint, with ``activation_bits``-wide
    activations calibrated on the images it carries, checked in golden, saved."""
    compressed = load_compressed(checkpoint, codebook)
    program = export_network(
        compressed.model,
        codebook,
        compressed.calibration,
        compressed.dataset,
        activation_bits,
    )
    make_directory(os.path.dirname(os.path.abspath(path)))
    save_network(path, program)
    if compressed.dataset:
        data = load_dataset(compressed.dataset)
        images, labels = data.test_x, data.test_y.numpy()
        checked_on = f"{len(images)} {data.name} test images"
    else:
        images, labels = compressed.calibration, None
        checked_on = f"its {len(images)} calibration images"
    golden = predictions(codebook, program, images)
    float_vq = outputs(compressed.model, images).argmax(1).numpy()
    accuracy = 100 * float((golden == labels).mean()) if labels is not None else math.nan
    return Export(
        program,
        compressed.network or Path(checkpoint).name,
        accuracy,
        100 * float((golden == float_vq).mean()),
        checked_on,
    )


@dataclass(frozen=True)
class Baselines:
    """The designs a zoo network's VQ4ALL program is compared with, on its data set's test
    images (accuracy, percent, weights quantized, float activations as VQ4ALL's own
    ``accuracy``): uniform int8 and int4 per channel, and per-layer VQ with each layer's own
    k-means codebook at VQ4ALL's index bits per weight, post-training (``kmeans``) and, when
    asked, trained with VQ4ALL's candidate assignments, distillation and schedule
    (``perlayer-trained``). ``programs`` are the per-layer VQ network programs written, by
    method."""

    accuracies: dict[str, float]
    programs: dict[str, Path]


def zoo_baselines(
    out_dir: str | os.PathLike,
    codebook: Codebook,
    network: str,
    data: Dataset,
    config: CompressConfig,
    trained_per_layer: bool = False,
    progress: bool = True,
) -> Baselines:
    """The baselines of zoo ``network`` against ``codebook``'s VQ4ALL (see :class:`Baselines`),
    the per-layer VQ programs written into ``out_dir`` as ``<network>-<method>.safetensors``."""
    model = zoo_network(network, data, config.seed, progress)
    accuracies = {}
    for bits in (8, 4):
        quantized, _ = uniform_per_channel(model, bits)
        accuracies[f"uniform{bits}"] = evaluate(quantized, data.test_x, data.test_y)
    codebooks = kmeans_codebooks(
        model, codebook.D, codebook.index_bits / codebook.D, seed=config.seed
    )
    models = {"kmeans": frozen_at_nearest(model, codebooks)}
    if trained_per_layer:
        distilled = compress_model(model, codebooks, data.train_x, data.train_y, config, progress)
        models["perlayer-trained"] = distilled.model
    programs = {}
    for method, quantized in models.items():
        accuracies[method] = evaluate(quantized, data.test_x, data.test_y)
        programs[method] = Path(out_dir) / f"{network}-{method}.safetensors"
        program = export_network(quantized, None, data.calibration(), data.name)
        make_directory(programs[method].parent)
        save_network(programs[method], program)
    return Baselines(accuracies, programs)


def frozen_mobilenet(
    codebook: Codebook | dict[str, Codebook] | int = 256, seed: int = 0
) -> tuple[Codebook | dict[str, Codebook], nn.Module, NetworkProgram]:
    """MobileNetV2 with every sub-vector frozen at its nearest codeword (no distillation, so
    seconds), exported with its 16-bit activations calibrated on two photos: its real layers for
    the RTL, cycle and energy runs, where its accuracy is not the point. ``codebook`` is a
    universal codebook, per-layer codebooks by layer name, or the K of a universal codebook
    built from MobileNetV2's own weights (D=8, ``seed``). Returns the codebook(s), the frozen
    float model and the program."""
    mobilenet = load_mobilenet_v2()
    if isinstance(codebook, int):
        codebook = build_codebook({"mobilenetv2": mobilenet}, K=codebook, D=8, seed=seed)
    frozen = frozen_at_nearest(mobilenet, codebook)
    program = export_network(
        frozen,
        codebook if isinstance(codebook, Codebook) else None,
        photo_crops(CALIBRATION_PHOTOS[:2], 4),
        activation_bits=MOBILENET_ACTIVATION_BITS,
    )
    return codebook, frozen, program


def select_test_images(
    program: NetworkProgram,
    dataset: str | None = None,
    count: int = 50,
    image: int | None = None,
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> TestImages:
    """Test images of ``dataset`` (default: the program's), a data set's name or a tensor
    file or image folder of the user's (see :func:`vq4all.model.user.load_images`, which
    ``normalize`` is passed to; images without labels get label -1): image ``image`` alone, or
    the first ``count``. A data set's test images are never calibration images (see
    :mod:`vq4all.model.workloads.data`).

    Raises ``ValueError`` naming the option for a data set or an image that does not exist.
    """
    name = dataset or program.dataset
    if not name:
        raise InputError("the program names no data set; give --data (a name or a file)")
    if name in DATASETS:
        data = load_dataset(name)
        x, y = data.test_x, data.test_y
    else:
        x, y = load_images(name, tuple(program.input_shape), normalize)
        y = torch.full((len(x),), -1, dtype=torch.long) if y is None else y
    total = len(x)
    if image is not None:
        if not 0 <= image < total:
            raise InputError(f"--image {image}: {name} has test images 0..{total - 1}")
        indices = [image]
    else:
        if not 1 <= count <= total:
            raise InputError(f"--images {count}: {name} has {total} test images")
        indices = list(range(count))
    chosen = torch.from_numpy(np.array(indices))
    return TestImages(name, x[chosen], y[chosen], indices)
