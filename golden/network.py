"""The network program: compressed layers plus the host-side integer ops between them, and its
bit-exact golden inference.

A program is a list of ops. Value 0 is the input, quantized on the host as
``clamp(floor(x / input_scale + 0.5), -128, 127)``; op ``i`` produces value ``i + 1`` from the
value(s) it names. Every value is an int8 tensor with a float scale. The ops:

``layer``
    Layer program ``layer`` (linear or conv2d, see :mod:`golden.numerics`) on value ``input``;
    its ``input_scale`` must be that value's scale, its output has ``output_scale``.
``maxpool2d``
    ``kernel``/``stride`` max pooling: exact on integers, scale unchanged.
``flatten``
    ``[B, C, H, W] -> [B, C*H*W]`` in row-major order, scale unchanged.
``relu``
    ``max(x, 0)``, scale unchanged.
``add``
    Residual add of values ``inputs = [a, b]`` into ``scale``:
    ``clamp((a * mult[0] + b * mult[1] + 2**(shift-1)) >> shift, relu ? 0 : -128, 127)``,
    with the same ranges as a layer's requantization.

The file is safetensors (``format = vq4all.network``): layer ``k``'s arrays are tensors
``layers.<k>.<name>``; metadata ``layers`` (a JSON list of each layer's fields), ``graph`` (the
ops), ``input_scale``, ``input_shape``, ``codebook_sha256`` and ``payload_sha256``. Loading
validates every field and runs the graph once on zeros of ``input_shape``, so that shapes that
do not add up are an error naming the op, not a wrong answer later.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np
import safetensors.numpy
import torch

from golden.artifacts import (
    ArtifactError,
    Codebook,
    LayerProgram,
    layer_fields,
    layer_from_fields,
    payload_sha256,
    read_verified,
    write_atomically,
)
from golden.layer import run_layer
from golden.numerics import MULT_MAX, SHIFT_MAX, SHIFT_MIN, requantize

__all__ = [
    "NETWORK_FORMAT",
    "NetworkProgram",
    "load_network",
    "predictions",
    "quantize_input",
    "run_network",
    "save_network",
]

NETWORK_FORMAT = "vq4all.network"
FORMAT_VERSION = "1"
OPS = ("layer", "maxpool2d", "flatten", "relu", "add")


@dataclass(frozen=True)
class NetworkProgram:
    """Layers, the op graph between them, and the input quantization (see the module doc)."""

    codebook_sha256: str
    input_scale: float
    input_shape: tuple[int, ...]
    layers: list[LayerProgram]
    graph: list[dict]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.input_scale) and self.input_scale > 0):
            raise ArtifactError(
                f"<memory>: field 'input_scale': {self.input_scale!r} is not positive"
            )
        if not self.input_shape or not all(
            isinstance(size, int) and size > 0 for size in self.input_shape
        ):
            raise ArtifactError(
                f"<memory>: field 'input_shape': {list(self.input_shape)!r} is not a list of "
                "positive sizes"
            )
        for k, layer in enumerate(self.layers):
            if layer.codebook_sha256 != self.codebook_sha256:
                raise ArtifactError(
                    f"<memory>: field 'layers[{k}].codebook_sha256': differs from the network's"
                )
        for i, op in enumerate(self.graph):
            _check_op(i, op, len(self.layers))

    def scales(self) -> list[float]:
        """The scale of every value: the input's, then each op's output."""
        scales = [self.input_scale]
        for i, op in enumerate(self.graph):
            if op["op"] == "layer":
                layer = self.layers[op["layer"]]
                if layer.input_scale != scales[op["input"]]:
                    raise ArtifactError(
                        f"<memory>: field 'graph[{i}]': layer {op['layer']} expects input scale "
                        f"{layer.input_scale!r}, value {op['input']} has {scales[op['input']]!r}"
                    )
                scales.append(layer.output_scale)
            elif op["op"] == "add":
                scales.append(op["scale"])
            else:
                scales.append(scales[op["input"]])
        return scales


def _check_op(i: int, op: dict, layer_count: int) -> None:
    where = f"<memory>: field 'graph[{i}]'"
    kind = op.get("op")
    if kind not in OPS:
        raise ArtifactError(f"{where}: op {kind!r} is not one of {OPS}")
    sources = op.get("inputs") if kind == "add" else [op.get("input")]
    if not isinstance(sources, list) or not all(
        isinstance(s, int) and 0 <= s <= i for s in sources
    ):
        raise ArtifactError(f"{where}: inputs {sources!r} must name earlier values (0..{i})")
    if kind == "layer" and not (
        isinstance(op.get("layer"), int) and 0 <= op["layer"] < layer_count
    ):
        raise ArtifactError(f"{where}: layer {op.get('layer')!r} is not in [0, {layer_count})")
    if kind == "add":
        mult, shift = op.get("mult"), op.get("shift")
        if len(sources) != 2 or not (isinstance(mult, list) and len(mult) == 2):
            raise ArtifactError(f"{where}: add takes two inputs and two multipliers")
        if not all(0 <= m <= MULT_MAX for m in mult) or not SHIFT_MIN <= shift <= SHIFT_MAX:
            raise ArtifactError(f"{where}: mult {mult} or shift {shift} out of range")
        if not (math.isfinite(op.get("scale", float("nan"))) and op["scale"] > 0):
            raise ArtifactError(f"{where}: scale {op.get('scale')!r} is not positive")
    if kind == "maxpool2d" and not (
        len(op.get("kernel", [])) == 2 and len(op.get("stride", [])) == 2
    ):
        raise ArtifactError(f"{where}: maxpool2d needs a 2-D kernel and stride")


def quantize_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """The host's input quantization: ``clamp(floor(x / scale + 0.5), -128, 127)`` as int8."""
    return torch.floor(x.to(torch.float64) / scale + 0.5).clamp(-128, 127).to(torch.int8)


def _run_op(
    codebook: Codebook, program: NetworkProgram, op: dict, values: list[torch.Tensor]
) -> torch.Tensor:
    kind = op["op"]
    if kind == "add":
        # The same rounding and saturation as a layer, on a * mult[0] + b * mult[1].
        a, b = (values[s].to(torch.int64) for s in op["inputs"])
        total = a * op["mult"][0] + b * op["mult"][1]
        return requantize(total, torch.tensor(1), torch.tensor(op["shift"]), bool(op.get("relu")))
    x = values[op["input"]]
    if kind == "layer":
        return torch.from_numpy(run_layer(codebook, program.layers[op["layer"]], x.numpy()))
    if kind == "maxpool2d":
        # int8 values are exact in float64; max pooling only compares them.
        pooled = torch.nn.functional.max_pool2d(x.to(torch.float64), op["kernel"], op["stride"])
        return pooled.to(torch.int8)
    if kind == "flatten":
        return x.reshape(x.shape[0], -1)
    return x.clamp_min(0)  # relu


def run_network(codebook: Codebook, program: NetworkProgram, x: torch.Tensor) -> torch.Tensor:
    """int8 outputs of the network on float inputs ``x [B, *input_shape]``.

    Raises ``ValueError`` for inputs of the wrong shape, and :class:`ArtifactError` naming the
    op (``graph[i]``) whose shapes do not add up.
    """
    if tuple(x.shape[1:]) != tuple(program.input_shape):
        raise ValueError(
            f"inputs of shape {tuple(x.shape[1:])} do not match input_shape {program.input_shape}"
        )
    values = [quantize_input(x, program.input_scale)]
    for i, op in enumerate(program.graph):
        try:
            values.append(_run_op(codebook, program, op, values))
        except (ValueError, RuntimeError) as error:
            raise ArtifactError(f"<memory>: field 'graph[{i}]': {op['op']}: {error}") from None
    return values[-1]


def save_network(path: str | os.PathLike, program: NetworkProgram) -> None:
    """Write ``program`` to ``path`` atomically."""
    tensors, layers = {}, []
    for k, layer in enumerate(program.layers):
        arrays, metadata = layer_fields(layer)
        tensors |= {f"layers.{k}.{name}": array for name, array in arrays.items()}
        layers.append(metadata)
    metadata = {
        "format": NETWORK_FORMAT,
        "version": FORMAT_VERSION,
        "codebook_sha256": program.codebook_sha256,
        "input_scale": repr(program.input_scale),
        "input_shape": json.dumps(list(program.input_shape)),
        "layers": json.dumps(layers),
        "graph": json.dumps(program.graph),
        "payload_sha256": payload_sha256(tensors),
    }
    write_atomically(path, safetensors.numpy.save(tensors, metadata=metadata))


def _field_float(path, metadata: dict, name: str) -> float:
    try:
        return float(metadata[name])
    except KeyError:
        raise ArtifactError(f"{path}: field {name!r} is missing") from None
    except ValueError as error:
        raise ArtifactError(f"{path}: field {name!r}: {error}") from None


def _json(path, metadata: dict, name: str):
    try:
        return json.loads(metadata[name])
    except KeyError:
        raise ArtifactError(f"{path}: field {name!r} is missing") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: field {name!r}: not JSON ({error})") from None


def load_network(path: str | os.PathLike, codebook: Codebook | None = None) -> NetworkProgram:
    """Read and validate a network program (and check it against ``codebook``).

    Raises :class:`ArtifactError` naming the file and the field: corrupted or truncated
    files, bad layers (``layers[k].<field>``), bad ops or shapes (``graph[i]``), and a
    codebook hash that does not match.
    """
    tensors, metadata = read_verified(path, NETWORK_FORMAT)
    layer_metadata = _json(path, metadata, "layers")
    layers = []
    for k, fields in enumerate(layer_metadata):
        arrays = {
            name[len(f"layers.{k}.") :]: a
            for name, a in tensors.items()
            if name.startswith(f"layers.{k}.")
        }
        layers.append(layer_from_fields(path, arrays, fields, prefix=f"layers[{k}]."))
    try:
        program = NetworkProgram(
            codebook_sha256=metadata.get("codebook_sha256", ""),
            input_scale=_field_float(path, metadata, "input_scale"),
            input_shape=tuple(_json(path, metadata, "input_shape")),
            layers=layers,
            graph=_json(path, metadata, "graph"),
        )
        program.scales()
        if codebook is not None:
            for layer in program.layers:
                layer.check_codebook(codebook)
            run_network(codebook, program, torch.zeros(1, *program.input_shape))
    except ArtifactError as error:
        raise ArtifactError(str(error).replace("<memory>", str(path), 1)) from None
    return program


def predictions(
    codebook: Codebook, program: NetworkProgram, x: torch.Tensor, batch: int = 256
) -> np.ndarray:
    """Class predictions: the argmax of the int8 output (the first of equal maxima), computed
    ``batch`` images at a time (im2col of a whole data set would not fit in memory)."""
    outputs = [run_network(codebook, program, x[i : i + batch]) for i in range(0, len(x), batch)]
    return torch.cat(outputs).to(torch.int64).argmax(dim=1).numpy()
