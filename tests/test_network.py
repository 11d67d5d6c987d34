"""Network programs: the typed op graph, golden integer inference of the host ops, and clear
errors for every malformed program and file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tests.files import edit_as_another_tool, flip_bit, rewrite_header
from vq4all.golden.container import ArtifactError
from vq4all.golden.layer import ConvGeometry, run_layer
from vq4all.golden.network import (
    AddOp,
    AvgPool2dOp,
    FlattenOp,
    GlobalAvgPoolOp,
    LayerOp,
    MaxPool2dOp,
    NetworkProgram,
    ReluOp,
    load_network,
    op_from_json,
    op_to_json,
    per_layer_sha256,
    quantize_input,
    run_network,
    save_network,
)
from vq4all.golden.synthetic import random_codebook, random_layer


def _program(codebook, rng, hidden_in: int = 16) -> NetworkProgram:
    first = dataclasses.replace(
        random_layer(codebook, 16, 64, True, rng), input_scale=0.02, output_scale=0.1
    )
    second = dataclasses.replace(
        random_layer(codebook, 10, hidden_in, False, rng), input_scale=0.1, output_scale=0.3
    )
    graph = [
        LayerOp(input=0, layer=0, name="fc1"),
        LayerOp(input=1, layer=1, name="fc2"),
        AddOp(inputs=(2, 2), mult=(1 << 14, 1 << 14), shift=15, relu=True, scale=0.3),
    ]
    return NetworkProgram(codebook.sha256, 0.02, (64,), [first, second], graph, "digits")


def _conv_program(codebook, rng, bits: int = 8) -> NetworkProgram:
    """conv 2->4 3x3 on 2x6x6, ReLU, 2x2 max pool, flatten, linear 36->5, with ``bits``-wide
    activations."""
    conv = dataclasses.replace(
        random_layer(codebook, 4, 18, False, rng, activation_bits=bits),
        kind="conv2d",
        conv=ConvGeometry(2, (3, 3), (1, 1), (1, 1), 1),
        input_scale=0.05,
        output_scale=0.1,
    )
    head = dataclasses.replace(
        random_layer(codebook, 5, 36, False, rng, activation_bits=bits),
        input_scale=0.1,
        output_scale=0.2,
    )
    graph = [
        LayerOp(input=0, layer=0, name="conv"),
        ReluOp(input=1),
        MaxPool2dOp(input=2, kernel=(2, 2), stride=(2, 2)),
        FlattenOp(input=3),
        LayerOp(input=4, layer=1, name="head"),
    ]
    return NetworkProgram(
        codebook.sha256, 0.05, (2, 6, 6), [conv, head], graph, activation_bits=bits
    )


def test_run_matches_the_ops_by_hand(codebook, rng) -> None:
    program = _program(codebook, rng)
    x = torch.from_numpy(rng.normal(size=(3, 64)))
    hidden = run_layer(codebook, program.layers[0], quantize_input(x, 0.02).numpy())
    logits = run_layer(codebook, program.layers[1], hidden).astype(np.int64)
    expected = np.clip((logits * (1 << 15) + (1 << 14)) >> 15, 0, 127)
    assert np.array_equal(run_network(codebook, program, x).numpy(), expected)


@pytest.mark.parametrize("bits", [8, 16])
def test_host_ops_by_hand(codebook, rng, bits: int) -> None:
    program = _conv_program(codebook, rng, bits)
    x = torch.from_numpy(rng.normal(size=(2, 2, 6, 6)))
    inputs = quantize_input(x, 0.05, bits=bits)
    assert torch.equal(program.quantize(x), inputs) and inputs.dtype == getattr(torch, f"int{bits}")
    conv = run_layer(codebook, program.layers[0], inputs.numpy())
    pooled = np.maximum(conv, 0).reshape(2, 4, 3, 2, 3, 2).max(axis=(3, 5))
    expected = run_layer(codebook, program.layers[1], pooled.reshape(2, 36))
    assert np.array_equal(run_network(codebook, program, x).numpy(), expected)
    assert program.value_shapes() == [(2, 6, 6), (4, 6, 6), (4, 6, 6), (4, 3, 3), (36,), (5,)]


def test_round_trip(tmp_path, codebook, rng) -> None:
    for program in (_program(codebook, rng), _conv_program(codebook, rng, bits=16)):
        save_network(tmp_path / "n.safetensors", program)
        loaded = load_network(tmp_path / "n.safetensors", codebook)
        assert loaded.graph == program.graph and loaded.input_shape == program.input_shape
        assert loaded.dataset == program.dataset
        assert loaded.activation_bits == program.activation_bits
        assert all(
            np.array_equal(a.indices, b.indices)
            for a, b in zip(loaded.layers, program.layers, strict=True)
        )


def test_every_op_round_trips_through_json(codebook, rng) -> None:
    pooling = [
        GlobalAvgPoolOp(input=1, keepdim=True),
        GlobalAvgPoolOp(input=1, keepdim=False),
        AvgPool2dOp(input=1, kernel=(2, 3), stride=(1, 2)),
    ]
    for op in _program(codebook, rng).graph + _conv_program(codebook, rng).graph + pooling:
        assert op_from_json(json.loads(json.dumps(op_to_json(op)))) == op


def test_global_average_pooling_rounds_half_up() -> None:
    """Means of 1.5, -1.5, 2.25, -2.75 and 127: ties go up, the rest to the nearest."""
    x = torch.tensor([[1, 2, 1, 2], [-1, -2, -1, -2], [2, 2, 2, 3], [-3, -3, -3, -2]])
    x = torch.cat([x, torch.full((1, 4), 127)]).to(torch.int8).reshape(1, 5, 2, 2)
    op = GlobalAvgPoolOp(input=0, keepdim=False)
    assert op.apply([x]).tolist() == [[2, -1, 2, -3, 127]]
    assert op.output_shape([(5, 2, 2)]) == (5,)
    kept = GlobalAvgPoolOp(input=0, keepdim=True)
    assert kept.apply([x]).shape == (1, 5, 1, 1) and kept.output_shape([(5, 2, 2)]) == (5, 1, 1)
    with pytest.raises(ValueError, match=r"takes \[C, H, W\], not \[20\]"):
        op.output_shape([(20,)])


def test_average_pooling_rounds_each_window_half_up() -> None:
    """2x2 windows, stride 2, of a 4x4 channel: means 1.5, -1.5, 2.25 and -2.75."""
    x = torch.tensor(
        [[1, 2, -1, -2], [1, 2, -1, -2], [2, 2, -3, -3], [2, 3, -3, -2]], dtype=torch.int8
    ).reshape(1, 1, 4, 4)
    op = AvgPool2dOp(input=0, kernel=(2, 2), stride=(2, 2))
    assert op.apply([x]).tolist() == [[[[2, -1], [2, -3]]]]
    assert op.output_shape([(1, 4, 4)]) == (1, 2, 2)
    overlapping = AvgPool2dOp(input=0, kernel=(3, 3), stride=(1, 1))
    assert overlapping.output_shape([(1, 4, 4)]) == (1, 2, 2)
    # The first 3x3 window sums to 5 over 9 values: 0.56 rounds to 1.
    assert overlapping.apply([x])[0, 0, 0, 0] == 1
    with pytest.raises(ValueError, match=r"a \[5, 5\] window does not fit \[1, 4, 4\]"):
        AvgPool2dOp(input=0, kernel=(5, 5), stride=(1, 1)).output_shape([(1, 4, 4)])


ADD = {"op": "add", "inputs": [1, 2], "mult": [1, 1], "shift": 3, "relu": False, "scale": 0.1}
POOL = {"op": "maxpool2d", "input": 1, "kernel": [2, 2], "stride": [2, 2]}
GAP = {"op": "globalavgpool", "input": 1, "keepdim": True}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({k: v for k, v in ADD.items() if k != "shift"}, "'shift' is missing"),
        (POOL | {"kernel": 2}, "'kernel': 2 is not a pair of integers"),
        (POOL | {"kernel": [2, 0]}, r"'kernel': \[2, 0\] must be positive"),
        ({"op": "layer", "input": "1", "layer": 0, "name": "x"}, "'input': '1' is not an integer"),
        ({"op": "relu", "input": 1, "inplace": True}, "'inplace': not a field of a relu op"),
        (ADD | {"shift": 0}, r"'shift': 0 is out of range \[1, 48\]"),
        (ADD | {"relu": 1}, "'relu': 1 is not true or false"),
        (GAP | {"keepdim": "yes"}, "'keepdim': 'yes' is not true or false"),
        (ADD | {"scale": -1.0}, "'scale': -1.0 is not a positive finite number"),
        ({"op": "argsort", "input": 1}, "'op': 'argsort' is not one of"),
        (
            {"op": "pad", "input": 1, "pads": [1, -1], "value": 0},
            r"'pads': \[1, -1\] is not \(before, after\) pairs",
        ),
        (
            {
                "op": "lookup",
                "input": 1,
                "function": "tanh",
                "table": [0, 1],
                "scale": 1.0,
                "zero_point": 0,
            },
            "'table': 2 entries, not one per code",
        ),
        (
            {
                "op": "mul",
                "inputs": [1, 1],
                "input_zero_points": [0, 0],
                "mult": 70000,
                "shift": 3,
                "scale": 1.0,
                "zero_point": 0,
            },
            "'mult': an entry is out of range",
        ),
        (
            {
                "op": "layernorm",
                "input": 1,
                "input_zero_point": 0,
                "eps_codes": -1,
                "mult": [1, 1],
                "bias": [0, 0],
                "shift": [1, 1],
                "scale": 1.0,
                "zero_point": 0,
            },
            "'eps_codes'",
        ),
        (["relu", 1], "'op': an op is a JSON object"),
    ],
)
def test_malformed_ops_name_their_field(fields, message) -> None:
    with pytest.raises(ArtifactError, match=r"<memory>: field " + message):
        op_from_json(fields)


def test_shapes_that_do_not_add_up(tmp_path, codebook, rng) -> None:
    with pytest.raises(
        ArtifactError,
        match=r"field 'graph\[1\]': layer: a linear layer of 20 inputs takes \[16\]",
    ):
        _program(codebook, rng, hidden_in=20)
    program = _conv_program(codebook, rng)
    too_big = MaxPool2dOp(input=2, kernel=(7, 7), stride=(1, 1))
    with pytest.raises(ArtifactError, match=r"'graph\[2\]': maxpool2d: a \[7, 7\] window"):
        dataclasses.replace(program, graph=[*program.graph[:2], too_big, *program.graph[3:]])


def test_bad_graph_and_scales(codebook, rng) -> None:
    program = _program(codebook, rng)
    with pytest.raises(
        ArtifactError, match=r"field 'graph\[1\]': inputs \[7\] must name earlier values"
    ):
        dataclasses.replace(program, graph=[program.graph[0], LayerOp(7, 1, "x")])
    with pytest.raises(ArtifactError, match=r"field 'graph\[0\].layer': 5 is not in \[0, 2\)"):
        dataclasses.replace(program, graph=[LayerOp(0, 5, "x")])
    layers = [program.layers[0], dataclasses.replace(program.layers[1], input_scale=0.5)]
    with pytest.raises(ArtifactError, match=r"field 'graph\[1\]': layer 1 expects input scale 0.5"):
        dataclasses.replace(program, layers=layers)
    with pytest.raises(ArtifactError, match=r"field 'input_scale': nan is not positive"):
        dataclasses.replace(program, input_scale=float("nan"))
    for shape in ((), (64, 0), ("64",)):
        with pytest.raises(ArtifactError, match=r"field 'input_shape': .* is not a list of"):
            dataclasses.replace(program, input_shape=shape)


def test_every_value_of_a_program_has_its_width(codebook, rng) -> None:
    program = _conv_program(codebook, rng, bits=16)
    with pytest.raises(
        ArtifactError, match=r"field 'layers\[0\].activation_bits': 16 differs from the network's 8"
    ):
        dataclasses.replace(program, activation_bits=8)
    with pytest.raises(
        ArtifactError, match=r"field 'input_zero_point': -32768 is not a 8-bit activation value"
    ):
        dataclasses.replace(_program(codebook, rng), input_zero_point=-32768)
    # An int8 input to an int16 layer is refused, not read as other numbers.
    with pytest.raises(ValueError, match="activations must be int16, got int8"):
        run_layer(codebook, program.layers[1], np.zeros((1, 36), dtype=np.int8))


def test_zero_points_must_match_where_values_meet(codebook, rng) -> None:
    program = _program(codebook, rng)
    first, second = program.layers
    shifted = dataclasses.replace(first, output_zero_point=-128)
    with pytest.raises(
        ArtifactError,
        match=r"field 'graph\[1\]': layer 1 expects input zero point 0, value 1 has -128",
    ):
        dataclasses.replace(program, layers=[shifted, second])
    # Both layers shifted: the layers agree, but the add takes zero point 0 only.
    layers = [shifted, dataclasses.replace(second, input_zero_point=-128, output_zero_point=-128)]
    with pytest.raises(
        ArtifactError, match=r"field 'graph\[2\]': add takes value 2 at zero point 0, it has -128"
    ):
        dataclasses.replace(program, layers=layers)
    conv = _conv_program(codebook, rng)
    layers = [dataclasses.replace(conv.layers[0], output_zero_point=-128), conv.layers[1]]
    with pytest.raises(
        ArtifactError, match=r"field 'graph\[1\]': relu takes value 1 at zero point 0"
    ):
        dataclasses.replace(conv, layers=layers)
    # Pooling and flattening pass the zero point on to the next layer.
    graph = [conv.graph[0], *conv.graph[2:]]
    graph[1:] = [dataclasses.replace(op, input=op.input - 1) for op in graph[1:]]
    layers = [
        dataclasses.replace(conv.layers[0], output_zero_point=-128),
        dataclasses.replace(conv.layers[1], input_zero_point=-128),
    ]
    assert dataclasses.replace(conv, layers=layers, graph=graph).zero_points() == [
        0,
        -128,
        -128,
        -128,
        0,
    ]


def test_missing_and_mistyped_op_fields_in_a_file(tmp_path, codebook, rng) -> None:
    path = tmp_path / "n.safetensors"
    program = _conv_program(codebook, rng)

    def edit_graph(change):
        def edit(metadata: dict) -> None:
            graph = json.loads(metadata["graph"])
            change(graph)
            metadata["graph"] = json.dumps(graph)

        return edit

    save_network(path, program)
    edit_as_another_tool(path, edit_graph(lambda graph: graph[2].pop("stride")))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'graph\[2\].stride' is missing"):
        load_network(path)
    save_network(path, program)
    edit_as_another_tool(path, edit_graph(lambda graph: graph[2].update(kernel=2)))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'graph\[2\].kernel': 2 is not a"):
        load_network(path)
    save_network(path, program)
    edit_as_another_tool(path, lambda metadata: metadata.update(graph="{}"))
    with pytest.raises(ArtifactError, match=rf"{path}: field 'graph': cannot parse"):
        load_network(path)


def test_bad_layer_inside_a_network_file_names_it(tmp_path, codebook, rng) -> None:
    path = tmp_path / "n.safetensors"
    save_network(path, _program(codebook, rng))

    def edit(metadata: dict) -> None:
        layers = json.loads(metadata["layers"])
        layers[1]["in_features"] = "99"
        metadata["layers"] = json.dumps(layers)

    edit_as_another_tool(path, edit)
    with pytest.raises(
        ArtifactError,
        match=rf"{path}: field 'layers\[1\].indices': shape \(10, 2\) does not add up",
    ):
        load_network(path)


def test_an_edited_field_breaks_the_hash(tmp_path, codebook, rng) -> None:
    """Editing what is computed (here a layer's in_features, 16 to 15: same index count) is
    caught by the payload hash, not silently loaded."""
    path = tmp_path / "n.safetensors"
    save_network(path, _program(codebook, rng))

    def edit(header: dict) -> None:
        layers = json.loads(header["__metadata__"]["layers"])
        layers[1]["in_features"] = "15"
        header["__metadata__"]["layers"] = json.dumps(layers)

    rewrite_header(path, edit)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256'.*edited"):
        load_network(path)


def test_corrupted_network(tmp_path, codebook, rng) -> None:
    path = tmp_path / "n.safetensors"
    save_network(path, _program(codebook, rng))
    flip_bit(path, 2)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256'"):
        load_network(path)


@pytest.mark.parametrize("cut", [4, 200, -10], ids=["header-length", "header", "data"])
def test_truncated_network(tmp_path, codebook, rng, cut) -> None:
    path = tmp_path / "n.safetensors"
    save_network(path, _program(codebook, rng))
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(ArtifactError, match=rf"{path}: not a readable safetensors file"):
        load_network(path)


def _per_layer_program(rng) -> NetworkProgram:
    """A per-layer VQ program: each layer of :func:`_program` on its own small codebook (5 and
    12 codewords: per-layer sizes need not be powers of two)."""
    own = [random_codebook(5, 8, 1), random_codebook(12, 8, 2)]
    layers = [
        dataclasses.replace(
            random_layer(own[0], 16, 64, True, rng), input_scale=0.02, output_scale=0.1
        ),
        dataclasses.replace(
            random_layer(own[1], 10, 16, False, rng), input_scale=0.1, output_scale=0.3
        ),
    ]
    graph = [LayerOp(input=0, layer=0, name="fc1"), LayerOp(input=1, layer=1, name="fc2")]
    return NetworkProgram(
        per_layer_sha256(own), 0.02, (64,), layers, graph, "digits", codebooks=tuple(own)
    )


def test_a_per_layer_program_runs_each_layer_on_its_own_codebook(tmp_path, codebook, rng) -> None:
    program = _per_layer_program(rng)
    x = torch.randn(3, 64)
    first = run_layer(program.codebooks[0], program.layers[0], program.quantize(x).numpy())
    expected = run_layer(program.codebooks[1], program.layers[1], first)
    assert np.array_equal(run_network(None, program, x).numpy(), expected)
    save_network(tmp_path / "n.safetensors", program)
    loaded = load_network(tmp_path / "n.safetensors")
    assert [own.sha256 for own in loaded.codebooks] == [own.sha256 for own in program.codebooks]
    assert np.array_equal(run_network(None, loaded, x).numpy(), expected)
    with pytest.raises(ArtifactError, match=r"field 'codebook_scales': the program carries"):
        load_network(tmp_path / "n.safetensors", codebook)
    with pytest.raises(ValueError, match="indexes a universal codebook"):
        run_network(None, _program(codebook, rng), x)


def test_a_malformed_per_layer_program_names_the_field(tmp_path, rng) -> None:
    path = tmp_path / "n.safetensors"
    program = _per_layer_program(rng)
    other = random_codebook(12, 8, 3)
    # The set's hash made to match the swapped codebook: the layer's own hash still catches it.
    swapped = per_layer_sha256([program.codebooks[0], other])
    for arrays, edit, message in (
        ({"codebooks.1": other.codewords}, None, r"field 'codebook_sha256': does not match"),
        (
            {"codebooks.1": other.codewords},
            lambda m: m.update(codebook_sha256=swapped),
            r"field 'layers\[1\].codebook_sha256': .* does not match the codebook",
        ),
        ({"codebooks.0": other.codewords[:1]}, None, r"field 'codebooks\[0\].codewords': K=1"),
        (
            {},
            lambda m: m.update(codebook_scales="[0.1]"),
            r"field 'codebooks.1': no codebook_scales",
        ),
        ({}, lambda m: m.update(codebook_scales='[0.1, "x"]'), r"'codebook_scales\[1\]': 'x'"),
        ({}, lambda m: m.update(codebook_scales="[0.1, -1]"), r"'codebooks\[1\].scale'"),
    ):
        save_network(path, program)
        edit_as_another_tool(path, edit or (lambda m: None), **arrays)
        with pytest.raises(ArtifactError, match=rf"{path}: .*{message}"):
            load_network(path)
