"""Export: real requantization multipliers as ``mult / 2**shift``, and a model's traced
dataflow (not its module order) as the network program, with what it cannot export named."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.programs import Branchy
from vq4all.golden.network import AvgPool2dOp, network_values, predictions
from vq4all.model import export
from vq4all.model.export import export_network, fixed_point
from vq4all.model.graph import trace
from vq4all.model.vq import UnsupportedLayerError, frozen_at_nearest


def test_fixed_point_multipliers() -> None:
    real = np.array([1e-6, 0.003, 0.5, 1.0, 3.7])
    mult, shift = fixed_point(real, "test")
    assert (mult < 2**16).all() and (shift >= 1).all()
    assert np.allclose(mult / 2.0**shift, real, rtol=2e-5)
    with pytest.raises(ValueError, match="too large"):
        fixed_point(np.array([2.0**16]), "layer 'x'")


def test_calibration_read_a_batch_at_a_time_keeps_what_the_whole_outputs_give(
    monkeypatch,
) -> None:
    """The export holds one batch of calibration values at a time: each node's extremes,
    channel peaks and even sample over the batches are those of its whole output."""
    monkeypatch.setattr(export, "CALIBRATION_BATCH", 16)
    monkeypatch.setattr(export, "CLIP_SAMPLE", 100)
    torch.manual_seed(0)
    traced = trace(nn.Sequential(nn.Conv2d(1, 5, 3), nn.ReLU(), nn.Flatten()).eval(), ())
    images = torch.randn(37, 1, 8, 8)  # three batches, the last a short one
    whole = {}
    recorder = torch.fx.Interpreter(traced)
    recorder.run_node = lambda node: whole.setdefault(
        node, torch.fx.Interpreter.run_node(recorder, node)
    )
    with torch.no_grad():
        calibrated = export._calibrated(traced, images)
        recorder.run(images)
    assert calibrated.keys() == whole.keys()
    for node, y in whole.items():
        values, flat = calibrated[node], y.flatten()
        assert values.stride == len(flat) // 100 > 1
        assert torch.equal(values.sample, flat[:: values.stride])
        assert (values.low, values.high) == (float(y.min()), float(y.max()))
        peaks = y.transpose(0, 1).reshape(y.shape[1], -1).amax(dim=1)
        assert torch.equal(values.channel_peak, peaks)
        assert torch.equal(values.first, y[:1])
    with pytest.raises(ValueError, match="at least one calibration image"):
        export_network(traced, None, images[:0])


class _Sorting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sort(self.fc(torch.flatten(x, 1)), dim=1).values


def test_the_traced_dataflow_is_exported(codebook) -> None:
    torch.manual_seed(0)
    model = frozen_at_nearest(Branchy(), codebook)
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


def test_int16_activations_follow_the_model_256_times_more_finely(codebook) -> None:
    """The same model exported with 8- and 16-bit activations: the same graph, every value
    int16 with 256 times finer scales, zero points -32768 for -128, and the output
    closer to the float model's by about that factor."""
    torch.manual_seed(0)
    model = frozen_at_nearest(Branchy(), codebook)
    calibration = torch.rand(64, 1, 8, 8)
    narrow = export_network(model, codebook, calibration)
    wide = export_network(model, codebook, calibration, activation_bits=16)
    assert wide.activation_bits == 16 and {layer.activation_bits for layer in wide.layers} == {16}
    assert [type(op) for op in wide.graph] == [type(op) for op in narrow.graph]
    # A ReLU output that only feeds layers takes the lowest code: -128, or -32768.
    mlp = frozen_at_nearest(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4)), codebook
    )
    for bits, lowest in ((8, -128), (16, -32768)):
        program = export_network(mlp, codebook, calibration, activation_bits=bits)
        assert program.layers[1].input_zero_point == lowest
    ratios = np.array(wide.scales()) / np.array(narrow.scales())
    assert ((ratios > 1 / 300) & (ratios < 1 / 200)).all(), ratios
    with torch.no_grad():
        expected = model(calibration).double()
    errors = []
    for program in (narrow, wide):
        values = network_values(codebook, program, calibration)
        assert values[-1].dtype == (torch.int16 if program is wide else torch.int8)
        head = program.layers[-1]
        logits = (values[-1].double() - head.output_zero_point) * head.output_scale
        errors.append(float((logits - expected).abs().max()))
    assert errors[1] < errors[0] / 50, errors
    assert (predictions(codebook, wide, calibration) == expected.argmax(1).numpy()).all()
    with pytest.raises(ValueError, match=r"activations are \(8, 16\) bits wide, not 12"):
        export_network(model, codebook, calibration, activation_bits=12)


def test_an_unsupported_op_names_its_node_and_source_line(codebook) -> None:
    model = frozen_at_nearest(_Sorting(), codebook)
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
    program = export_network(frozen_at_nearest(_Averaging(), codebook), codebook, calibration)
    (pool,) = [op for op in program.graph if isinstance(op, AvgPool2dOp)]
    assert (pool.kernel, pool.stride) == ((2, 2), (2, 2))
    with pytest.raises(UnsupportedLayerError, match=r"node 'pool' \(call_module pool\) at "):
        export_network(frozen_at_nearest(_Averaging(padding=1), codebook), codebook, calibration)


class _Stacked(nn.Module):
    """conv, ReLU, padded conv, ReLU6, average pooling, linear: ReLU outputs that only feed
    layers, through the padding of a convolution and through pooling and flattening."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(1, 6, 3, padding=1)
        self.second = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(6 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.first(x))
        x = torch.nn.functional.relu6(self.second(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_relu_outputs_that_feed_layers_take_all_256_codes(codebook) -> None:
    torch.manual_seed(0)
    model = frozen_at_nearest(_Stacked(), codebook)
    calibration = torch.rand(32, 1, 8, 8)
    program = export_network(model, codebook, calibration)
    first, second, fc = program.layers
    assert (first.input_zero_point, first.output_zero_point) == (0, -128)
    assert (second.input_zero_point, second.output_zero_point) == (-128, -128)
    assert fc.input_zero_point == -128
    assert -128 < fc.output_zero_point < 0  # the logits' range, negative and positive
    # The lower clamp -128 is the ReLU: no layer clamps at code 0.
    assert not first.relu and not second.relu
    # Each layer computes, to the rounding of its output, what its float layer does on the
    # real values of its int8 input: the bias carries both zero points, and the image padding
    # holds the input's zero point (a padding of 0 would be off by ~128 codes at the border).
    values = network_values(codebook, program, calibration)
    scales, zero_points = program.scales(), program.zero_points()
    with torch.no_grad():
        for op, module, activation in zip(
            program.layer_ops(),
            (model.first, model.second, model.fc),
            (torch.relu, torch.nn.functional.relu6, lambda y: y),
            strict=True,
        ):
            x = values[op.input].to(torch.float64) - zero_points[op.input]
            real = activation(module((x * scales[op.input]).float()).double())
            layer = program.layers[op.layer]
            expected = torch.floor(real / layer.output_scale + 0.5) + layer.output_zero_point
            got = values[program.graph.index(op) + 1].to(torch.float64)
            clipped = expected.clamp(-128, 127)
            assert (got - clipped).abs().max() <= 1, op.name
            assert (got != clipped).float().mean() < 0.02, op.name
    unsigned = values[2].to(torch.float64)
    assert unsigned.min() == -128 and unsigned.max() > 0
    # The logits span all 256 codes on the calibration images, without clipping.
    assert values[-1].min() <= -127 and values[-1].max() >= 126


@pytest.mark.parametrize("offset", [100.0, -100.0])
def test_an_output_of_one_sign_spends_its_codes_on_that_sign(codebook, offset) -> None:
    """Logits that are never negative (or never positive) span 0 to their extreme with zero
    point -128 (or 127): all 256 codes on the side they take, none on the other."""
    torch.manual_seed(0)
    model = frozen_at_nearest(_Stacked(), codebook)
    with torch.no_grad():
        model.fc.bias += offset
    calibration = torch.rand(32, 1, 8, 8)
    program = export_network(model, codebook, calibration)
    fc = program.layers[-1]
    assert fc.output_zero_point == (-128 if offset > 0 else 127)
    codes = network_values(codebook, program, calibration)[-1].to(torch.float64)
    assert (codes.max() if offset > 0 else -codes.min()) >= 126
    with torch.no_grad():
        real = model(calibration).double()
    error = (codes - fc.output_zero_point) * fc.output_scale - real
    assert error.abs().max() <= fc.output_scale


def test_a_dead_channel_outputs_the_zero_point(codebook) -> None:
    """A channel of gain 1e-20 and no bias, behind a ReLU, outputs real zero: the zero point
    -128 of its value, whose other channels keep the resolution of 256 codes for reals >= 0."""
    torch.manual_seed(0)
    model = frozen_at_nearest(_Stacked(), codebook)
    with torch.no_grad():
        model.first.vq.gain[2] = 1e-20
        model.first.bias[2] = 0.0
    images = torch.rand(32, 1, 8, 8)
    program = export_network(model, codebook, images)
    first, second, _ = program.layers
    assert (first.output_zero_point, second.input_zero_point) == (-128, -128)
    assert first.mult[2] > 0 and not first.relu
    assert (network_values(codebook, program, images[:4])[1][:, 2] == -128).all()


def test_a_pruned_channel_outputs_its_bias(codebook) -> None:
    """A channel whose weights are all zero and whose bias is not (structured pruning, with
    BatchNorm's shift folded into the bias) outputs its bias, within a code, behind a ReLU
    (zero point -128) and at the network output: its accumulator unit grows until the bias
    fits the int32 accumulator, where its alpha's would overflow it."""
    torch.manual_seed(0)
    model = _Stacked()
    with torch.no_grad():
        model.first.weight[2] = 0.0
        model.first.bias[2] = 0.3
        model.fc.weight[4] = 0.0
        model.fc.bias[4] = -0.7
    model = frozen_at_nearest(model, codebook)
    images = torch.rand(32, 1, 8, 8)
    program = export_network(model, codebook, images)
    first, _, fc = program.layers
    values = network_values(codebook, program, images[:4])
    for layer, codes, real in ((first, values[1][:, 2], 0.3), (fc, values[-1][:, 4], -0.7)):
        error = (codes.double() - layer.output_zero_point) * layer.output_scale - real
        assert error.abs().max() <= layer.output_scale
    assert first.output_zero_point == -128


def test_a_layer_too_wide_for_the_accumulator_is_named(codebook) -> None:
    """140,000 inputs can sum past int32 whatever the bias: the export stops, naming the layer
    and the field."""
    torch.manual_seed(0)
    model = frozen_at_nearest(nn.Sequential(nn.Linear(140_000, 2)), codebook)
    with pytest.raises(ValueError, match=r"^layer '0': field 'bias': channel \d: .* overflow"):
        export_network(model, codebook, torch.randn(4, 140_000))


class _Depthwise(nn.Module):
    """conv, ReLU6, depthwise conv, global average, linear: MobileNetV2's pattern."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(3, 8, 1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.relu6(self.expand(x))
        return self.fc(self.depthwise(x).mean(dim=(2, 3)))


def test_narrow_channels_before_a_depthwise_layer_span_the_int8_range(codebook) -> None:
    """One channel of the ReLU6 output has a tenth of the others' range, and the depthwise
    layer amplifies it tenfold (as folded BatchNorm does): the export widens it and narrows the
    depthwise channel that reads it, so that the depthwise layer's integer output follows the
    float one on that channel as on the others. The model and its indices stay as they are."""
    torch.manual_seed(0)
    model = frozen_at_nearest(_Depthwise(), codebook)
    with torch.no_grad():
        model.expand.bias.fill_(1.0)  # no channel dead
        model.expand.vq.gain[3] /= 10
        model.expand.bias[3] /= 10
        model.depthwise.vq.gain[3] *= 10
    gains = [layer.vq.gain.detach().clone() for layer in (model.expand, model.depthwise)]
    calibration = torch.rand(32, 3, 8, 8)
    program = export_network(model, codebook, calibration)
    for layer, gain in zip((model.expand, model.depthwise), gains, strict=True):
        assert torch.equal(layer.vq.gain, gain)
    for layer, module in zip(
        program.layers, (model.expand, model.depthwise, model.fc), strict=True
    ):
        assert (layer.indices == module.vq.indices()).all()
    values = network_values(codebook, program, calibration)
    scales, zero_points = program.scales(), program.zero_points()
    narrow = values[1][:, 3].to(torch.float64)
    assert narrow.max() > 100  # its peak near the top code; without widening -110
    with torch.no_grad():
        real = model.depthwise(nn.functional.relu6(model.expand(calibration))).double()
    got = (values[2].double() - zero_points[2]) * scales[2]
    error = (got - real)[:, 3].abs().max() / real.abs().max()
    assert error < 0.01  # without widening 0.017
