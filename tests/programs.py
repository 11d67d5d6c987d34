"""Small network programs with random weights, for tests that need a program quickly, and a
small model that is not an nn.Sequential."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch import nn

from vq4all.golden.codebook import save_codebook
from vq4all.golden.network import (
    FlattenOp,
    LayerOp,
    NetworkProgram,
    per_layer_sha256,
    save_network,
)
from vq4all.golden.synthetic import random_codebook, random_layer

__all__ = ["Branchy", "write_digits_program", "write_model_file"]


def write_digits_program(
    directory: Path, seed: int, name: str = "network", per_layer: tuple[int, int] | None = None
) -> Path:
    """A network program for 8x8 digits (flatten, 64 -> 24 ReLU -> 10) with random weights,
    saved as ``{name}.safetensors`` beside its K=256 codebook (of ``seed``); returns its
    path. With ``per_layer`` sizes, a per-layer VQ program of the same layers instead, each on
    its own codebook of that many codewords."""
    codebook = random_codebook(256, 8, seed)
    own = [random_codebook(k, 8, seed + i) for i, k in enumerate(per_layer or ())]
    rng = np.random.default_rng(seed)
    hidden = dataclasses.replace(
        random_layer(own[0] if own else codebook, 24, 64, True, rng),
        input_scale=0.01,
        output_scale=0.1,
    )
    logits = dataclasses.replace(
        random_layer(own[1] if own else codebook, 10, 24, False, rng),
        input_scale=0.1,
        output_scale=0.2,
    )
    graph = [FlattenOp(input=0), LayerOp(1, 0, "hidden"), LayerOp(2, 1, "logits")]
    sha256 = per_layer_sha256(own) if own else codebook.sha256
    layers = [hidden, logits]
    program = NetworkProgram(sha256, 0.01, (1, 8, 8), layers, graph, "digits", codebooks=tuple(own))
    if not own:
        save_codebook(directory / "codebook.safetensors", codebook)
    save_network(directory / f"{name}.safetensors", program)
    return directory / f"{name}.safetensors"


class Branchy(nn.Module):
    """Not an nn.Sequential: a BatchNorm, a ReLU6, two branches joined by an add, a residual,
    global average pooling, x.view and dropout in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.norm(self.stem(x)))
        y = torch.relu(self.left(x) + self.right(x))
        y = F.adaptive_avg_pool2d(self.pool(y + x), 1)
        return self.head(self.drop(y.view(y.size(0), -1)))


def write_model_file(path: Path, source: str, factory: str) -> str:
    """A user's model file at ``path``: torch's imports, ``source`` (a module class) and a
    ``make()`` that returns ``factory()``; returns the ``path:make`` that names it."""
    path.write_text(
        "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
        f"{source}\n\ndef make():\n    return {factory}()\n"
    )
    return f"{path}:make"


class SameConv2d(nn.Conv2d):
    """TensorFlow's "SAME" padding, as EfficientNet ports write it: a Conv2d subclass with its
    own ``forward`` that pads ``(k - 1) // 2`` before and the rest after (asymmetric)."""

    def forward(self, x):
        padding = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
            padding += [total // 2, total - total // 2]
        x = F.pad(x, padding)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class EfficientBlock(nn.Module):
    """An EfficientNet-style network on 8x8 digits: SAME-padding convolutions (one stride 2,
    asymmetric), a depthwise one, squeeze-and-excitation, swish and hard-swish, and a
    BatchNorm after its activation."""

    def __init__(self):
        super().__init__()
        self.stem, self.stem_norm = SameConv2d(1, 16, 3, stride=2), nn.BatchNorm2d(16)
        self.depthwise = SameConv2d(16, 16, 3, groups=16)
        self.depthwise_norm = nn.BatchNorm2d(16)
        self.reduce, self.expand = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
        self.project, self.after = nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16)
        self.head = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = F.silu(self.stem_norm(self.stem(x)))
        x = F.hardswish(self.depthwise_norm(self.depthwise(x)))
        excitation = torch.sigmoid(self.expand(F.silu(self.reduce(x.mean((2, 3), keepdim=True)))))
        x = self.after(F.relu(self.project(x * excitation)))  # BatchNorm after the activation
        return self.head(torch.flatten(x, 1))


class AudioNet(nn.Module):
    """A 1-D audio-style CNN on digits read as 8 channels of 6 time steps: indexing, a Conv1d,
    a BatchNorm after its ReLU, a (3 x 1) Conv2d, control flow on a Python argument, and the
    batch size read with ``x.size(0)``."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv1d(8, 16, 3, padding=1), nn.BatchNorm1d(16)
        self.tall = nn.Conv2d(16, 16, (3, 1))
        self.head = nn.Linear(16 * 4, 10)

    def forward(self, x, embed: bool = False):
        batch = x.size(0)
        # Rows as channels, the columns' inner six as time; a BatchNorm after the ReLU.
        x = self.norm(F.relu(self.conv(x[:, 0, :, 1:7])))
        x = F.relu(self.tall(x[:, :, :, None]))
        if embed:
            return x
        return self.head(x.reshape(batch, -1))
