"""Compression of a trained network against a universal codebook: candidate assignments trained
with the task loss, block-wise knowledge distillation and a ratio regulariser, frozen
progressively (PNC) until the network holds hard indices only.

Two schedules share that loss and PNC:

``joint``
    The paper's: every layer trains at once, end to end, for up to ``epochs`` passes over the
    data. Right when the distillation data are plentiful (the zoo's thousands of images).
``blockwise``
    One block at a time, in order, for ``block_steps`` steps each: the block's layers learn to
    reproduce the float block's output from the input that the already-compressed blocks
    before it produce, so that each block also corrects the error it inherits. Then the
    layers outside every block (a classifier head) train on the network's output. Each step
    runs one block, on inputs captured once, which makes many more steps affordable on a large
    network with few distillation images (MobileNetV2 on photo crops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from golden.artifacts import Codebook
from model.data import Dataset
from model.fold import fold_batchnorm
from model.vq import VQWeight, prepare_vq, vq_layers

__all__ = ["SCHEDULES", "CompressConfig", "Compressed", "compress"]

SCHEDULES = ("joint", "blockwise")


@dataclass(frozen=True)
class CompressConfig:
    """The method's open numbers, with their defaults.

    ``candidates``: nearest codewords per sub-vector (n). ``threshold``: PNC freezes a
    sub-vector when its largest ratio exceeds it. ``schedule``: ``joint`` or ``blockwise``
    (see the module docstring). The ``joint`` schedule stops when every sub-vector is frozen,
    or after ``epochs`` epochs; a ``blockwise`` stage after ``block_steps`` steps. The
    stragglers are then frozen to their largest ratio.

    The loss is ``task + kd_weight * distillation + ratio_weight * mean(r * (1 - r))``, the
    task loss being cross-entropy against the labels of ``data``. Distillation is, jointly, the
    mean over blocks of ``MSE(teacher, student)`` (a block is a child of the network's
    ``nn.Sequential``, see ``_blocks``, and the network's output is one more); blockwise, the
    stage's block output MSE relative to the teacher's mean square (the task loss joins only
    the last stage, on the network output).

    Adam trains the logits with ``lr``, and the biases and per-channel gains with ``bias_lr``.
    The ratios are ``softmax(logits / T)``; ``T`` is multiplied by ``temperature_decay`` after
    every joint epoch, and falls as far over each blockwise stage. The regulariser's gradient
    vanishes as a ratio nears 1: without the annealing ratios settle just under the
    threshold, noise against regulariser, so that nothing freezes before the end.
    """

    candidates: int = 8
    threshold: float = 0.9999
    schedule: str = "joint"
    epochs: int = 30
    block_steps: int = 300
    kd_weight: float = 1.0
    ratio_weight: float = 1.0
    temperature_decay: float = 0.85

    lr: float = 0.2
    bias_lr: float = 1e-3
    batch: int = 64
    seed: int = 0


@dataclass(frozen=True)
class Compressed:
    """The compressed network, the optimizer steps it took, and the fraction of sub-vectors
    that PNC froze (the rest were stragglers, frozen to their largest ratio)."""

    model: nn.Module
    steps: int
    frozen_by_pnc: float


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks whose outputs are distilled: the children of an ``nn.Sequential`` network
    but the last, or of its ``features`` ``nn.Sequential`` (as in MobileNetV2); the network's
    output always counts too."""
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


class _StopForwardError(Exception):
    """Stops a forward pass once the block of interest has given what is wanted of it."""


@torch.no_grad()
def _at_block(model: nn.Module, block: nn.Module, images: torch.Tensor, batch: int, output: bool):
    """The input (or the output) of ``block`` for every image, running ``model`` only as far as
    it needs."""
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, args: tuple, result=None) -> None:
        captured.append(result if output else args[0])
        raise _StopForwardError

    hook = (block.register_forward_hook if output else block.register_forward_pre_hook)(capture)
    try:
        for start in range(0, len(images), batch):
            try:
                model(images[start : start + batch])
            except _StopForwardError:
                continue
            raise ValueError(f"block {type(block).__name__} is not reached by the forward pass")
    finally:
        hook.remove()
    return torch.cat(captured)


def _relative_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(output, target) / target.pow(2).mean().clamp_min(1e-12)


def _regularizer(layers: list[VQWeight]) -> torch.Tensor:
    return torch.stack([layer.regularizer() for layer in layers]).mean()


def _frozen_fraction(layers: list[VQWeight]) -> float:
    return sum(int(layer.frozen.sum()) for layer in layers) / sum(
        layer.frozen.numel() for layer in layers
    )


def _train(
    network: nn.Module,
    module: nn.Module,
    batches: Iterator[torch.Tensor],
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    config: CompressConfig,
    bar: tqdm,
    end_of_epoch: Callable[[int], bool],
) -> int:
    """Train the unfrozen assignments (and biases, gains) of the VQ layers of ``module`` (part
    of ``network``, whose frozen fraction the bar shows) on ``loss_of(batch indices)`` plus the
    ratio regulariser, with PNC after every step, until every sub-vector is frozen or the
    batches run out; returns the steps taken. ``end_of_epoch(step)`` says when to anneal the
    temperature."""
    layers = list(vq_layers(module).values())
    logits = [layer.logits for layer in layers]
    others = [p for p in module.parameters() if p.requires_grad and all(p is not q for q in logits)]
    optimizer = torch.optim.Adam(
        [{"params": logits}, {"params": others, "lr": config.bias_lr}], lr=config.lr
    )
    steps = 0
    for take in batches:
        steps += 1
        loss = loss_of(take) + config.ratio_weight * _regularizer(layers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for layer in layers:
            layer.freeze_confident(config.threshold)
        if end_of_epoch(steps):
            frozen = _frozen_fraction(list(vq_layers(network).values()))
            bar.set_postfix(frozen=f"{frozen:.3f}", loss=f"{loss.item():.3f}")
            bar.update()
            if _frozen_fraction(layers) == 1.0:
                break
            for layer in layers:
                layer.temperature.mul_(config.temperature_decay)
    return steps


def _freeze_stragglers(layers: list[VQWeight]) -> int:
    """Freeze what PNC left of ``layers`` to their largest ratios; returns the sub-vectors that
    PNC had frozen."""
    frozen = 0
    for layer in layers:
        frozen += int(layer.frozen.sum())
        layer.freeze_all()
    return frozen


def _joint(teacher, student, data: Dataset, config: CompressConfig, bar) -> tuple[int, int]:
    """Every layer at once; returns the steps taken and the sub-vectors that PNC froze."""
    per_epoch = -(-len(data.train_x) // config.batch)
    generator = torch.Generator().manual_seed(config.seed)

    def batches() -> Iterator[torch.Tensor]:
        for _ in range(config.epochs):
            yield from torch.randperm(len(data.train_x), generator=generator).split(config.batch)

    def loss_of(take: torch.Tensor) -> torch.Tensor:
        x, y = data.train_x[take], data.train_y[take]
        with torch.no_grad():
            targets = _block_outputs(teacher, x)
        outputs = _block_outputs(student, x)
        distill = torch.stack(
            [nn.functional.mse_loss(o, t) for o, t in zip(outputs, targets, strict=True)]
        ).mean()
        return nn.functional.cross_entropy(outputs[-1], y) + config.kd_weight * distill

    bar.reset(total=config.epochs)
    steps = _train(
        student, student, batches(), loss_of, config, bar, lambda step: step % per_epoch == 0
    )
    return steps, _freeze_stragglers(list(vq_layers(student).values()))


def _blockwise(teacher, student, data: Dataset, config: CompressConfig, bar) -> tuple[int, int]:
    """One block at a time, then the rest; returns the steps taken and the sub-vectors that
    PNC froze."""
    images, count = data.train_x, len(data.train_x)
    generator = torch.Generator().manual_seed(config.seed)
    # The temperature falls over a stage's steps as far as over ``epochs`` joint epochs.
    anneal_every = max(1, config.block_steps // config.epochs)

    def batches() -> Iterator[torch.Tensor]:
        for _ in range(config.block_steps):
            yield torch.randint(count, (config.batch,), generator=generator)

    def anneal(step: int) -> bool:
        return step % anneal_every == 0

    stages = [
        (taught, learner)
        for taught, learner in zip(_blocks(teacher), _blocks(student), strict=True)
        if vq_layers(learner)
    ]
    bar.reset(total=(len(stages) + 1) * (config.block_steps // anneal_every))
    steps = by_pnc = 0
    for taught, learner in stages:
        inputs = _at_block(student, learner, images, 4 * config.batch, output=False)
        targets = _at_block(teacher, taught, images, 4 * config.batch, output=True)
        learner.train()

        def loss_of(take: torch.Tensor, learner=learner, inputs=inputs, targets=targets):
            return config.kd_weight * _relative_mse(learner(inputs[take]), targets[take])

        steps += _train(student, learner, batches(), loss_of, config, bar, anneal)
        by_pnc += _freeze_stragglers(list(vq_layers(learner).values()))
        learner.eval().requires_grad_(False)
    # The layers outside every block (all of them in a network without blocks) learn from the
    # network's output.
    staged = {id(layer) for _, learner in stages for layer in vq_layers(learner).values()}
    rest = [layer for layer in vq_layers(student).values() if id(layer) not in staged]
    if rest:
        with torch.no_grad():
            logits = torch.cat([teacher(part) for part in images.split(4 * config.batch)])

        def loss_of(take: torch.Tensor) -> torch.Tensor:
            output = student(images[take])
            task = nn.functional.cross_entropy(output, data.train_y[take])
            return task + config.kd_weight * _relative_mse(output, logits[take])

        steps += _train(student, student, batches(), loss_of, config, bar, anneal)
        by_pnc += _freeze_stragglers(rest)
    student.requires_grad_(True)
    return steps, by_pnc


def compress(
    model: nn.Module,
    codebook: Codebook,
    data: Dataset,
    config: CompressConfig = CompressConfig(),
    progress: bool = True,
) -> Compressed:
    """The VQ4ALL-compressed copy of ``model`` (every sub-vector frozen to one codeword).

    Distillation uses the training images only. Raises ``UnsupportedLayerError`` listing the
    layers that cannot be compressed and ``ValueError`` for NaN/inf weights or an unknown
    schedule.
    """
    if config.schedule not in SCHEDULES:
        raise ValueError(f"schedule {config.schedule!r} is not one of {', '.join(SCHEDULES)}")
    torch.manual_seed(config.seed)
    teacher = fold_batchnorm(model).eval()
    student = prepare_vq(teacher, codebook, config.candidates).train()
    subvectors = sum(layer.frozen.numel() for layer in vq_layers(student).values())
    train = _joint if config.schedule == "joint" else _blockwise
    with tqdm(desc=f"compress ({config.schedule})", disable=not progress, leave=False) as bar:
        steps, by_pnc = train(teacher, student, data, config, bar)
    return Compressed(student.eval(), steps, by_pnc / subvectors)
