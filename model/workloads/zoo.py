"""The project's small zoo of networks, and their float training with a weight cache.

Every network is an ``nn.Sequential`` of the modules the exporter understands (Conv2d, Linear,
BatchNorm2d, ReLU, MaxPool2d, Flatten and :class:`Residual`), so that it maps one to one onto a
network program.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import safetensors.torch
import torch
from torch import nn
from tqdm import tqdm

from vq4all.golden.errors import InputError
from vq4all.golden.fileio import make_directory, write_atomically
from vq4all.model.workloads.cache import cache_dir
from vq4all.model.workloads.data import Dataset

__all__ = ["ZOO", "Residual", "build", "evaluate", "train_float", "trained"]


class Residual(nn.Module):
    """``body(x) + x``: the skip connection of a residual block."""

    def __init__(self, *body: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


def _conv(cin: int, cout: int, kernel: int = 3, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


def mlp(shape: tuple[int, int, int], classes: int) -> nn.Sequential:
    inputs = shape[0] * shape[1] * shape[2]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(inputs, 128),
        nn.ReLU(),
        nn.Linear(128, 64),
        nn.ReLU(),
        nn.Linear(64, classes),
    )


def _head(channels: int, shape: tuple[int, int, int], classes: int) -> list[nn.Module]:
    # One 2x2 pool for 8x8 digits, two for 28x28 images.
    pools = 1 if shape[1] < 16 else 2
    side = shape[1] // 2**pools
    return [*([nn.MaxPool2d(2)] * pools), nn.Flatten(), nn.Linear(channels * side * side, classes)]


def cnn(shape: tuple[int, int, int], classes: int) -> nn.Sequential:
    return nn.Sequential(
        *_conv(shape[0], 16), nn.ReLU(), *_conv(16, 32), nn.ReLU(), *_head(32, shape, classes)
    )


def residual_cnn(shape: tuple[int, int, int], classes: int) -> nn.Sequential:
    return nn.Sequential(
        *_conv(shape[0], 24),
        nn.ReLU(),
        Residual(*_conv(24, 24), nn.ReLU(), *_conv(24, 24)),
        nn.ReLU(),
        *_head(24, shape, classes),
    )


def separable_cnn(shape: tuple[int, int, int], classes: int) -> nn.Sequential:
    return nn.Sequential(
        *_conv(shape[0], 16),
        nn.ReLU(),
        *_conv(16, 16, groups=16),
        nn.ReLU(),
        *_conv(16, 32, kernel=1),
        nn.ReLU(),
        *_head(32, shape, classes),
    )


ZOO: dict[str, Callable[[tuple[int, int, int], int], nn.Sequential]] = {
    "mlp": mlp,
    "cnn": cnn,
    "rescnn": residual_cnn,
    "dscnn": separable_cnn,
}


def build(
    name: str, shape: tuple[int, int, int], classes: int = 10, seed: int = 0
) -> nn.Sequential:
    """A freshly initialised zoo network; raises ``ValueError`` naming the known ones."""
    if name not in ZOO:
        raise InputError(f"no network {name!r} in the zoo; known: {', '.join(ZOO)}")
    torch.manual_seed(seed)
    return ZOO[name](shape, classes)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = sum(
        int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
        for i in range(0, len(x), batch)
    )
    return 100.0 * correct / len(x)


def train_float(
    model: nn.Module,
    data: Dataset,
    epochs: int,
    seed: int = 0,
    lr: float = 3e-3,
    batch: int = 64,
    progress: bool = True,
) -> nn.Module:
    """Train with Adam and cross-entropy on ``data.train_*``, deterministically for a seed."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)
    bar = tqdm(range(epochs), desc=f"train {data.name}", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        order = torch.randperm(len(data.train_x), generator=generator)
        for start in range(0, len(order), batch):
            take = order[start : start + batch]
            loss = nn.functional.cross_entropy(model(data.train_x[take]), data.train_y[take])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def trained(
    name: str, data: Dataset, epochs: int, seed: int = 0, progress: bool = True
) -> nn.Sequential:
    """Zoo network ``name`` trained on ``data``, from the cache when it was trained before."""
    model = build(name, data.image_shape, data.classes, seed)
    source = Path(__file__).read_bytes() + Path(__file__).with_name("data.py").read_bytes()
    key = hashlib.sha256(source + f"{name} {data.name} {epochs} {seed}".encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{data.name}-{key}.safetensors"
    if path.exists():
        model.load_state_dict(safetensors.torch.load_file(path), strict=True)
        return model.eval()
    train_float(model, data, epochs, seed, progress=progress)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    write_atomically(make_directory(path.parent) / path.name, safetensors.torch.save(state))
    return model
