"""Compressed-network checkpoints: a network's VQ state after compression and the images that
calibrate its export, so that ``vq4all compress`` and ``vq4all export`` can run apart.

An artifact of :mod:`vq4all.golden.container` (``format = vq4all.compressed``, versioned, with a
payload hash over the tensors and the metadata): the state dict as tensors ``state.<name>`` and the
calibration images as ``calibration``; metadata ``network`` (a zoo name, or the user's
``path/to/model.py:factory`` or model program file, which rebuilds the model's structure),
``input_shape``, ``codebook_sha256``, ``candidates``, ``keep`` (the layers kept in int8, a JSON
list) and ``dataset`` (the data set's name, or empty for the user's own data).

A checkpoint of a model that no file rebuilds (one given to :func:`vq4all.api.compress` as
an object: ``network`` is then empty) carries its structure instead: tensor ``structure``, the
bytes of the float model's torch.export archive (torch's own versioned format, no pickle),
and its codebook (tensor ``codebook``, metadata ``codebook_scale``), so that it loads alone.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vq4all.golden.codebook import Codebook
from vq4all.golden.container import (
    UNCHANGED_SINCE,
    ArtifactError,
    located,
    parse_field,
    read_verified,
    save_artifact,
)
from vq4all.golden.errors import InputError
from vq4all.model.program import capture, modules_of
from vq4all.model.user import is_model_file, load_model
from vq4all.model.vq import prepare_vq, vq_layers
from vq4all.model.workloads.zoo import build

__all__ = ["CHECKPOINT_CALIBRATION", "CompressedCheckpoint", "load_compressed", "save_compressed"]

CHECKPOINT_FORMAT = "vq4all.compressed"
#: Calibration images a checkpoint keeps for the export (its activation scales).
CHECKPOINT_CALIBRATION = 256


@dataclass(frozen=True)
class CompressedCheckpoint:
    """A compressed network rebuilt from its checkpoint: the model (in eval mode), its zoo
    name or model file (empty when the checkpoint carries its structure), the data set it was
    compressed on (empty for the user's own data), its calibration images, its codebook and
    its candidates per sub-vector."""

    model: nn.Module
    network: str
    dataset: str
    calibration: torch.Tensor
    codebook: Codebook | None = None
    candidates: int = 8
    structure: nn.Module | None = None
    report: dict | None = None


def save_compressed(
    path: str | os.PathLike,
    model: nn.Module,
    network: str,
    shape,
    codebook: Codebook,
    candidates: int,
    dataset: str,
    calibration: torch.Tensor,
    keep: tuple[str, ...] = (),
    structure: nn.Module | None = None,
    report: str = "",
) -> None:
    """Save compressed network ``network`` (a zoo name or ``model.py:factory``; input
    ``shape``, data set ``dataset``) built against ``codebook`` with ``candidates`` per
    sub-vector, the layers ``keep`` left out of the codebook, and its ``calibration``
    images. With ``structure`` (the float model that compression started from) and an empty
    ``network``, the checkpoint carries the model's structure and the codebook itself."""
    tensors = {}
    if structure is not None:
        tensors["structure"] = np.frombuffer(_exported(structure, shape), dtype=np.uint8)
        tensors["codebook"] = codebook.codewords
    metadata = {
        "network": network,
        "input_shape": json.dumps(list(shape)),
        "codebook_sha256": codebook.sha256,
        "candidates": str(candidates),
        "keep": json.dumps(list(keep)),
        "dataset": dataset,
    }
    if structure is not None:
        metadata["codebook_scale"] = repr(codebook.scale)
    if report:
        metadata["report"] = report
    tensors |= {
        f"state.{name}": tensor.detach().contiguous().numpy()
        for name, tensor in model.state_dict().items()
    }
    tensors["calibration"] = (
        calibration[:CHECKPOINT_CALIBRATION].detach().float().contiguous().numpy()
    )
    save_artifact(path, CHECKPOINT_FORMAT, tensors, metadata)


def _exported(model: nn.Module, shape) -> bytes:
    """The bytes of ``model``'s torch.export archive (any batch size)."""
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros(2, *shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},), strict=False)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _structure(path, tensors: dict) -> nn.Module:
    """The float model of a checkpoint's ``structure`` archive."""
    try:
        program = torch.export.load(io.BytesIO(tensors["structure"].tobytes()))
    except Exception as error:  # torch raises many kinds; all mean a bad archive
        raise ArtifactError(f"{path}: field 'structure': not a torch.export archive "
                            f"({type(error).__name__})") from None  # fmt: skip
    return modules_of(program).eval()


def _embedded_codebook(path, tensors: dict, metadata: dict) -> Codebook:
    scale = parse_field(path, metadata, "codebook_scale", float)
    if "codebook" not in tensors:
        raise ArtifactError(f"{path}: field 'codebook' is missing")
    try:
        return Codebook(tensors["codebook"], scale)
    except ArtifactError as error:
        raise located(error, path, "codebook.") from None


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(size) for size in json.loads(text))


def load_compressed(
    path: str | os.PathLike, codebook: Codebook | None = None
) -> CompressedCheckpoint:
    """The compressed model of a checkpoint, against ``codebook`` (by default the one that the
    checkpoint carries); raises ``ArtifactError`` naming the file and field (and
    ``FileNotFoundError`` for a missing file)."""
    tensors, metadata = read_verified(path, CHECKPOINT_FORMAT, UNCHANGED_SINCE)
    if codebook is None:
        if "codebook_scale" not in metadata:
            raise InputError(f"{path}: carries no codebook; give the one it was compressed with")
        codebook = _embedded_codebook(path, tensors, metadata)
    if parse_field(path, metadata, "codebook_sha256") != codebook.sha256:
        raise ArtifactError(
            f"{path}: field 'codebook_sha256': compressed against codebook "
            f"{metadata['codebook_sha256'][:16]}..., not {codebook.sha256[:16]}..."
        )
    shape = parse_field(path, metadata, "input_shape", _shape)
    candidates = parse_field(path, metadata, "candidates", int)
    keep = tuple(parse_field(path, metadata, "keep", json.loads))
    network = parse_field(path, metadata, "network")
    if "calibration" not in tensors:
        raise ArtifactError(f"{path}: field 'calibration' is missing")
    if "structure" in tensors:
        template = _structure(path, tensors)
    else:
        try:
            template = (
                load_model(network, shape) if is_model_file(network) else build(network, shape)
            )
        except (ValueError, OSError) as error:
            raise ArtifactError(f"{path}: field 'network': {error}") from None
        if not keep:  # compression captured it so (see vq4all.api.compress)
            template = capture(template, torch.zeros(2, *shape))
    model = prepare_vq(template, codebook, candidates, keep)
    state = {
        name.removeprefix("state."): torch.from_numpy(array)
        for name, array in tensors.items()
        if name.startswith("state.")
    }
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ArtifactError(f"{path}: field 'state': {str(error).splitlines()[0]}") from None
    for layer in vq_layers(model).values():
        if not bool(layer.frozen.all()):
            raise ArtifactError(f"{path}: field 'frozen': the network is not fully compressed")
    dataset = parse_field(path, metadata, "dataset")
    calibration = torch.from_numpy(tensors["calibration"])
    report = parse_field(path, metadata, "report", json.loads) if "report" in metadata else None
    if report is not None and not isinstance(report, dict):
        raise ArtifactError(f"{path}: field 'report': not a JSON object")
    structure = template if "structure" in tensors else None
    return CompressedCheckpoint(
        model.eval(), network, dataset, calibration, codebook, candidates, structure, report
    )
