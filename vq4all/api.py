"""The public API: compress a PyTorch model of one's own against a universal codebook.

.. code-block:: python

    import vq4all

    result = vq4all.compress(model, codebook, calibration=loader)  # a DataLoader, a tensor
    print(result.report.format())                                  # or None: see below
    program = vq4all.export(result, codebook)                      # golden's network program

``calibration`` feeds distillation and the export's activation scales: a tensor of images, or
any iterable of batches (a ``DataLoader``) of images or ``(images, labels)``. With ``None``, the
images are synthesised from the model's BatchNorm statistics (:mod:`vq4all.model.datafree`;
``example_input`` then gives their shape). Without labels, the float model's
own predictions are the task loss's targets.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from vq4all.golden.codebook import Codebook
from vq4all.golden.errors import InputError
from vq4all.golden.network import NetworkProgram, save_network
from vq4all.model.baselines import uniform_rows
from vq4all.model.checkpoint import load_compressed, save_compressed
from vq4all.model.compress import CompressConfig
from vq4all.model.compress import compress as compress_network
from vq4all.model.datafree import DataFreeConfig, bn_statistics_images
from vq4all.model.export import export_network, export_problems
from vq4all.model.graph import UnsupportedLayerError
from vq4all.model.metrics import METRICS, fidelity, output_kind
from vq4all.model.program import capture
from vq4all.model.vq import SCALE_BITS, constant_parameters, unsupported_layers, vq_layers
from vq4all.model.workloads.zoo import evaluate

__all__ = [
    "KEPT_BITS",
    "LayerReport",
    "Report",
    "Result",
    "compress",
    "export",
    "images_of",
    "load",
    "save",
    "save_program",
]

#: Bits per weight of a layer the codebook cannot serve, kept with ``keep_unsupported``.
KEPT_BITS = 8


@dataclass(frozen=True)
class LayerReport:
    """One layer with weights: its module path and type, its weights, how it is stored
    (``vq4all``: codebook indices; ``int8``: kept, per-channel 8-bit), the bits that costs and
    why it is stored so."""

    name: str
    kind: str
    weights: int
    storage: str
    bits: int
    reason: str = ""


@dataclass(frozen=True)
class Report:
    """What a compression did: every layer, bits per weight over all weights, the optimizer
    steps, the fraction of sub-vectors PNC froze, where the calibration images came from, and
    fidelity to the float model on the held-out images (if any were given)."""

    layers: list[LayerReport]
    steps: int
    frozen_by_pnc: float
    calibration: str
    held_out: dict[str, float] = field(default_factory=dict)
    metric: str = "logits"

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def bits_per_weight(self) -> float:
        return sum(layer.bits for layer in self.layers) / self.weights

    def format(self) -> str:
        compressed = [layer for layer in self.layers if layer.storage == "vq4all"]
        kept = [layer for layer in self.layers if layer.storage != "vq4all"]
        lines = [
            f"{len(compressed)} layers compressed, {len(kept)} kept; "
            f"{self.bits_per_weight:.3f} bits per weight over all {self.weights:,} weights",
            f"{self.steps} steps, {100 * self.frozen_by_pnc:.1f}% of sub-vectors frozen by PNC; "
            f"calibration: {self.calibration}",
        ]
        lines += [
            f"  kept {layer.storage}: {layer.name} ({layer.kind}, {layer.weights:,} weights): "
            f"{layer.reason}"
            for layer in kept
        ]
        scores = self.held_out
        if scores and self.metric != "logits":
            closeness = [f"cosine similarity {scores['cosine']:.4f}"]
            if "relative_error" in scores:
                closeness.insert(0, f"relative error {scores['relative_error']:.4f}")
            lines.append(f"held out ({self.metric}): {', '.join(closeness)} against float")
        elif scores:
            line = (
                f"held out (logits): top-1 agreement with float {scores['top1_agreement']:.2f}%, "
                f"top-5 {scores['top5_overlap']:.2f}%, KL {scores['kl']:.4f}"
            )
            if "accuracy" in scores:
                line += (
                    f"; accuracy float {scores['float_accuracy']:.2f}% -> VQ4ALL "
                    f"{scores['accuracy']:.2f}%"
                )
            lines.append(line)
        return "\n".join(lines)


@dataclass(frozen=True)
class Result:
    """The compressed model, its report, the images it was calibrated on, and what
    :func:`save` needs to write it: the float model as compression captured it (its
    structure), the codebook and the candidates per sub-vector."""

    model: nn.Module
    report: Report
    calibration: torch.Tensor
    structure: nn.Module | None = None
    codebook: Codebook | None = None
    candidates: int = 8


def images_of(data: torch.Tensor | Iterable) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (float32, or integer inputs such as token ids as they are) and labels (or None)
    of a tensor, or of an iterable of batches of images or of ``(images, labels)``; raises
    ``ValueError`` for anything else or NaN/inf images."""
    if isinstance(data, torch.Tensor):
        images, labels = data, None
    else:
        batches = list(data)
        if not batches:
            raise InputError("the calibration data yielded no batches")
        if all(isinstance(b, torch.Tensor) for b in batches):
            images, labels = torch.cat(batches), None
        elif all(isinstance(b, (tuple, list)) and len(b) >= 2 for b in batches):
            images = torch.cat([b[0] for b in batches])
            labels = torch.cat([torch.as_tensor(b[1]) for b in batches]).long()
        else:
            raise InputError("calibration batches must be image tensors or (images, labels)")
    images = images.detach()
    if torch.is_floating_point(images):
        images = images.float()
        if not torch.isfinite(images).all():
            raise InputError("the calibration images contain NaN or inf")
    elif images.is_complex() or images.dtype == torch.bool:
        raise InputError(f"calibration inputs of {images.dtype} are neither numbers nor ids")
    # Integer inputs (token ids) keep their dtype: a cast would make an embedding's index a float.
    return images, labels


@torch.no_grad()
def _keep_in_int8(model: nn.Module, kinds: dict[str, str]) -> tuple[nn.Module, list[LayerReport]]:
    """A copy of ``model`` whose layers ``kinds`` (type names by module path) hold per-channel
    8-bit weights, and their rows of the report."""
    model = copy.deepcopy(model)
    rows = []
    for name in kinds:
        module = model.get_submodule(name)
        weights = bits = 0
        for pname, parameter in module.named_parameters(recurse=False):
            if not pname.startswith("weight") or parameter.dim() < 2:
                continue  # biases and gains stay float, as everywhere
            matrix = parameter.detach().reshape(parameter.shape[0], -1).double()
            parameter.copy_(uniform_rows(matrix, KEPT_BITS).reshape(parameter.shape))
            weights += parameter.numel()
            bits += parameter.numel() * KEPT_BITS + parameter.shape[0] * SCALE_BITS
        rows.append(
            LayerReport(name, kinds[name], weights, "int8", bits, "no GEMM form for the codebook")
        )
    return model, rows


def compress(
    model: nn.Module,
    codebook: Codebook,
    calibration: torch.Tensor | Iterable | None = None,
    example_input: torch.Tensor | None = None,
    *,
    held_out: torch.Tensor | Iterable | None = None,
    config: CompressConfig | None = None,
    keep_unsupported: bool = False,
    data_free: DataFreeConfig | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    export_check: bool = True,
    metric: str | None = None,
) -> Result:
    """``model`` compressed against ``codebook`` (BatchNorm folded, every Linear and Conv2d
    a VQ layer whose sub-vectors are each one codeword), with a :class:`Report`.

    The model is first captured by torch.export at the calibration images
    (:func:`vq4all.model.program.capture`), and its graph is checked to export to a network
    program: a node with no integer equivalent stops the compression before any training,
    listing every such node with its source line, unless ``export_check`` is False.
    The held-out scores follow what the output is (``metric``, one of
    :data:`vq4all.model.metrics.METRICS`; by default what the float outputs look like:
    probabilities when they lie in [0, 1], else logits), and the report names it.

    Layers with weights that have no GEMM form (an LSTM, a LayerNorm...) stop the compression
    with an ``UnsupportedLayerError`` listing every one, unless ``keep_unsupported``: then they
    keep 8-bit weights, counted in the bits per weight. ``held_out`` images (never the
    calibration images) measure top-1/top-5 agreement and KL against the float model, and
    accuracy when they carry labels. ``resume`` is the file that lets an interrupted
    run go on (see :func:`vq4all.model.compress.compress`).
    """
    config = config or CompressConfig()
    if metric is not None and metric not in METRICS:
        raise InputError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    model = model.eval()
    # The capture below makes a Conv1d a Conv2d of height 1.
    unsupported = {
        name: kind for name, kind in unsupported_layers(model).items() if kind != "Conv1d"
    }
    if unsupported and not keep_unsupported:
        listed = ", ".join(f"{name} ({kind})" for name, kind in unsupported.items())
        raise UnsupportedLayerError(
            f"{len(unsupported)} layer(s) have no GEMM form for the codebook: {listed}; keep "
            "them in int8 (keep_unsupported=True, --keep-unsupported) or remove them"
        )
    if calibration is None:
        if example_input is None:
            raise InputError("without calibration data, give example_input for the image shape")
        images = bn_statistics_images(
            model, tuple(example_input.shape[1:]), data_free, progress=progress
        )
        labels, origin = None, f"{len(images)} images synthesised from BatchNorm statistics"
    else:
        images, labels = images_of(calibration)
        origin = f"{len(images)} given images" + (" with labels" if labels is not None else "")
    # A kept layer (an LSTM...) would be no module of torch.export's graph: such a model stays
    # as written, traced by torch.fx, and cannot export anyway.
    if not unsupported:
        model = capture(model, images)
        if export_check:
            problems = export_problems(model, images)
            if problems:
                raise UnsupportedLayerError(
                    f"the model would not export to a network program, so compression stops "
                    f"before it starts; {len(problems)} node(s): {'; '.join(problems)}; "
                    "compress anyway with export_check=False (--no-export-check)"
                )
    student, kept = _keep_in_int8(model, unsupported)
    result = compress_network(
        student,
        codebook,
        images,
        labels,
        config,
        progress=progress,
        resume=resume,
        keep=tuple(unsupported),
    )
    index_bits = (codebook.K - 1).bit_length()
    layers = [
        LayerReport(
            name.removesuffix(".vq"),
            "Conv2d" if len(layer.shape) == 4 else "Linear",
            int(torch.Size(layer.shape).numel()),
            "vq4all",
            layer.frozen.numel() * index_bits + layer.shape[0] * SCALE_BITS,
        )
        for name, layer in vq_layers(result.model).items()
    ]
    # Class tokens and position embeddings: constants of the program, at most 16-bit codes
    # and a scale each; counted at 8 bits as a kept layer's weights are.
    constants = [
        LayerReport(
            name,
            "Parameter",
            size,
            "int8",
            size * KEPT_BITS + SCALE_BITS,
            "a constant that the program holds",
        )  # fmt: skip
        for name, size in constant_parameters(model).items()
    ]
    scores = {}
    if held_out is not None:
        test, test_labels = images_of(held_out)
        if metric is None:
            with torch.no_grad():
                metric = output_kind(model(test[:64]))
        scores = fidelity(model, result.model, test, metric=metric)
        if test_labels is not None and metric == "logits":
            scores["accuracy"] = evaluate(result.model, test, test_labels)
            scores["float_accuracy"] = evaluate(model, test, test_labels)
    report = Report(
        layers + kept + constants,
        result.steps,
        result.frozen_by_pnc,
        origin,
        scores,
        metric or "logits",
    )
    structure = model if isinstance(model, fx.GraphModule) and not unsupported else None
    return Result(result.model, report, images, structure, codebook, config.candidates)


def export(
    result: Result, codebook: Codebook, calibration: int = 256, activation_bits: int = 8
) -> NetworkProgram:
    """The network program of a compressed model, with ``activation_bits``-wide activations (8
    or 16) whose scales are calibrated on the first ``calibration`` of its calibration images.
    Raises ``UnsupportedLayerError`` naming the first node with no integer equivalent, with its
    source line."""
    return export_network(
        result.model, codebook, result.calibration[:calibration], activation_bits=activation_bits
    )


def save(result: Result, path: str | os.PathLike) -> None:
    """Write compressed ``result`` to ``path`` as a checkpoint that :func:`load` (and
    ``vq4all export --compressed``) reads alone: the versioned container of
    :mod:`vq4all.model.checkpoint`, with the model's structure (a torch.export archive), its
    state, its codebook, its calibration images and its report. Written atomically.

    Raises ``ValueError`` for a model that kept layers in int8 (their structure is Python
    only: compress it from a model file, ``vq4all compress --network file.py:factory``)."""
    if result.structure is None or result.codebook is None:
        raise InputError(
            "this result has layers kept in int8, whose structure only its Python code holds; "
            "compress it from a model file (vq4all compress --network file.py:factory) to "
            "save it"
        )
    save_compressed(
        path,
        result.model,
        "",
        tuple(result.calibration.shape[1:]),
        result.codebook,
        result.candidates,
        "",
        result.calibration,
        structure=result.structure,
        report=json.dumps(dataclasses.asdict(result.report)),
    )


def load(path: str | os.PathLike, codebook: Codebook | None = None) -> Result:
    """The compressed result that :func:`save` wrote (checked against ``codebook`` when
    given). Raises ``ArtifactError`` naming the file and the field."""
    checkpoint = load_compressed(path, codebook)
    report = checkpoint.report or {}
    rows = [LayerReport(**row) for row in report.pop("layers", [])]
    return Result(
        checkpoint.model,
        Report(rows, **report) if report else Report([], 0, 0.0, "unknown"),
        checkpoint.calibration,
        checkpoint.structure,
        checkpoint.codebook,
        checkpoint.candidates,
    )


def save_program(program: NetworkProgram, path: str | os.PathLike) -> None:
    """Write network ``program`` (of :func:`export`) to ``path``: the file that ``vq4all
    simulate --network`` runs on the RTL. Written atomically."""
    save_network(path, program)
