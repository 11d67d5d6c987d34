"""Compressed-network checkpoints: a zoo network's VQ state after compression, so that
``vq4all compress`` and ``vq4all export`` can run apart. Safetensors, written atomically."""

from __future__ import annotations

import json
import os

import safetensors.torch
from torch import nn

from golden.artifacts import ArtifactError, Codebook, write_atomically
from model.vq import prepare_vq, vq_layers
from model.zoo import build

__all__ = ["load_compressed", "save_compressed"]

CHECKPOINT_FORMAT = "vq4all.compressed"


def save_compressed(
    path: str | os.PathLike,
    model: nn.Module,
    network: str,
    shape,
    codebook: Codebook,
    candidates: int,
) -> None:
    """Save compressed zoo network ``network`` (input ``shape``) built against ``codebook``."""
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "network": network,
        "input_shape": json.dumps(list(shape)),
        "codebook_sha256": codebook.sha256,
        "candidates": str(candidates),
    }
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    write_atomically(path, safetensors.torch.save(state, metadata=metadata))


def load_compressed(path: str | os.PathLike, codebook: Codebook) -> tuple[nn.Module, str]:
    """The compressed model and its zoo name; raises ``ArtifactError`` naming the file and field."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
            state = {name: reader.get_tensor(name) for name in reader.keys()}
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ArtifactError(f"{path}: not a readable safetensors file ({error})") from None
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ArtifactError(
            f"{path}: field 'format': {metadata.get('format')!r} is not {CHECKPOINT_FORMAT!r}"
        )
    if metadata.get("codebook_sha256") != codebook.sha256:
        raise ArtifactError(f"{path}: field 'codebook_sha256': compressed against another codebook")
    fields = {}
    for name, parse in (("input_shape", lambda t: tuple(json.loads(t))), ("candidates", int)):
        try:
            fields[name] = parse(metadata[name])
        except (KeyError, ValueError, TypeError) as error:
            raise ArtifactError(f"{path}: field {name!r}: missing or malformed ({error})") from None
    try:
        template = build(metadata.get("network", ""), fields["input_shape"])
    except ValueError as error:
        raise ArtifactError(f"{path}: field 'network': {error}") from None
    candidates = fields["candidates"]
    model = prepare_vq(template, codebook, candidates)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ArtifactError(f"{path}: field 'state': {str(error).splitlines()[0]}") from None
    for layer in vq_layers(model).values():
        if not bool(layer.frozen.all()):
            raise ArtifactError(f"{path}: field 'frozen': the network is not fully compressed")
    return model.eval(), metadata["network"]
