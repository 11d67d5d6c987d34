"""A model's dataflow as torch.fx traces it, for compression and export alike: the tracer,
BatchNorm folding on the traced graph, and the stages between residual joins that distillation
compares.

Tracing keeps torch's own modules (and the caller's ``leaves``, the VQ layers) whole and goes
through every other module, so a model is its real dataflow whatever its Python structure:
an ``nn.Sequential``, a ``forward`` with branches, ``x.view`` and functional calls.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import fx, nn

from vq4all.golden.errors import InputError

__all__ = ["UnsupportedLayerError", "describe", "fold_batchnorm", "source", "stages", "trace"]

#: Layers that hold a GEMM's weights: what a stage starts with.
WEIGHTED = (nn.Linear, nn.Conv2d)


class UnsupportedLayerError(InputError):
    """The model has a layer or an operation that the compressor or the export cannot
    represent."""


class _Tracer(fx.Tracer):
    """Traces through every module but torch's own and ``leaves``, recording the source line
    of each node."""

    def __init__(self, leaves: tuple[type, ...]) -> None:
        super().__init__()
        self.leaves = leaves
        self.record_stack_traces = True

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, self.leaves) or super().is_leaf_module(module, qualified_name)


def trace(model: nn.Module, leaves: tuple[type, ...] = ()) -> fx.GraphModule:
    """``model`` as a GraphModule that shares its modules (a GraphModule is its own trace:
    its nodes keep their source lines); raises ``UnsupportedLayerError`` naming the model and
    torch.fx's reason when it cannot be traced."""
    if isinstance(model, fx.GraphModule):
        return model
    try:
        graph = _Tracer(leaves).trace(model)
    except Exception as error:  # torch.fx raises many kinds; all mean the same to the user
        raise UnsupportedLayerError(
            f"{type(model).__name__} cannot be traced by torch.fx: {str(error).splitlines()[0]}"
        ) from None
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


def source(node: fx.Node) -> str:
    """``file:line`` of the user code that made ``node`` (torch's own frames skipped)."""
    frames = re.findall(r'File "([^"]+)", line (\d+)', node.stack_trace or "")
    torch_dir = str(Path(torch.__file__).parent)
    user = [f"{file}:{line}" for file, line in frames if not file.startswith(torch_dir)]
    return user[-1] if user else "unknown source"


def describe(node: fx.Node) -> str:
    """``node 'name' (op target) at file:line``: how errors name a node."""
    target = (
        node.target
        if isinstance(node.target, str)
        else getattr(node.target, "__name__", str(node.target))
    )
    return f"node {node.name!r} ({node.op} {target}) at {source(node)}"


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    folded.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
    return folded


@torch.no_grad()
def fold_batchnorm(model: nn.Module, leaves: tuple[type, ...] = ()) -> fx.GraphModule:
    """A traced copy of ``model`` in eval mode with every BatchNorm2d that follows a Conv2d
    merged into it (a Conv2d whose output it alone reads). Layers keep their qualified names.
    Any other BatchNorm (after a ReLU, say) stays: the export makes it a per-channel affine op.
    """
    traced = trace(copy.deepcopy(model).eval(), leaves)
    modules = dict(traced.named_modules())
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        conv = node.args[0]
        if not (
            isinstance(conv, fx.Node)
            and conv.op == "call_module"
            and isinstance(modules[conv.target], nn.Conv2d)
            and len(conv.users) == 1
        ):
            continue
        parent, _, name = conv.target.rpartition(".")
        folded = _fold_into(modules[conv.target], modules[node.target])
        setattr(traced.get_submodule(parent), name, folded)
        node.replace_all_uses_with(conv)
        traced.graph.erase_node(node)
        traced.delete_submodule(node.target)
    traced.graph.lint()
    traced.recompile()
    return traced.eval()


def stages(model: fx.GraphModule) -> list[fx.GraphModule]:
    """``model`` cut into stages that compose to it: a stage starts at a weighted layer (Linear,
    Conv2d, or a leaf that stands for one) after the first where the layer's input is the only
    value alive, so
    that a residual block, from the branch to the join, is one stage and a plain layer with its
    activation and pooling is another. The stages share ``model``'s modules."""
    nodes = list(model.graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}
    modules = dict(model.named_modules())
    # The last position at which each value is read.
    last_read = {
        node: max((position[user] for user in node.users), default=position[node]) for node in nodes
    }

    def alone(index: int) -> fx.Node | None:
        """The only value computed before ``index`` and read from ``index`` on."""
        alive = [node for node in nodes[:index] if last_read[node] >= index]
        return alive[0] if len(alive) == 1 else None

    starts = [0]
    blockers: Counter = Counter()
    layers = 0
    for index, node in enumerate(nodes):
        weighted = node.op == "call_module" and _is_weighted(modules[node.target])
        source = node.args[0] if weighted and node.args else None
        layers += weighted
        # The first layer (on the input, or after a reshape of it) is in the first stage.
        if not isinstance(source, fx.Node) or layers == 1:
            continue
        if alone(index) is source:
            starts.append(index)
        else:
            alive = (other for other in nodes[:index] if last_read[other] >= index)
            blockers.update(other for other in alive if other is not source)
    if layers >= 4 and len(starts) < layers / 4 and blockers:
        ((blocker, count),) = blockers.most_common(1)
        warnings.warn(
            f"{type(model).__name__}: {len(starts)} distillation stage(s) for {layers} layers "
            f"with weights: the value of {describe(blocker)} stays alive across {count} of "
            "them, so blockwise distillation cannot cut there",
            stacklevel=2,
        )
    bounds = [*starts, len(nodes)]
    return [
        fx.GraphModule(model, _segment(nodes, begin, end, last_read), class_name=f"Stage{i}")
        for i, (begin, end) in enumerate(zip(bounds, bounds[1:], strict=False))
    ]


def _segment(nodes: list[fx.Node], begin: int, end: int, last_read: dict) -> fx.Graph:
    """The graph of ``nodes[begin:end]``, from the one value alive before ``begin`` to the
    one alive after ``end`` (the model's input and output at the ends)."""
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}

    def alive(index: int) -> fx.Node:
        (node,) = [node for node in nodes[:index] if last_read[node] >= index]
        return node

    if begin > 0:
        env[alive(begin)] = graph.placeholder("x")
    for node in nodes[begin:end]:
        if node.op == "output":
            graph.output(fx.map_arg(node.args[0], env.__getitem__))
        else:
            env[node] = graph.node_copy(node, env.__getitem__)
    if end < len(nodes):
        graph.output(env[alive(end)])
    return graph


def _is_weighted(module: nn.Module) -> bool:
    return isinstance(module, WEIGHTED) or hasattr(module, "vq")
