"""Calibration data from the model itself, for users who have none: images optimised so that
the batch statistics at every BatchNorm2d's input match its running statistics (the ZeroQ
recipe, with DeepInversion's total-variation and L2 image priors).

The images serve both distillation and the export's activation scales. They are cached by
model hash (weights, buffers, shape, count, steps and seed) under the zoo's weight cache, so
that a second run costs nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import nn
from tqdm import tqdm

from vq4all.golden.fileio import make_directory, write_atomically
from vq4all.model.graph import UnsupportedLayerError
from vq4all.model.workloads.cache import cache_dir

__all__ = ["DataFreeConfig", "bn_statistics_images"]


@dataclass(frozen=True)
class DataFreeConfig:
    """How many images to synthesise, and how: Adam with ``lr`` for ``steps`` steps on each
    batch of ``batch`` images; the priors' weights ``tv_weight`` (total variation) and
    ``l2_weight``."""

    count: int = 64
    steps: int = 200
    lr: float = 0.1
    batch: int = 32
    tv_weight: float = 1e-4
    l2_weight: float = 1e-5
    seed: int = 0


def _cache_key(model: nn.Module, shape: tuple[int, ...], config: DataFreeConfig) -> str:
    digest = hashlib.sha256(f"{tuple(shape)} {config!r}".encode())
    digest.update(Path(__file__).read_bytes())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy())
    return digest.hexdigest()[:16]


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., 1:] - x[..., :-1]).abs().mean()


def bn_statistics_images(
    model: nn.Module,
    shape: tuple[int, ...],
    config: DataFreeConfig | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """``config.count`` images of ``shape`` (``[C, H, W]``) synthesised from ``model``'s
    BatchNorm2d running statistics, from the cache when made before.

    Raises ``UnsupportedLayerError`` for a model without BatchNorm2d: it holds no statistics
    to match, and calibration data must be given.
    """
    config = config or DataFreeConfig()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        raise UnsupportedLayerError(
            f"{type(model).__name__} has no BatchNorm2d whose statistics could synthesise "
            "calibration images: give calibration data"
        )
    path = cache_dir() / f"datafree-{_cache_key(model, shape, config)}.safetensors"
    if path.exists():
        return safetensors.torch.load_file(path)["images"]
    model.eval()
    losses: list[torch.Tensor] = []

    def match(norm: nn.BatchNorm2d, args: tuple, _output) -> None:
        x = args[0]
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        losses.append(
            (mean - norm.running_mean).norm() + (var.sqrt() - norm.running_var.sqrt()).norm()
        )

    hooks = [norm.register_forward_hook(match) for norm in norms]
    generator = torch.Generator().manual_seed(config.seed)
    images = []
    total = -(-config.count // config.batch) * config.steps
    bar = tqdm(total=total, desc="BN-statistics images", disable=not progress, leave=False)
    try:
        with bar:
            for start in range(0, config.count, config.batch):
                size = min(config.batch, config.count - start)
                x = torch.randn(size, *shape, generator=generator).requires_grad_(True)
                optimizer = torch.optim.Adam([x], lr=config.lr)
                for _ in range(config.steps):
                    losses.clear()
                    model(x)
                    loss = (
                        torch.stack(losses).sum()
                        + config.tv_weight * _total_variation(x)
                        + config.l2_weight * x.pow(2).mean()
                    )
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    bar.set_postfix(loss=f"{loss.item():.3f}")
                    bar.update()
                images.append(x.detach())
    finally:
        for hook in hooks:
            hook.remove()
    result = torch.cat(images)
    payload = safetensors.torch.save({"images": result.contiguous()})
    write_atomically(make_directory(path.parent) / path.name, payload)
    return result
