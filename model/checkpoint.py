"""Compressed-network checkpoints: a zoo network's VQ state after compression, so that
``vq4all compress`` and ``vq4all export`` can run apart.

An artifact of :mod:`golden.artifacts` (``format = vq4all.compressed``, versioned, with a payload
hash over the state and the metadata): the state dict as tensors; metadata ``network`` (the zoo
name), ``input_shape``, ``codebook_sha256``, ``candidates`` and ``dataset``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from torch import nn

from golden.artifacts import ArtifactError, Codebook, parse_field, read_verified, save_artifact
from model.vq import prepare_vq, vq_layers
from model.zoo import build

__all__ = ["CompressedCheckpoint", "load_compressed", "save_compressed"]

CHECKPOINT_FORMAT = "vq4all.compressed"


@dataclass(frozen=True)
class CompressedCheckpoint:
    """A compressed network rebuilt from its checkpoint: the model (in eval mode), its zoo
    name and the data set it was compressed on."""

    model: nn.Module
    network: str
    dataset: str


def save_compressed(
    path: str | os.PathLike,
    model: nn.Module,
    network: str,
    shape,
    codebook: Codebook,
    candidates: int,
    dataset: str,
) -> None:
    """Save compressed zoo network ``network`` (input ``shape``, data set ``dataset``) built
    against ``codebook`` with ``candidates`` per sub-vector."""
    metadata = {
        "network": network,
        "input_shape": json.dumps(list(shape)),
        "codebook_sha256": codebook.sha256,
        "candidates": str(candidates),
        "dataset": dataset,
    }
    state = {
        name: tensor.detach().contiguous().numpy() for name, tensor in model.state_dict().items()
    }
    save_artifact(path, CHECKPOINT_FORMAT, state, metadata)


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(size) for size in json.loads(text))


def load_compressed(path: str | os.PathLike, codebook: Codebook) -> CompressedCheckpoint:
    """The compressed model of a checkpoint; raises ``ArtifactError`` naming the file and field
    (and ``FileNotFoundError`` for a missing file)."""
    tensors, metadata = read_verified(path, CHECKPOINT_FORMAT)
    if parse_field(path, metadata, "codebook_sha256") != codebook.sha256:
        raise ArtifactError(
            f"{path}: field 'codebook_sha256': compressed against codebook "
            f"{metadata['codebook_sha256'][:16]}..., not {codebook.sha256[:16]}..."
        )
    shape = parse_field(path, metadata, "input_shape", _shape)
    candidates = parse_field(path, metadata, "candidates", int)
    network = parse_field(path, metadata, "network")
    try:
        template = build(network, shape)
    except ValueError as error:
        raise ArtifactError(f"{path}: field 'network': {error}") from None
    model = prepare_vq(template, codebook, candidates)
    try:
        model.load_state_dict(
            {name: torch.from_numpy(array) for name, array in tensors.items()}, strict=True
        )
    except RuntimeError as error:
        raise ArtifactError(f"{path}: field 'state': {str(error).splitlines()[0]}") from None
    for layer in vq_layers(model).values():
        if not bool(layer.frozen.all()):
            raise ArtifactError(f"{path}: field 'frozen': the network is not fully compressed")
    return CompressedCheckpoint(model.eval(), network, parse_field(path, metadata, "dataset"))
