"""A user's own network and data, from files: the model from a Python file and the name of a
factory in it (with a weights file) or from a torch.export or TorchScript file, the data from a
tensor file or a folder of images.

A model is named ``path/to/file.py:factory`` or ``path/to/model.pt2`` (what a compressed
checkpoint records, so that it can be rebuilt) or by a zoo name. Errors name the file and what
is wrong with it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import safetensors.numpy
import safetensors.torch
import torch
from torch import nn

from vq4all.golden.errors import InputError
from vq4all.model.program import PROGRAM_SUFFIXES, load_program

__all__ = [
    "IMAGE_SUFFIXES",
    "absolute_spec",
    "is_model_file",
    "load_images",
    "load_model",
    "load_weights",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: Keys a tensor file may hold its images and labels under.
IMAGE_KEYS = ("images", "x")
LABEL_KEYS = ("labels", "y")


def is_model_file(spec: str) -> bool:
    """Whether ``spec`` names a Python file and factory (``file.py:factory``) or a model
    program file (torch.export's ``.pt2``, TorchScript), not a zoo network."""
    path, _, factory = spec.rpartition(":")
    return (path.endswith(".py") and bool(factory)) or spec.endswith(PROGRAM_SUFFIXES)


def absolute_spec(spec: str) -> str:
    """Model file ``spec`` with its file's absolute path."""
    if spec.endswith(PROGRAM_SUFFIXES):
        return os.path.abspath(spec)
    path, _, factory = spec.rpartition(":")
    return f"{os.path.abspath(path)}:{factory}"


def load_model(spec: str, input_shape: tuple[int, ...] | None = None) -> nn.Module:
    """The model that factory ``name`` of Python file ``path`` returns, for ``spec`` =
    ``path:name`` (called with no arguments), or the model of torch.export or TorchScript
    file ``spec`` (TorchScript needs ``input_shape``), in eval mode.

    Raises ``ValueError`` (or ``FileNotFoundError``) naming the file and the factory.
    """
    if spec.endswith(PROGRAM_SUFFIXES):
        return load_program(spec, input_shape)
    path, _, name = spec.rpartition(":")
    if not is_model_file(spec):
        raise InputError(
            f"{spec!r}: a model file is named as path/to/file.py:factory, or is a torch.export "
            f"or TorchScript file ({', '.join(PROGRAM_SUFFIXES)})"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    module_name = f"vq4all_user_{Path(path).stem}"
    loader = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        loader.loader.exec_module(module)
    except Exception as error:
        raise InputError(f"{path}: importing it failed: {type(error).__name__}: {error}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise InputError(f"{path}: has no factory {name!r}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise InputError(f"{path}: {name}() returned a {type(model).__name__}, not an nn.Module")
    return model.eval()


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """``model`` with the state dict of ``path`` (``.safetensors``, or a ``.pt``/``.pth``
    state dict) loaded strictly; raises ``ValueError`` naming the file and the first
    mismatch."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            state = safetensors.torch.load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(f"{path}: not a state dict ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: holds a {type(state).__name__}, not a state dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        reason = " ".join(str(error).split("\n\t")[1:2]) or str(error).splitlines()[0]
        raise InputError(f"{path}: does not fit the model: {reason}") from None
    return model.eval()


def _from_arrays(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    images = next((arrays[key] for key in IMAGE_KEYS if key in arrays), None)
    if images is None and len(arrays) == 1:
        (images,) = arrays.values()
    if images is None:
        raise InputError(
            f"{path}: field 'images': missing (keys {', '.join(sorted(arrays))}; images go "
            f"under {' or '.join(IMAGE_KEYS)}, labels under {' or '.join(LABEL_KEYS)})"
        )
    labels = next((arrays[key] for key in LABEL_KEYS if key in arrays), None)
    return images, labels


def _image_folder(path: Path, shape: tuple[int, ...] | None) -> np.ndarray:
    """Every image of folder ``path`` (sorted by name) resized to ``shape`` ``[C, H, W]``,
    scaled to [0, 1]."""
    from PIL import Image

    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    if shape is None or len(shape) != 3 or shape[0] not in (1, 3):
        raise InputError(f"{path}: a folder of images needs a model input of 1 or 3 channels")
    channels, height, width = shape
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
                array = np.asarray(image, dtype=np.float32) / 255.0
        except OSError as error:
            raise InputError(f"{file}: not a readable image ({error})") from None
        images.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
    return np.stack(images)


def load_images(
    path: str | os.PathLike,
    shape: tuple[int, ...] | None = None,
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images ``[N, C, H, W]`` (float32) and their labels (int64, or None) from a tensor file
    (``.npy``; ``.npz`` or ``.safetensors`` with ``images`` and optional ``labels``) or a
    folder of images (resized to ``shape``, scaled to [0, 1], then ``(x - mean) / std`` for
    ``normalize = (mean, std)``).

    Raises ``ValueError`` naming the file and field for a missing key, a wrong rank, NaN or
    inf, labels that do not match the images, or images of another shape than ``shape``.
    """
    path = Path(path)
    labels = None
    if path.is_dir():
        images = _image_folder(path, shape)
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such data file or folder")
    elif path.suffix == ".npy":
        images = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            images, labels = _from_arrays(path, dict(archive))
    elif path.suffix == ".safetensors":
        images, labels = _from_arrays(path, safetensors.numpy.load_file(str(path)))
    else:
        raise InputError(f"{path}: data is a .npy, .npz or .safetensors file, or a folder")
    if images.ndim != 4 or not np.issubdtype(images.dtype, np.number):
        raise InputError(
            f"{path}: field 'images': {images.dtype} {list(images.shape)} is not [N, C, H, W]"
        )
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        raise InputError(f"{path}: field 'images': contains NaN or inf")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise InputError(
            f"{path}: field 'images': {list(images.shape[1:])} does not match the model's "
            f"input {list(shape)}"
        )
    if normalize is not None:
        mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) for v in normalize)
        images = (images - mean) / std
    if labels is not None:
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"{path}: field 'labels': {labels.dtype} {list(labels.shape)} is not one "
                f"integer label per image ({len(images)})"
            )
        labels = torch.from_numpy(labels.astype(np.int64))
    return torch.from_numpy(images), labels
