"""The steps of the co-design flow, each a function that the command line and the demo call:
universal codebook, compression, export, and the test images of a network run."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from golden.artifacts import Codebook, make_directory, save_codebook
from golden.network import NetworkProgram, predictions, save_network
from model.checkpoint import load_compressed, save_compressed
from model.codebook import build_codebook
from model.compress import CompressConfig, compress
from model.data import DATASETS, Dataset, load_dataset
from model.export import export_network
from model.zoo import evaluate, trained
from sim.network import TestImages

__all__ = [
    "Compression",
    "Export",
    "compress_network",
    "export_program",
    "make_codebook",
    "select_test_images",
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
) -> Codebook:
    """The universal codebook of zoo networks ``sources`` (trained on ``data``), saved."""
    networks = {name: zoo_network(name, data, seed, progress) for name in sources}
    codebook = build_codebook(networks, K=K, D=D, seed=seed)
    make_directory(os.path.dirname(os.path.abspath(path)))
    save_codebook(path, codebook)
    return codebook


@dataclass(frozen=True)
class Compression:
    """A compressed zoo network: its float and compressed test accuracy (percent), the
    optimizer steps and the fraction of sub-vectors that PNC froze."""

    model: nn.Module
    float_accuracy: float
    accuracy: float
    steps: int
    frozen_by_pnc: float


def compress_network(
    path: str | os.PathLike,
    codebook: Codebook,
    data: Dataset,
    network: str,
    config: CompressConfig | None = None,
    progress: bool = True,
) -> Compression:
    """Zoo network ``network`` compressed against ``codebook`` on ``data``, saved as a
    checkpoint (``config`` defaults to :class:`CompressConfig`'s)."""
    config = config or CompressConfig()
    original = zoo_network(network, data, config.seed, progress)
    result = compress(original, codebook, data, config, progress=progress)
    make_directory(os.path.dirname(os.path.abspath(path)))
    save_compressed(
        path, result.model, network, data.image_shape, codebook, config.candidates, data.name
    )
    return Compression(
        result.model,
        evaluate(original, data.test_x, data.test_y),
        evaluate(result.model, data.test_x, data.test_y),
        result.steps,
        result.frozen_by_pnc,
    )


@dataclass(frozen=True)
class Export:
    """An exported network program, the golden integer accuracy on the test images (percent)
    and its agreement with the float VQ model (percent)."""

    program: NetworkProgram
    network: str
    dataset: str
    accuracy: float
    agreement: float


def export_program(
    path: str | os.PathLike, codebook: Codebook, checkpoint: str | os.PathLike
) -> Export:
    """The network program of a compressed checkpoint, calibrated on training images of the
    data set it was compressed on, checked in golden on its test images, saved."""
    compressed = load_compressed(checkpoint, codebook)
    data = load_dataset(compressed.dataset)
    program = export_network(compressed.model, codebook, data.calibration(), data.name)
    make_directory(os.path.dirname(os.path.abspath(path)))
    save_network(path, program)
    golden = predictions(codebook, program, data.test_x)
    with torch.no_grad():
        float_vq = compressed.model(data.test_x).argmax(1).numpy()
    return Export(
        program,
        compressed.network,
        data.name,
        100 * float((golden == data.test_y.numpy()).mean()),
        100 * float((golden == float_vq).mean()),
    )


def select_test_images(
    program: NetworkProgram, dataset: str | None = None, count: int = 50, image: int | None = None
) -> TestImages:
    """Test images of ``dataset`` (default: the program's): image ``image`` alone, or the first
    ``count``. They are never calibration images (see :mod:`model.data`).

    Raises ``ValueError`` naming the option for a data set or an image that does not exist.
    """
    name = dataset or program.dataset
    if not name:
        raise ValueError("the program names no data set; give --data")
    data = load_dataset(name)
    total = len(data.test_x)
    if image is not None:
        if not 0 <= image < total:
            raise ValueError(f"--image {image}: {name} has test images 0..{total - 1}")
        indices = [image]
    else:
        if not 1 <= count <= total:
            raise ValueError(f"--images {count}: {name} has {total} test images")
        indices = list(range(count))
    chosen = torch.from_numpy(np.array(indices))
    return TestImages(name, data.test_x[chosen], data.test_y[chosen], indices)
