"""Compression of a trained network against a universal codebook: candidate assignments trained
with the task loss, block-wise knowledge distillation and a ratio regulariser, frozen
progressively (PNC) until the network holds hard indices only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from golden.artifacts import Codebook
from model.data import Dataset
from model.fold import fold_batchnorm
from model.vq import prepare_vq, vq_layers

__all__ = ["CompressConfig", "Compressed", "compress"]


@dataclass(frozen=True)
class CompressConfig:
    """The method's open numbers, with their defaults.

    ``candidates``: nearest codewords per sub-vector (n). ``threshold``: PNC freezes a
    sub-vector when its largest ratio exceeds it. ``epochs``: training stops when every
    sub-vector is frozen, or after this many epochs, when the stragglers are frozen to their
    largest ratio. The loss is ``task + kd_weight * mean_blocks MSE(teacher, student) +
    ratio_weight * mean(r * (1 - r))``, the task loss being cross-entropy against the labels
    of ``data``; a block is a child of the network's ``nn.Sequential`` (see ``_blocks``).
    Adam trains the logits with ``lr`` and the biases with ``bias_lr``. The ratios are
    ``softmax(logits / T)`` with ``T`` multiplied by
    ``temperature_decay`` after every epoch: the regulariser's gradient vanishes as a ratio
    nears 1, and without the annealing ratios settle just under the threshold, noise against
    regulariser, so that nothing freezes before the end.
    """

    candidates: int = 8
    threshold: float = 0.9999
    epochs: int = 30
    kd_weight: float = 1.0
    ratio_weight: float = 1.0
    temperature_decay: float = 0.85

    lr: float = 0.2
    bias_lr: float = 1e-3
    batch: int = 64
    seed: int = 0


@dataclass(frozen=True)
class Compressed:
    """The compressed network, the epochs it took, and the fraction of sub-vectors that PNC
    froze (the rest were stragglers, frozen to their largest ratio after the last epoch)."""

    model: nn.Module
    epochs: int
    frozen_by_pnc: float


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks whose outputs are distilled: the children of an ``nn.Sequential`` network, or
    of its ``features`` ``nn.Sequential`` (as in MobileNetV2); the final output always counts."""
    if isinstance(model, nn.Sequential):
        return list(model.children())[:-1]
    features = getattr(model, "features", None)
    return list(features.children()) if isinstance(features, nn.Sequential) else []


def _block_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each block's output, then the network's, from one ordinary forward pass."""
    outputs: list[torch.Tensor] = []
    hooks = [
        block.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for block in _blocks(model)
    ]
    try:
        outputs.append(model(x))
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def compress(
    model: nn.Module,
    codebook: Codebook,
    data: Dataset,
    config: CompressConfig = CompressConfig(),
    progress: bool = True,
) -> Compressed:
    """The VQ4ALL-compressed copy of ``model`` (every sub-vector frozen to one codeword).

    Distillation uses the training images only. Raises ``UnsupportedLayerError`` listing the
    layers that cannot be compressed and ``ValueError`` for NaN/inf weights.
    """
    torch.manual_seed(config.seed)
    teacher = fold_batchnorm(model).eval()
    student = prepare_vq(teacher, codebook, config.candidates).train()
    layers = list(vq_layers(student).values())
    logits = [layer.logits for layer in layers]
    others = [p for p in student.parameters() if all(p is not q for q in logits)]
    optimizer = torch.optim.Adam(
        [{"params": logits}, {"params": others, "lr": config.bias_lr}], lr=config.lr
    )
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(range(config.epochs), desc="compress", disable=not progress, leave=False)
    epochs, frozen = 0, 0.0
    for _ in bar:
        epochs += 1
        order = torch.randperm(len(data.train_x), generator=generator)
        for start in range(0, len(order), config.batch):
            take = order[start : start + config.batch]
            x, y = data.train_x[take], data.train_y[take]
            with torch.no_grad():
                targets = _block_outputs(teacher, x)
            outputs = _block_outputs(student, x)
            task = nn.functional.cross_entropy(outputs[-1], y)
            distill = torch.stack(
                [nn.functional.mse_loss(o, t) for o, t in zip(outputs, targets, strict=True)]
            ).mean()
            ratio = torch.stack([layer.regularizer() for layer in layers]).mean()
            loss = task + config.kd_weight * distill + config.ratio_weight * ratio
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for layer in layers:
                layer.freeze_confident(config.threshold)
        frozen = sum(int(layer.frozen.sum()) for layer in layers) / sum(
            layer.frozen.numel() for layer in layers
        )
        bar.set_postfix(frozen=f"{frozen:.3f}", loss=f"{loss.item():.3f}")
        if frozen == 1.0:
            break
        for layer in layers:
            layer.temperature.mul_(config.temperature_decay)
    for layer in layers:
        layer.freeze_all()
    return Compressed(student.eval(), epochs, frozen)
