"""Export: real requantization multipliers as ``mult / 2**shift``, and a model's traced
dataflow (not its module order) as the network program, with what it cannot export named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - torch's own name
from torch import nn

from golden.network import predictions
from model.export import export_network, fixed_point
from model.vq import UnsupportedLayerError, prepare_vq, vq_layers


def test_fixed_point_multipliers() -> None:
    real = np.array([1e-6, 0.003, 0.5, 1.0, 3.7])
    mult, shift = fixed_point(real, "test")
    assert (mult < 2**16).all() and (shift >= 1).all()
    assert np.allclose(mult / 2.0**shift, real, rtol=2e-5)
    with pytest.raises(ValueError, match="too large"):
        fixed_point(np.array([2.0**16]), "layer 'x'")


class _Branchy(nn.Module):
    """Not an nn.Sequential: a ReLU6, two branches joined by an add, a residual, global average
    pooling, x.view and dropout in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 8, 1)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x))
        y = torch.relu(self.left(x) + self.right(x))
        y = nn.functional.adaptive_avg_pool2d(self.pool(y + x), 1)
        return self.head(self.drop(y.view(y.size(0), -1)))


class _Sorting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(self.fc(torch.flatten(x, 1)), dim=1).values


def _frozen(model: nn.Module, codebook) -> nn.Module:
    vq = prepare_vq(model, codebook)
    for weight in vq_layers(vq).values():
        weight.freeze_all()
    return vq.eval()


def test_the_traced_dataflow_is_exported(codebook) -> None:
    torch.manual_seed(0)
    model = _frozen(_Branchy(), codebook)
    calibration = torch.rand(64, 1, 8, 8)
    program = export_network(model, codebook, calibration)
    graph = program.graph
    assert [type(op).__name__ for op in graph] == [
        "LayerOp",  # stem, its ReLU6 fused
        "LayerOp",  # left
        "LayerOp",  # right
        "AddOp",  # left + right, its ReLU fused
        "AddOp",  # + x
        "MaxPool2dOp",
        "GlobalAvgPoolOp",
        "FlattenOp",  # view; the dropout is gone
        "LayerOp",  # head
    ]
    assert [op.name for op in program.layer_ops()] == ["stem", "left", "right", "head"]
    assert program.layers[0].relu and graph[3].relu and not graph[4].relu
    assert graph[1].input == graph[2].input == 1 and graph[3].inputs == (2, 3)
    assert graph[4].inputs == (4, 1) and graph[6].keepdim
    # The integer program computes what the model does.
    with torch.no_grad():
        expected = model(calibration).argmax(dim=1).numpy()
    agreement = (predictions(codebook, program, calibration) == expected).mean()
    assert agreement >= 0.8, agreement


def test_an_unsupported_op_names_its_node_and_source_line(codebook) -> None:
    model = _frozen(_Sorting(), codebook)
    with pytest.raises(UnsupportedLayerError) as caught:
        export_network(model, codebook, torch.rand(8, 1, 8, 8))
    message = str(caught.value)
    assert re.fullmatch(
        r"node 'sort' \(call_function sort\) at .*test_export\.py:\d+ has no integer "
        r"equivalent in a network program",
        message,
    ), message
    line = int(message.split(":")[-1].split()[0])
    assert "torch.sort" in Path(__file__).read_text().splitlines()[line - 1]
