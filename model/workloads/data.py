"""Real data that works offline: sklearn digits (tests, demo) and Fashion-MNIST (benchmarks).

Every data set is split three ways, disjointly: ``train`` (training and distillation),
``calib`` (activation-scale calibration, a slice of the training images) and ``test``
(evaluation only). Calibration and distillation data never overlap the evaluation data.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vq4all.golden.errors import InputError

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "Dataset",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """Images ``[B, 1, H, W]`` (float32, roughly zero-mean) and labels (int64), split three ways."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int = 10

    def calibration(self, count: int = 256) -> torch.Tensor:
        """The first ``count`` training images: never evaluation data."""
        return self.train_x[:count]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])


def _split(
    name: str, images: np.ndarray, labels: np.ndarray, test_count: int, seed: int
) -> Dataset:
    order = np.random.default_rng(seed).permutation(len(images))
    images, labels = images[order], labels[order]
    x = torch.from_numpy(images.astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(name, x[test_count:], y[test_count:], x[:test_count], y[:test_count])


def load_digits(seed: int = 0) -> Dataset:
    """sklearn's 1,797 8x8 digits (they ship in the wheel): 497 test images, the rest train."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = (digits.images[:, None] / 16.0 - 0.5) / 0.5
    return _split("digits", images, digits.target, test_count=497, seed=seed)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion_mnist(directory: Path = FASHION_MNIST_DIR) -> Dataset:
    """The full Fashion-MNIST (60k train, 10k test) from Debian's ``dataset-fashion-mnist``.

    Raises ``FileNotFoundError`` saying how to install it when it is missing.
    """
    names = {
        "train_x": "train-images-idx3-ubyte.gz",
        "train_y": "train-labels-idx1-ubyte.gz",
        "test_x": "t10k-images-idx3-ubyte.gz",
        "test_y": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [name for name in names.values() if not (directory / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"{directory}: Fashion-MNIST is missing ({', '.join(missing)}); install it with "
            "'apt-get install -y dataset-fashion-mnist' (make bench-model does)"
        )
    arrays = {key: _read_idx(directory / name) for key, name in names.items()}

    def images(raw: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((raw[:, None].astype(np.float32) / 255.0) - 0.5) / 0.5)

    return Dataset(
        "fashion-mnist",
        images(arrays["train_x"]),
        torch.from_numpy(arrays["train_y"].astype(np.int64)),
        images(arrays["test_x"]),
        torch.from_numpy(arrays["test_y"].astype(np.int64)),
    )


#: Data sets by name, with the float training epochs that their zoo networks get.
DATASETS = {"digits": (load_digits, 15), "fashion-mnist": (load_fashion_mnist, 6)}


def load_dataset(name: str) -> Dataset:
    """Data set ``name`` (see :data:`DATASETS`); raises ``ValueError`` for an unknown one."""
    if name not in DATASETS:
        raise InputError(f"no data set {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name][0]()
