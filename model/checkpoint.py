"""Compressed-network checkpoints: a network's VQ state after compression and the images that
calibrate its export, so that ``vq4all compress`` and ``vq4all export`` can run apart.

An artifact of :mod:`vq4all.golden.container` (``format = vq4all.compressed``, versioned, with a
payload hash over the tensors and the metadata): the state dict as tensors ``state.<name>`` and the
calibration images as ``calibration``; metadata ``network`` (a zoo name, or the user's
``path/to/model.py:factory`` or model program file, which rebuilds the model's structure),
``input_shape``, ``codebook_sha256``, ``candidates``, ``keep`` (the layers kept in int8, a JSON
list) and ``dataset`` (the data set's name, or empty for the user's own data).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from torch import nn

from vq4all.golden.codebook import Codebook
from vq4all.golden.container import (
    UNCHANGED_SINCE,
    ArtifactError,
    parse_field,
    read_verified,
    save_artifact,
)
from vq4all.model.program import capture
from vq4all.model.user import is_model_file, load_model
from vq4all.model.vq import prepare_vq, vq_layers
from vq4all.model.workloads.zoo import build

__all__ = ["CompressedCheckpoint", "load_compressed", "save_compressed"]

CHECKPOINT_FORMAT = "vq4all.compressed"


@dataclass(frozen=True)
class CompressedCheckpoint:
    """A compressed network rebuilt from its checkpoint: the model (in eval mode), its zoo
    name or model file, the data set it was compressed on (empty for the user's own data) and
    its calibration images."""

    model: nn.Module
    network: str
    dataset: str
    calibration: torch.Tensor


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
) -> None:
    """Save compressed network ``network`` (a zoo name or ``model.py:factory``; input
    ``shape``, data set ``dataset``) built against ``codebook`` with ``candidates`` per
    sub-vector, the layers ``keep`` left out of the codebook, and its ``calibration``
    images."""
    metadata = {
        "network": network,
        "input_shape": json.dumps(list(shape)),
        "codebook_sha256": codebook.sha256,
        "candidates": str(candidates),
        "keep": json.dumps(list(keep)),
        "dataset": dataset,
    }
    tensors = {
        f"state.{name}": tensor.detach().contiguous().numpy()
        for name, tensor in model.state_dict().items()
    }
    tensors["calibration"] = calibration.detach().float().contiguous().numpy()
    save_artifact(path, CHECKPOINT_FORMAT, tensors, metadata)


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(size) for size in json.loads(text))


def load_compressed(path: str | os.PathLike, codebook: Codebook) -> CompressedCheckpoint:
    """The compressed model of a checkpoint; raises ``ArtifactError`` naming the file and field
    (and ``FileNotFoundError`` for a missing file)."""
    tensors, metadata = read_verified(path, CHECKPOINT_FORMAT, UNCHANGED_SINCE)
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
    try:
        template = load_model(network, shape) if is_model_file(network) else build(network, shape)
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
    return CompressedCheckpoint(model.eval(), network, dataset, calibration)
