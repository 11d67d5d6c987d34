"""What each node of a model's graph is in a network program: one classification, read by the
export (:mod:`vq4all.model.export`) and by the check that runs before compression.

A node is a layer, a residual add, a ReLU, or a host op of :mod:`vq4all.golden.network`, or it
has no integer equivalent (:func:`kind` gives None). Graphs come from torch.export (ATen calls,
see :mod:`vq4all.model.program`) or from torch.fx's tracing (modules, torch functions and
tensor methods): both spellings of each op are here.
"""

from __future__ import annotations

import math
import operator

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch import fx, nn

__all__ = [
    "ELEMENTWISE",
    "elementwise_function",
    "is_shape_query",
    "kind",
    "relu_ceiling",
]

aten = torch.ops.aten

#: Calls that pass their input through unchanged in evaluation.
IDENTITIES = {
    F.dropout,
    "contiguous",
    "detach",
    aten.dropout.default,
    aten.clone.default,
    aten.alias.default,
    aten.contiguous.default,
    aten.detach.default,
    aten.lift_fresh_copy.default,
}
#: Reshapes in row-major order (flatten, unflatten, unsqueeze, squeeze, view): the output's
#: shape says which.
RESHAPES = {
    torch.flatten,
    torch.reshape,
    torch.unsqueeze,
    torch.squeeze,
    "flatten",
    "view",
    "reshape",
    "unsqueeze",
    "squeeze",
    aten.view.default,
    aten.reshape.default,
    aten._unsafe_view.default,
    aten.unsqueeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.squeeze.default,
    aten.flatten.using_ints,
    aten.unflatten.int,
}
PERMUTES = {
    torch.permute,
    torch.transpose,
    "permute",
    "transpose",
    aten.permute.default,
    aten.transpose.int,
}
SLICES = {aten.slice.Tensor, aten.select.int, aten.narrow.default}
PADS = {F.pad, aten.pad.default, aten.constant_pad_nd.default}
CONCATS = {torch.cat, aten.cat.default}
MULS = {operator.mul, torch.mul, "mul", aten.mul.Tensor}
ADDS = {operator.add, torch.add, aten.add.Tensor}
#: Elementwise functions of one value, each a lookup table over its codes.
ELEMENTWISE = {
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.gelu: "gelu",
    F.silu: "silu",
    F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid",
    F.hardtanh: "hardtanh",
    F.elu: "elu",
    F.leaky_relu: "leaky_relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    aten.sigmoid.default: "sigmoid",
    aten.tanh.default: "tanh",
    aten.gelu.default: "gelu",
    aten.silu.default: "silu",
    aten.hardswish.default: "hardswish",
    aten.hardsigmoid.default: "hardsigmoid",
    aten.hardtanh.default: "hardtanh",
    aten.elu.default: "elu",
    aten.leaky_relu.default: "leaky_relu",
    aten.relu6.default: "relu6",
    F.relu6: "relu6",
    torch.clamp: "clamp",
    "clamp": "clamp",
    aten.clamp.default: "clamp",
    aten.neg.default: "neg",
    aten.abs.default: "abs",
    aten.exp.default: "exp",
}
#: Arithmetic that is elementwise when one side is a number: ``x * 0.5``, ``x / 6 + 3``.
SCALAR_ARITHMETIC = {
    operator.mul: "mul",
    operator.truediv: "div",
    operator.add: "add",
    operator.sub: "sub",
    torch.mul: "mul",
    torch.add: "add",
    torch.div: "div",
    "mul": "mul",
    "div": "div",
    "add": "add",
    "sub": "sub",
    aten.mul.Tensor: "mul",
    aten.mul.Scalar: "mul",
    aten.div.Tensor: "div",
    aten.div.Scalar: "div",
    aten.add.Tensor: "add",
    aten.add.Scalar: "add",
    aten.sub.Tensor: "sub",
    aten.sub.Scalar: "sub",
    aten.rsub.Scalar: "rsub",
    aten.pow.Tensor_Scalar: "pow",
}
ELEMENTWISE_MODULES = {
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Hardswish: "hardswish",
    nn.Hardsigmoid: "hardsigmoid",
    nn.Hardtanh: "hardtanh",
    nn.ELU: "elu",
    nn.LeakyReLU: "leaky_relu",
}
GLOBAL_AVERAGES = {F.adaptive_avg_pool2d, torch.mean, "mean"}
LAYER_NORMS = {F.layer_norm, aten.layer_norm.default}
SOFTMAXES = {F.softmax, torch.softmax, "softmax", aten.softmax.int, aten._softmax.default}
MATMULS = {torch.matmul, operator.matmul, "matmul", aten.matmul.default, aten.bmm.default}
#: Functions that are a ReLU, and the value each clamps at from above.
RELU_FUNCTIONS = {torch.relu: math.inf, F.relu: math.inf, aten.relu.default: math.inf}


def relu_ceiling(node: fx.Node, module: nn.Module | None) -> float | None:
    """The value ``node`` clamps at from above if it is a ReLU (``inf``), a ReLU6 or a clamp at
    0 and 6 (6); None if it is neither. A ReLU6 fuses into the requantization before it as a
    ReLU: the value it is fused into saturates at the calibrated peak, which is at most 6."""
    if module is not None:
        return {nn.ReLU: math.inf, nn.ReLU6: 6.0}.get(type(module))
    if node.op == "call_method" and node.target == "relu":
        return math.inf
    if node.target in RELU_FUNCTIONS:
        return RELU_FUNCTIONS[node.target]
    if node.target in (F.relu6, aten.relu6.default):
        return 6.0
    if node.target in (
        torch.clamp,
        "clamp",
        "clamp_min",
        aten.clamp.default,
        aten.hardtanh.default,
    ):
        low = node.kwargs.get("min", node.args[1] if len(node.args) > 1 else None)
        high = node.kwargs.get("max", node.args[2] if len(node.args) > 2 else None)
        if node.target is aten.hardtanh.default:
            low, high = (low, high) if len(node.args) > 2 else (-1.0, 1.0)
        if low == 0 and high in (None, 6):
            return math.inf if high is None else 6.0
    return None


def is_shape_query(node: fx.Node) -> bool:
    """``x.size()``, ``x.dim()``, ``x.shape``, torch.export's ``sym_size``, or arithmetic on or
    an item of one of them: a Python number, no value of the program."""
    if node.op == "call_method":
        return node.target in ("size", "dim")
    if node.op != "call_function":
        return False
    if node.target is getattr:
        return node.args[1] == "shape"
    if node.target in (aten.sym_size.int, aten.sym_numel.default):
        return True
    inputs = node.all_input_nodes
    return (
        node.target in (operator.getitem, operator.mul, operator.floordiv, operator.add)
        and bool(inputs)
        and all(is_shape_query(source) for source in inputs)
    )


def _tensor_inputs(node: fx.Node, is_tensor) -> list[fx.Node]:
    return [source for source in node.all_input_nodes if is_tensor(source)]


def elementwise_function(node: fx.Node, module: nn.Module | None, is_tensor) -> str | None:
    """The name of the elementwise function of one value that ``node`` computes (a lookup
    table's), or None."""
    if len(_tensor_inputs(node, is_tensor)) != 1 or relu_ceiling(node, module) == math.inf:
        return None
    if module is not None:
        return ELEMENTWISE_MODULES.get(type(module)) or (
            "relu6" if isinstance(module, nn.ReLU6) else None
        )
    if node.op == "call_module":
        return None
    target = node.target
    if target in ELEMENTWISE:
        return ELEMENTWISE[target]
    if target in SCALAR_ARITHMETIC:
        numbers = [
            arg for arg in (*node.args, *node.kwargs.values()) if not isinstance(arg, fx.Node)
        ]
        if all(isinstance(number, (int, float)) for number in numbers):
            return SCALAR_ARITHMETIC[target]
    return None


def kind(node: fx.Node, module: nn.Module | None, is_tensor, weighted) -> str | None:
    """What ``node`` is in a network program: ``"layer"``, ``"add"``, ``"relu"``,
    ``"identity"``, ``"reshape"``, ``"permute"``, ``"slice"``, ``"pad"``, ``"concat"``,
    ``"mul"``, ``"matmul"``, ``"lookup"``, ``"affine"``, ``"layernorm"``, ``"softmax"``,
    ``"average"`` (global or windowed pooling by the
    shapes), ``"maxpool"``, ``"shape"`` (a Python number), ``"input"``, ``"output"``; None
    when it has no integer equivalent. ``is_tensor(node)`` says whether a node's value is a
    tensor; ``weighted(module)`` whether a module is a layer the accelerator runs."""
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    if not is_tensor(node):
        return "shape" if is_shape_query(node) else None
    tensors = _tensor_inputs(node, is_tensor)
    target = node.target
    if module is not None:
        if weighted(module):
            return "layer"
        if isinstance(module, (nn.Dropout, nn.Identity)):
            return "identity"
        if relu_ceiling(node, module) is not None:
            return "relu"
        if isinstance(module, (nn.Flatten, nn.Unflatten)):
            return "reshape"
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return "affine"
        if isinstance(module, nn.LayerNorm):
            return "layernorm"
        if isinstance(module, nn.Softmax):
            return "softmax"
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
            return "average"
        if isinstance(module, nn.MaxPool2d):
            return "maxpool"
        if isinstance(module, (nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)):
            return "pad" if module.value == 0 else None
        return "lookup" if elementwise_function(node, module, is_tensor) else None
    if node.op == "call_module":
        return None
    if target in ADDS and len(tensors) == 2 and not node.kwargs and len(node.args) == 2:
        return "add"
    if target in MULS and len(tensors) == 2:
        return "mul"
    if target in MATMULS:
        return "matmul"
    if target in LAYER_NORMS:
        return "layernorm"
    if target in SOFTMAXES:
        return "softmax"
    if target in CONCATS:
        return "concat"
    if relu_ceiling(node, None) is not None:
        return "relu"
    if target in IDENTITIES:
        return "identity"
    if target in RESHAPES:
        return "reshape"
    if target in PERMUTES:
        return "permute"
    if target in SLICES:
        return "slice"
    if target in PADS:
        return "pad"
    if (
        target in GLOBAL_AVERAGES
        or target is aten.adaptive_avg_pool2d.default
        or target is aten.mean.dim
    ):
        return "average"
    if elementwise_function(node, None, is_tensor):
        return "lookup"
    return None
