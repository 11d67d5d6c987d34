"""Export: real requantization multipliers as ``mult / 2**shift``, and a model's traced
dataflow (not its module order) as the network program, with what it cannot export named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from golden.network import AvgPool2dOp, predictions
from model.export import export_network, fixed_point
from model.vq import UnsupportedLayerError
from tests.programs import Branchy, frozen


def test_fixed_point_multipliers() -> None:
    real = np.array([1e-6, 0.003, 0.5, 1.0, 3.7])
    mult, shift = fixed_point(real, "test")
    assert (mult < 2**16).all() and (shift >= 1).all()
    assert np.allclose(mult / 2.0**shift, real, rtol=2e-5)
    with pytest.raises(ValueError, match="too large"):
        fixed_point(np.array([2.0**16]), "layer 'x'")


class _Sorting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(self.fc(torch.flatten(x, 1)), dim=1).values


def test_the_traced_dataflow_is_exported(codebook) -> None:
    torch.manual_seed(0)
    model = frozen(Branchy(), codebook)
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
    model = frozen(_Sorting(), codebook)
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


class _Averaging(nn.Module):
    def __init__(self, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2, padding=padding)
        self.fc = nn.Linear(4 * (4 + padding) ** 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def test_average_pooling_is_exported_and_padding_is_refused(codebook) -> None:
    torch.manual_seed(0)
    calibration = torch.rand(64, 1, 8, 8)
    program = export_network(frozen(_Averaging(), codebook), codebook, calibration)
    (pool,) = [op for op in program.graph if isinstance(op, AvgPool2dOp)]
    assert (pool.kernel, pool.stride) == ((2, 2), (2, 2))
    with pytest.raises(UnsupportedLayerError, match=r"node 'pool' \(call_module pool\) at "):
        export_network(frozen(_Averaging(padding=1), codebook), codebook, calibration)
