"""Models saved as programs rather than Python: a ``torch.export`` file (``.pt2``) or a
TorchScript archive, turned back into the module-level torch.fx graph that compression and
export read.

torch.export records a model as ATen calls on its parameters. Compression and export know a
layer as a module (the Conv2d whose weight the codebook replaces), so each ATen call that is a
layer becomes that layer again, named by its weight's path in the original model
(``features.0.0``), and each stateless call becomes the torch function or module it comes
from. A call with no such equivalent stays as it is, for export to reject by name and source
line. TorchScript goes through torch's own converter to torch.export first, which needs an
example input.
"""

from __future__ import annotations

import functools
import logging
import operator
import warnings
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch import fx, nn

from vq4all.golden.errors import InputError

__all__ = ["PROGRAM_SUFFIXES", "capture", "load_program", "modules_of"]

#: Suffixes of model programs: torch.export's, then TorchScript's usual ones.
PROGRAM_SUFFIXES = (".pt2", ".pt", ".pth", ".ts", ".jit")

aten = torch.ops.aten


def load_program(path: str | Path, input_shape: tuple[int, ...] | None = None) -> fx.GraphModule:
    """The model of torch.export file or TorchScript archive ``path`` as a module-level graph
    (see :func:`modules_of`), in eval mode. TorchScript needs ``input_shape`` ``[C, H, W]``.

    Raises ``ValueError`` naming the file when it is neither, or cannot be converted."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a torch.export or TorchScript file (not a zip archive)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any("/code/" in name for name in names):
        return modules_of(_from_torchscript(path, input_shape)).eval()
    if any(
        "/models/" in name or name.endswith("serialized_exported_program.json") for name in names
    ):
        try:
            program = torch.export.load(path)
        except Exception as error:
            raise InputError(f"{path}: torch.export.load failed: {_first_line(error)}") from None
        return modules_of(program).eval()
    raise InputError(
        f"{path}: holds neither a torch.export program nor TorchScript (a state dict? give the "
        "model as file.py:factory with --weights)"
    )


def capture(model: nn.Module, example: torch.Tensor) -> fx.GraphModule:
    """``model`` captured by ``torch.export`` at ``example`` inputs (a batch of them; the batch
    size stays free), as the module-level graph of :func:`modules_of`, in eval mode.

    torch.export records what the model computes, not how its Python is written: a Conv2d
    subclass with its own ``forward`` is the convolution it calls, control flow on a Python
    argument is the branch taken, and ``x.size(0)`` is the batch, which keeps no value alive.
    A model that torch.export cannot capture falls back to torch.fx's symbolic tracing
    (:func:`vq4all.model.graph.trace`), with a warning that says why.
    """
    from vq4all.model.graph import trace

    if isinstance(model, fx.GraphModule):  # a graph already (a .pt2 file's, or captured)
        return model
    model = model.eval()
    example = example[:2] if len(example) > 1 else torch.cat([example, example])
    batch = torch.export.Dim("batch", min=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on its own internals
            program = torch.export.export(
                model, (example,), dynamic_shapes=({0: batch},), strict=False
            )
    except Exception as error:  # torch.export raises many kinds; all mean the same here
        warnings.warn(
            f"{type(model).__name__}: torch.export could not capture it "
            f"({_first_line(error)}); traced with torch.fx instead",
            stacklevel=2,
        )
        return trace(model)
    return modules_of(program).eval()


def _from_torchscript(path: Path, input_shape: tuple[int, ...] | None):
    if input_shape is None:
        raise InputError(f"{path}: a TorchScript model needs its input shape (--input-shape C,H,W)")
    from torch._export.converter import TS2EPConverter  # torch's own, not yet public

    # The converter warns about every deprecated TorchScript API it reads: none is the user's.
    quiet = logging.getLogger("torch._export")
    level = quiet.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quiet.setLevel(logging.ERROR)
            scripted = torch.jit.load(str(path), map_location="cpu")
            return TS2EPConverter(scripted, (torch.zeros(1, *input_shape),)).convert()
    except Exception as error:
        raise InputError(
            f"{path}: TorchScript could not be converted: {_first_line(error)}"
        ) from None
    finally:
        quiet.setLevel(level)


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"


def modules_of(program: torch.export.ExportedProgram) -> fx.GraphModule:
    """The graph of ``program`` with its layers as modules (Conv2d, Linear, BatchNorm,
    LayerNorm, max and average pooling) and its stateless ATen calls as the torch functions
    they come from; dropout and copies are dropped, shape guards too (the graph then takes any
    batch size: a reshape of the batch reads it as ``-1``)."""
    source = program.module()
    graph = fx.Graph()
    root: dict[str, object] = {}
    env: dict[fx.Node, fx.Node] = {}

    def value(node: fx.Node) -> fx.Node:
        if node not in env and node.op == "get_attr":  # a tensor that an unconverted op reads
            env[node] = graph.get_attr(node.target)
            root[node.target] = _attribute(source, node.target)
        return env[node]

    for node in source.graph.nodes:
        if node.op == "placeholder":
            env[node] = graph.placeholder(node.name)
        elif node.op == "output":
            outputs = node.args[0]  # torch.export returns a flat tuple: one tensor is the tensor
            single = isinstance(outputs, (tuple, list)) and len(outputs) == 1
            graph.output(fx.map_arg(outputs[0] if single else outputs, value))
        elif node.op == "call_function":
            converted = _convert(graph, node, source, root, value)
            if converted is None:
                converted = graph.node_copy(node, value)  # with its meta
            elif not converted.meta:  # a new node has the call's source; a passed input, its own
                converted.meta = dict(node.meta)
            env[node] = converted
        # get_attr nodes are made where they are read; call_module is torch.export's shape guard
    module = fx.GraphModule(root, graph, class_name="ExportedModel")
    module.graph.eliminate_dead_code()
    module.delete_all_unused_submodules()
    module.recompile()
    return module


def _attribute(source: nn.Module, target: str) -> torch.Tensor:
    return functools.reduce(getattr, target.split("."), source)


def _layer_name(weight: fx.Node, node: fx.Node) -> str:
    """A layer's module path: its weight's (``features.0.0.weight`` -> ``features.0.0``)."""
    return weight.target.rpartition(".")[0] or node.name


def _tensor(node: fx.Node, source: nn.Module) -> torch.Tensor | None:
    return _attribute(source, node.target).detach().clone() if node is not None else None


def _convert(graph, node: fx.Node, source, root, value) -> fx.Node | None:
    """The node that stands for ATen call ``node`` in the new graph, or None to copy it."""
    target, args = node.target, list(node.args)
    x = value(args[0]) if args and isinstance(args[0], fx.Node) else None
    if target is aten.conv1d.default:
        return _conv1d(graph, node, source, root, x, args)
    if target in (aten.conv2d.default, aten.convolution.default):
        if target is aten.convolution.default:
            if args[6]:  # transposed
                return None
            args = [*args[:6], args[8]]
        return _layer(graph, node, source, root, x, args, _conv2d)
    if target is aten.linear.default:
        return _layer(graph, node, source, root, x, args, _linear)
    if target is aten.batch_norm.default:
        return _layer(graph, node, source, root, x, args, _batch_norm)
    if target is aten.layer_norm.default:
        return _layer(graph, node, source, root, x, args, _layer_norm)
    if target in (aten.dropout.default, aten.clone.default, aten.alias.default):
        return x
    if target in (aten.max_pool2d.default, aten.avg_pool2d.default):
        name = node.name
        root[name] = _pooling(target, args[1:])
        return graph.call_module(name, (x,))
    functions = {
        aten.relu.default: torch.relu,
        aten.relu6.default: F.relu6,
        aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
        aten.mean.dim: torch.mean,
        aten.flatten.using_ints: torch.flatten,
        aten.clamp.default: torch.clamp,
    }
    if target in functions:
        return graph.call_function(functions[target], (x, *args[1:]))
    if target is aten.hardtanh.default:
        low, high = (args[1:] + [-1.0, 1.0][len(args) - 1 :])[:2]
        if (low, high) == (0, 6):
            return graph.call_function(F.relu6, (x,))
        return graph.call_function(torch.clamp, (x, low, high))
    if (
        target is aten.add.Tensor
        and len(args) == 2
        and isinstance(args[1], fx.Node)
        and not node.kwargs
    ):
        return graph.call_function(operator.add, (x, value(args[1])))
    if target in (aten.view.default, aten.reshape.default, aten._unsafe_view.default):
        before, after = args[0].meta.get("val"), node.meta.get("val")
        flat = before is not None and after is not None and after.dim() == 2 and before.dim() >= 2
        if flat and after.shape[0] == before.shape[0]:  # the batch kept: a flatten
            return graph.call_function(torch.flatten, (x, 1))
        if after is not None:
            return _batch_free_reshape(graph, x, after)
    return None


def _batch_free_reshape(graph, x, after) -> fx.Node | None:
    """A reshape to ``after``'s shape whose one symbolic size (the batch, read from the input
    with ``x.size(0)``) is ``-1``: it then reads no size off another value, which would keep
    that value alive to here and merge the distillation stages in between."""
    symbolic = [k for k, size in enumerate(after.shape) if not isinstance(size, int)]
    if len(symbolic) != 1:
        return None
    sizes = [-1 if k == symbolic[0] else size for k, size in enumerate(after.shape)]
    return graph.call_function(torch.reshape, (x, sizes))


def _conv1d(graph, node, source, root, x, args) -> fx.Node | None:
    """A Conv1d as a Conv2d of height 1 between an unsqueeze and a squeeze: the accelerator
    runs it as it runs any convolution."""
    wide = graph.call_function(torch.unsqueeze, (x, 2))
    _, weight, bias, stride, padding, dilation, groups = (
        args + [None, [1], [0], [1], 1][len(args) - 2 :]
    )[:7]
    if isinstance(padding, str):
        return None
    pair = [1, *stride], [0, *padding], [1, *dilation]
    conv = _layer(graph, node, source, root, wide, [x, weight, bias, *pair, groups], _conv2d)
    if conv is None:
        graph.erase_node(wide)
        return None
    return graph.call_function(torch.squeeze, (conv, 2))


def _layer(graph, node, source, root, x, args, build) -> fx.Node | None:
    """A layer module built by ``build(node args, tensors)`` from ``node``, whose parameters
    (every tensor argument after the input) are attributes of the program."""
    tensors = [arg for arg in args[1:] if isinstance(arg, fx.Node)]
    if not tensors or any(arg.op != "get_attr" for arg in tensors):
        return None  # computed weights: no layer of the codebook's
    module = build(args, lambda node: _tensor(node, source))
    if module is None:
        return None
    name = _layer_name(tensors[0], node)
    root[name] = module
    return graph.call_module(name, (x,))


def _conv2d(args, tensor) -> nn.Conv2d | None:
    _, weight, bias, stride, padding, dilation, groups = (
        args + [None, 1, 0, 1, 1][len(args) - 2 :]
    )[:7]
    weight, bias = tensor(weight), tensor(bias)
    if isinstance(padding, str):
        return None
    if weight.dim() == 3:  # a Conv1d's, as a Conv2d of height 1
        weight = weight[:, :, None, :]
    if weight.dim() != 4:
        return None
    conv = nn.Conv2d(
        weight.shape[1] * groups,
        weight.shape[0],
        tuple(weight.shape[2:]),
        stride,
        padding,
        dilation,
        groups,
        bias=bias is not None,
    )
    conv.weight = nn.Parameter(weight)
    if bias is not None:
        conv.bias = nn.Parameter(bias)
    return conv


def _linear(args, tensor) -> nn.Linear:
    weight = tensor(args[1])
    bias = tensor(args[2]) if len(args) > 2 else None
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight = nn.Parameter(weight)
    if bias is not None:
        linear.bias = nn.Parameter(bias)
    return linear


def _batch_norm(args, tensor) -> nn.Module | None:
    """``nn.BatchNorm2d`` (or 1d, by the input's rank) in eval mode."""
    x, weight, bias, mean, var, training, _, eps = args[:8]
    value = x.meta.get("val") if isinstance(x, fx.Node) else None
    rank = value.dim() if value is not None else 4
    if training or any(arg is None for arg in (weight, bias, mean, var)):
        return None
    weight = tensor(weight)
    norm = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(len(weight), eps=eps)
    norm.weight, norm.bias = nn.Parameter(weight), nn.Parameter(tensor(bias))
    norm.running_mean, norm.running_var = tensor(mean), tensor(var)
    return norm.eval()


def _layer_norm(args, tensor) -> nn.LayerNorm | None:
    """``nn.LayerNorm`` with its gain and offset (both, or none: no layer then)."""
    _, shape, weight, bias, eps = (args + [None, None, 1e-5][len(args) - 2 :])[:5]
    if weight is None or bias is None:
        return None
    norm = nn.LayerNorm(shape, eps=eps)
    norm.weight, norm.bias = nn.Parameter(tensor(weight)), nn.Parameter(tensor(bias))
    return norm


def _pooling(target, args) -> nn.Module:
    """``nn.MaxPool2d`` or ``nn.AvgPool2d`` of an ATen call's arguments after the input."""
    args = [tuple(arg) if isinstance(arg, list) else arg for arg in args]
    if target is aten.max_pool2d.default:
        kernel, stride, padding, dilation, ceil = (args + [[], 0, 1, False][len(args) - 1 :])[:5]
        return nn.MaxPool2d(kernel, stride or None, padding, dilation, ceil_mode=ceil)
    kernel, stride, padding, ceil, include_pad, divisor = (
        args + [[], 0, False, True, None][len(args) - 1 :]
    )[:6]
    return nn.AvgPool2d(kernel, stride or None, padding, ceil, include_pad, divisor)
