"""Compression of a trained network against a universal codebook: candidate assignments trained
with the task loss, block-wise knowledge distillation and a ratio regulariser, frozen
progressively (PNC) until the network holds hard indices only.

Two schedules share that loss and PNC:

``joint``
    The paper's: every layer trains at once, end to end, for up to ``epochs`` passes over the
    data. Right when the distillation data are plentiful (the zoo's thousands of images).
``blockwise``
    One stage at a time, in order, for ``block_steps`` steps each: the stage's layers learn to
    reproduce the float stage's output from the input that the already-compressed stages
    before it produce, so that each stage also corrects the error it inherits; the last
    stage (the classifier) also learns the task loss. Each step runs one stage, on inputs
    computed once, which makes many more steps affordable on a large network with few
    distillation images (MobileNetV2). Then, for ``tune_steps`` steps, the whole network's
    per-channel gains and biases (not its indices) learn the float model's output
    distribution end to end (KL divergence): the stages' small errors, each fitted alone,
    add up, and only the network's output shows how.

The stages come from the model's traced dataflow (:func:`vq4all.model.graph.stages`): a residual
block from its branch to its join is one stage, a plain layer with its activation another, whatever
the model's Python structure.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.golden.fileio import write_atomically
from vq4all.model.graph import fold_batchnorm, stages, trace
from vq4all.model.vq import VQ_LAYERS, VQWeight, prepare_vq, vq_layers

__all__ = ["SCHEDULES", "CompressConfig", "Compressed", "compress"]

SCHEDULES = ("joint", "blockwise")


@dataclass(frozen=True)
class CompressConfig:
    """The method's open numbers, with their defaults.

    ``candidates``: nearest codewords per sub-vector (n). ``threshold``: PNC freezes a
    sub-vector when its largest ratio exceeds it. ``schedule``: ``joint`` or ``blockwise``
    (see the module docstring). The ``joint`` schedule stops when every sub-vector is frozen,
    or after ``epochs`` epochs; a ``blockwise`` stage after ``block_steps`` steps (with
    ``steps_by_size``, a stage with more sub-vectors than the mean stage takes as many times
    more). The stragglers are then frozen to their largest ratio.

    The loss is ``task + kd_weight * distillation + ratio_weight * mean(r * (1 - r))``, the
    task loss being cross-entropy against the distillation labels (blockwise with
    ``soft_targets``, the KL divergence from the float model's output, whose near ties a
    label hides). Distillation is, jointly,
    the mean over stages of ``MSE(teacher, student)`` of their outputs (the last being the
    network's); blockwise, the stage's output MSE relative to the teacher's mean square (the
    task loss joins only the last stage, on the network output).

    A ``blockwise`` stage distils on as many of the images (the first ones) as its values fit in
    ``cache_gib`` GiB: the float and compressed network's inputs and outputs of the stage, for
    each image. The early stages, whose values are large, see fewer images (each has
    many positions to learn from), the later ones all of them; memory stays bounded however
    many images there are.

    Adam trains the logits with ``lr``, and the biases and per-channel gains with ``bias_lr``
    (``tune_lr`` when they are tuned end to end after the blockwise stages).
    The ratios are ``softmax(logits / T)``; ``T`` is multiplied by ``temperature_decay`` after
    every joint epoch, and falls as far over each blockwise stage. The regulariser's gradient
    vanishes as a ratio nears 1: without the annealing ratios settle just under the
    threshold, noise against regulariser, so that nothing freezes before the end.
    """

    candidates: int = field(default=8, metadata={"help": "candidates per sub-vector"})
    threshold: float = field(
        default=0.9999, metadata={"help": "PNC freezes a sub-vector whose ratio exceeds it"}
    )
    schedule: str = field(
        default="joint",
        metadata={
            "help": "train every layer at once (joint) or one stage at a time (blockwise)",
            "choices": SCHEDULES,
        },
    )
    epochs: int = field(default=30, metadata={"help": "most epochs of joint assignment training"})
    block_steps: int = field(
        default=300, metadata={"help": "steps per stage of blockwise training"}
    )
    steps_by_size: bool = field(
        default=False,
        metadata={
            "help": "blockwise: a stage with more sub-vectors than the mean stage takes as many "
            "times --block-steps"
        },
    )
    soft_targets: bool = field(
        default=False,
        metadata={
            "help": "blockwise: the last stage's task loss is the KL divergence from the float "
            "model's output, not cross-entropy against the labels"
        },
    )
    tune_steps: int = field(
        default=0,
        metadata={
            "help": "blockwise: steps that then tune gains and biases end to end on the "
            "output's KL divergence"
        },
    )
    kd_weight: float = field(default=1.0, metadata={"help": "weight of the distillation loss"})
    ratio_weight: float = field(
        default=1.0, metadata={"help": "weight of the ratio regulariser; lower freezes later"}
    )
    temperature_decay: float = field(
        default=0.85, metadata={"help": "factor of the softmax temperature per epoch"}
    )
    lr: float = field(default=0.2, metadata={"help": "assignment learning rate"})
    bias_lr: float = field(default=1e-3, metadata={"help": "learning rate of biases and gains"})
    tune_lr: float = field(
        default=1e-4, metadata={"help": "learning rate of the end-to-end tuning"}
    )
    batch: int = field(default=64, metadata={"help": "images per optimizer step"})
    cache_gib: float = field(
        default=4.0,
        metadata={
            "help": "blockwise: memory for each stage's cached values (GiB); a stage whose "
            "values do not fit for every image distils on the first ones that do"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed of the candidates' training"})

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        for name in ("candidates", "epochs", "block_steps", "batch"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InputError(f"{name} must be a positive integer, not {value!r}")
        if type(self.tune_steps) is not int or self.tune_steps < 0:
            raise InputError(f"tune_steps must be a whole number, not {self.tune_steps!r}")
        for name in ("lr", "bias_lr", "tune_lr", "cache_gib", "temperature_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number, not {value!r}")
        for name in ("kd_weight", "ratio_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a number >= 0, not {value!r}")
        if not 0 < self.threshold <= 1:
            raise InputError(f"threshold must be in (0, 1], not {self.threshold!r}")


@dataclass(frozen=True)
class Compressed:
    """The compressed network, the optimizer steps it took, and the fraction of sub-vectors
    that PNC froze (the rest were stragglers, frozen to their largest ratio)."""

    model: nn.Module
    steps: int
    frozen_by_pnc: float


def _stages(model: nn.Module) -> list[nn.Module]:
    """The stages between residual joins of ``model``'s traced graph (see
    :func:`vq4all.model.graph.stages`); they compose to the network."""
    return stages(trace(model, VQ_LAYERS))


def _stage_outputs(parts: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Each stage's output in turn; the last is the network's."""
    outputs = []
    for part in parts:
        x = part(x)
        outputs.append(x)
    return outputs


@torch.no_grad()
def _batched(part: nn.Module, inputs: torch.Tensor, batch: int) -> torch.Tensor:
    """``part`` on ``inputs``, ``batch`` at a time, into one tensor allocated once (a
    concatenation would hold the output twice)."""
    first = part(inputs[:batch])
    output = first.new_empty((len(inputs), *first.shape[1:]))
    output[: len(first)] = first
    for start in range(batch, len(inputs), batch):
        output[start : start + batch] = part(inputs[start : start + batch])
    return output


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
    optimizer_state: dict | None = None,
    save: Callable[[torch.optim.Optimizer, int], None] | None = None,
) -> int:
    """Train the unfrozen assignments (and biases, gains) of the VQ layers of ``module`` (part
    of ``network``, whose frozen fraction the bar shows) on ``loss_of(batch indices)`` plus the
    ratio regulariser, with PNC after every step, until every sub-vector is frozen or the
    batches run out; returns the steps taken. ``end_of_epoch(step)`` says when to anneal the
    temperature; then ``save(optimizer, step)`` is called, if given, and ``optimizer_state``
    is the state it saved when training goes on from there."""
    layers = list(vq_layers(module).values())
    logits = [layer.logits for layer in layers]
    others = [p for p in module.parameters() if p.requires_grad and all(p is not q for q in logits)]
    optimizer = torch.optim.Adam(
        [{"params": logits}, {"params": others, "lr": config.bias_lr}], lr=config.lr
    )
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
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
            if save is not None:
                save(optimizer, steps)
    return steps


def _freeze_stragglers(layers: list[VQWeight]) -> int:
    """Freeze what PNC left of ``layers`` to their largest ratios; returns the sub-vectors that
    PNC had frozen."""
    frozen = 0
    for layer in layers:
        frozen += int(layer.frozen.sum())
        layer.freeze_all()
    return frozen


@dataclass
class _Run:
    """What both schedules work on: the float and the VQ network as stages, the distillation
    images and their labels, the method's numbers and the progress bar."""

    teacher: list[nn.Module]
    student: list[nn.Module]
    images: torch.Tensor
    labels: torch.Tensor
    config: CompressConfig
    bar: tqdm
    #: What a resumed run must share with the one that saved its state.
    key: str
    #: The parameters of the layers kept as they are, which never train.
    kept: frozenset[int]

    def layers(self) -> list[VQWeight]:
        return [layer for part in self.student for layer in vq_layers(part).values()]

    def trainable(self, module: nn.Module, train: bool = True) -> None:
        """Let ``module``'s parameters train (or stop them), the kept layers' excepted."""
        for parameter in module.parameters():
            parameter.requires_grad_(train and id(parameter) not in self.kept)


def _joint(run: _Run, resume: Path | None) -> tuple[int, int]:
    """Every layer at once; returns the steps taken and the sub-vectors that PNC froze. After
    each epoch the state, the optimizer's with it, is saved to ``resume`` (when given), and a
    run that finds it there goes on from the epoch after, as if it had not stopped."""
    config, count = run.config, len(run.images)
    per_epoch = -(-count // config.batch)
    generator = torch.Generator().manual_seed(config.seed)
    network = nn.Sequential(*run.student)
    done, steps_before, _, optimizer_state = _resumed(resume, network, generator, run.key)

    def batches() -> Iterator[torch.Tensor]:
        for _ in range(config.epochs - done):
            yield from torch.randperm(count, generator=generator).split(config.batch)

    def loss_of(take: torch.Tensor) -> torch.Tensor:
        x = run.images[take]
        with torch.no_grad():
            targets = _stage_outputs(run.teacher, x)
        outputs = _stage_outputs(run.student, x)
        distill = torch.stack(
            [nn.functional.mse_loss(o, t) for o, t in zip(outputs, targets, strict=True)]
        ).mean()
        task = nn.functional.cross_entropy(outputs[-1], run.labels[take])
        return task + config.kd_weight * distill

    def save(optimizer: torch.optim.Optimizer, taken: int) -> None:
        epochs = done + taken // per_epoch
        steps = steps_before + taken
        _save_resume(resume, network, generator, run.key, epochs, steps, 0, optimizer)

    run.bar.reset(total=config.epochs)
    run.bar.update(done)
    steps = steps_before + _train(
        network,
        network,
        batches(),
        loss_of,
        config,
        run.bar,
        lambda s: s % per_epoch == 0,
        optimizer_state,
        save,
    )
    return steps, _freeze_stragglers(run.layers())


def _kl(output: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The KL divergence of ``output`` from the float model's ``logits``, per image."""
    return nn.functional.kl_div(
        output.log_softmax(dim=1), logits.log_softmax(dim=1), log_target=True, reduction="batchmean"
    )


def _task_loss(
    output: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, config: CompressConfig
) -> torch.Tensor:
    """Cross-entropy of ``output`` against ``labels`` or, with ``soft_targets``, its KL
    divergence from the float model's ``logits``."""
    if config.soft_targets:
        return _kl(output, logits)
    return nn.functional.cross_entropy(output, labels)


def _held(run: _Run, index: int, inputs: torch.Tensor) -> int:
    """How many images stage ``index`` distils on within ``cache_gib`` (at least a batch)."""
    with torch.no_grad():
        output = run.teacher[index](inputs[:1])
    per_image = 2 * inputs.element_size() * (inputs[0].numel() + output[0].numel())
    fits = int(run.config.cache_gib * 2**30) // per_image
    return min(len(run.images), max(run.config.batch, fits))


def _stage_steps(run: _Run, trained: list[int]) -> dict[int, int]:
    """The steps of each trained stage: ``block_steps``, and with ``steps_by_size`` as many
    times more as the stage has more sub-vectors than the mean stage (MobileNetV2's last stage,
    its classifier's, holds half of them, and each of its steps costs little)."""
    steps = dict.fromkeys(trained, run.config.block_steps)
    if run.config.steps_by_size:
        sizes = {
            i: sum(v.frozen.numel() for v in vq_layers(run.student[i]).values()) for i in trained
        }
        mean = sum(sizes.values()) / len(sizes)
        steps = {i: max(steps[i], round(steps[i] * sizes[i] / mean)) for i in trained}
    return steps


def _blockwise(run: _Run, resume: Path | None) -> tuple[int, int]:
    """One stage at a time, in order; returns the steps taken and the sub-vectors that PNC
    froze. After each stage the VQ state is saved to ``resume`` (when given), and a run that
    finds it there goes on from the stage after."""
    config = run.config
    generator = torch.Generator().manual_seed(config.seed)
    network = nn.Sequential(*run.student)
    chunk = 4 * config.batch
    trained = [index for index, part in enumerate(run.student) if vq_layers(part)]
    steps_of = _stage_steps(run, trained)
    # The temperature falls over a stage's steps as far as over ``epochs`` joint epochs.
    anneal_every = {index: max(1, steps_of[index] // config.epochs) for index in trained}
    run.bar.reset(total=sum(steps_of[i] // anneal_every[i] for i in trained))
    done, steps, by_pnc, _ = _resumed(resume, network, generator, run.key)
    run.bar.update(sum(steps_of[i] // anneal_every[i] for i in trained if i < done))
    # The float and the compressed network's values at the current stage's input, for the
    # first images (as many as the stage holds).
    taught = learned = run.images[: _held(run, 0, run.images)]
    last = len(run.student) - 1
    for index, (teacher, learner) in enumerate(zip(run.teacher, run.student, strict=True)):
        held = len(taught)
        targets = _batched(teacher, taught, chunk)
        if index in trained and index >= done:
            run.bar.set_description(
                f"compress (blockwise) stage {index + 1}/{last + 1} on {held} images"
            )

            def loss_of(take, learner=learner, inputs=learned, targets=targets, end=index == last):
                output = learner(inputs[take])
                distill = config.kd_weight * _relative_mse(output, targets[take])
                if not end:
                    return distill
                # The network's output: the task loss joins.
                return _task_loss(output, targets[take], run.labels[take], config) + distill

            run.trainable(learner)
            batches = (
                torch.randint(held, (config.batch,), generator=generator)
                for _ in range(steps_of[index])
            )
            every = anneal_every[index]
            steps += _train(
                network, learner, batches, loss_of, config, run.bar, lambda s, e=every: s % e == 0
            )
            by_pnc += _freeze_stragglers(list(vq_layers(learner).values()))
            run.trainable(learner, False)
            _save_resume(resume, network, generator, run.key, index + 1, steps, by_pnc)
            del loss_of  # it holds this stage's values
        if index == last:  # ``targets`` holds the float network's output
            steps += _tune(run, network, targets, generator)
            break
        # Only the images that the next stage holds go on; a copy frees the rest.
        following = _held(run, index + 1, targets)
        kept = min(held, following)
        learned = _batched(learner, learned[:kept], chunk)
        taught = targets if kept == held else targets[:kept].clone()
        del targets
        if following > held:  # the next stage's values are smaller: more images join
            more = run.images[held:following]
            before = slice(0, index + 1)
            taught = torch.cat([taught, _batched(nn.Sequential(*run.teacher[before]), more, chunk)])
            learned = torch.cat(
                [learned, _batched(nn.Sequential(*run.student[before]), more, chunk)]
            )
    run.trainable(network)
    return steps, by_pnc


def _tune(run: _Run, network: nn.Module, logits: torch.Tensor, generator) -> int:
    """``tune_steps`` steps of the network's gains and biases (every index is frozen by now)
    on the KL divergence of its output from the float model's ``logits`` on the first images;
    returns the steps."""
    config = run.config
    if not config.tune_steps:
        return 0
    run.trainable(network)
    indices = {id(layer.logits) for layer in run.layers()}
    tuned = [p for p in network.parameters() if p.requires_grad and id(p) not in indices]
    optimizer = torch.optim.Adam(tuned, lr=config.tune_lr)
    run.bar.reset(total=config.tune_steps)
    run.bar.set_description("compress (blockwise) tuning gains and biases end to end")
    for _ in range(config.tune_steps):
        take = torch.randint(len(logits), (config.batch,), generator=generator)
        loss = _kl(network(run.images[take]), logits[take])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.bar.set_postfix(kl=f"{loss.item():.3f}")
        run.bar.update()
    return config.tune_steps


def _resumed(
    path: Path | None, network: nn.Module, generator, key: str
) -> tuple[int, int, int, dict | None]:
    """The stages (or epochs) done, steps, PNC-frozen sub-vectors and optimizer state (None
    for a blockwise run) of an interrupted run saved at ``path`` (its VQ state and random state
    restored), or zeros and None. Raises ``ValueError`` for a file left by a run of another
    model, codebook, data or config."""
    if path is None or not path.exists():
        return 0, 0, 0, None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("key") != key:
        raise InputError(
            f"{path}: field 'key': left by a run of another model, codebook, data or config; "
            "remove it to start again"
        )
    network.load_state_dict(saved["state"], strict=True)
    generator.set_state(saved["generator"])
    return int(saved["done"]), int(saved["steps"]), int(saved["by_pnc"]), saved.get("optimizer")


def _save_resume(
    path: Path | None, network, generator, key: str, done, steps, by_pnc, optimizer=None
) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "key": key,
        "state": network.state_dict(),
        "generator": generator.get_state(),
        "done": done,
        "steps": steps,
        "by_pnc": by_pnc,
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, buffer.getvalue())


def _run_key(teacher: nn.Module, codebook, images, labels, config) -> str:
    if isinstance(codebook, Codebook):
        identity = codebook.sha256
    else:  # per-layer codebooks, by layer
        identity = " ".join(f"{name}={own.sha256}" for name, own in sorted(codebook.items()))
    digest = hashlib.sha256(f"{identity} {config}".encode())
    for tensor in [*teacher.state_dict().values(), images, labels]:
        digest.update(tensor.detach().contiguous().numpy())
    return digest.hexdigest()


def compress(
    model: nn.Module,
    codebook: Codebook | Mapping[str, Codebook],
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    config: CompressConfig = CompressConfig(),
    progress: bool = True,
    resume: str | os.PathLike | None = None,
    keep: tuple[str, ...] = (),
) -> Compressed:
    """The VQ4ALL-compressed copy of ``model`` (every sub-vector frozen to one codeword),
    distilled on ``images`` with ``labels`` for the task loss (by default the float model's
    own top-1 predictions). ``codebook`` is the universal codebook, or each layer's own by name
    (:func:`vq4all.model.vq.prepare_vq`): trained per-layer VQ, with the same candidate
    assignments, distillation and schedule.

    ``resume`` names a file for the state after each blockwise stage or joint epoch: a run that
    finds it there (left by an interrupted run of the same model, codebook and config) goes on
    from where that one stopped. The layers named in ``keep`` stay as they are (see
    :func:`vq4all.model.vq.prepare_vq`). Raises ``UnsupportedLayerError`` listing the layers that
    cannot be compressed and ``ValueError`` for NaN/inf weights or an unknown schedule.
    """
    torch.manual_seed(config.seed)
    teacher = fold_batchnorm(model)
    student = prepare_vq(teacher, codebook, config.candidates, keep)
    # Kept as they are: not trained either.
    kept = frozenset(id(p) for name in keep for p in student.get_submodule(name).parameters())
    with warnings.catch_warnings():
        if config.schedule != "blockwise":  # stages that collapse matter to blockwise alone
            warnings.simplefilter("ignore")
        teachers, students = _stages(teacher), _stages(student)
    if labels is None:
        labels = _batched(teacher, images, 4 * config.batch).argmax(dim=1)
    subvectors = sum(layer.frozen.numel() for layer in vq_layers(student).values())
    train = _joint if config.schedule == "joint" else _blockwise
    with tqdm(desc=f"compress ({config.schedule})", disable=not progress, leave=False) as bar:
        key = _run_key(teacher, codebook, images, labels, config)
        run = _Run(teachers, students, images, labels, config, bar, key, kept)
        run.trainable(student)
        steps, by_pnc = train(run, Path(resume) if resume is not None else None)
    return Compressed(student.eval(), steps, by_pnc / subvectors)
