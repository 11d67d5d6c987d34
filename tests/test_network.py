"""Network programs: golden integer inference of the host ops, and clear errors for every
malformed file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from golden.artifacts import ArtifactError
from golden.layer import run_layer
from golden.network import NetworkProgram, load_network, quantize_input, run_network, save_network
from golden.synthetic import random_layer
from tests.files import flip_bit, rewrite_header


def _program(codebook, rng, hidden_in: int = 16) -> NetworkProgram:
    first = dataclasses.replace(
        random_layer(codebook, 16, 64, True, rng), input_scale=0.02, output_scale=0.1
    )
    second = dataclasses.replace(
        random_layer(codebook, 10, hidden_in, False, rng), input_scale=0.1, output_scale=0.3
    )
    graph = [
        {"op": "layer", "input": 0, "layer": 0},
        {"op": "layer", "input": 1, "layer": 1},
        {
            "op": "add",
            "inputs": [2, 2],
            "mult": [1 << 14, 1 << 14],
            "shift": 15,
            "relu": True,
            "scale": 0.3,
        },
    ]
    return NetworkProgram(codebook.sha256, 0.02, (64,), [first, second], graph)


def test_run_matches_the_ops_by_hand(codebook, rng) -> None:
    program = _program(codebook, rng)
    x = torch.from_numpy(rng.normal(size=(3, 64)))
    hidden = run_layer(codebook, program.layers[0], quantize_input(x, 0.02).numpy())
    logits = run_layer(codebook, program.layers[1], hidden).astype(np.int64)
    expected = np.clip((logits * (1 << 15) + (1 << 14)) >> 15, 0, 127)
    assert np.array_equal(run_network(codebook, program, x).numpy(), expected)


def test_round_trip(tmp_path, codebook, rng) -> None:
    program = _program(codebook, rng)
    save_network(tmp_path / "n.safetensors", program)
    loaded = load_network(tmp_path / "n.safetensors", codebook)
    assert loaded.graph == program.graph and loaded.input_shape == (64,)
    assert all(
        np.array_equal(a.indices, b.indices)
        for a, b in zip(loaded.layers, program.layers, strict=True)
    )


def test_shapes_that_do_not_add_up(tmp_path, codebook, rng) -> None:
    save_network(tmp_path / "n.safetensors", _program(codebook, rng, hidden_in=20))
    with pytest.raises(ArtifactError, match=r"n.safetensors: field 'graph\[1\]': layer: "):
        load_network(tmp_path / "n.safetensors", codebook)


def test_bad_graph_and_scales(codebook, rng) -> None:
    program = _program(codebook, rng)
    with pytest.raises(
        ArtifactError, match=r"field 'graph\[1\]': inputs \[7\] must name earlier values"
    ):
        dataclasses.replace(
            program, graph=[program.graph[0], {"op": "layer", "input": 7, "layer": 1}]
        )
    with pytest.raises(ArtifactError, match=r"field 'graph\[0\]': op 'softmax' is not one of"):
        dataclasses.replace(program, graph=[{"op": "softmax", "input": 0}])
    layers = [program.layers[0], dataclasses.replace(program.layers[1], input_scale=0.5)]
    with pytest.raises(ArtifactError, match=r"field 'graph\[1\]': layer 1 expects input scale 0.5"):
        dataclasses.replace(program, layers=layers).scales()
    with pytest.raises(ArtifactError, match=r"field 'input_scale': nan is not positive"):
        dataclasses.replace(program, input_scale=float("nan"))
    for shape in ((), (64, 0), ("64",)):
        with pytest.raises(ArtifactError, match=r"field 'input_shape': .* is not a list of"):
            dataclasses.replace(program, input_shape=shape)


def test_bad_layer_inside_a_network_file_names_it(tmp_path, codebook, rng) -> None:
    path = tmp_path / "n.safetensors"
    save_network(path, _program(codebook, rng))

    def edit(header: dict) -> None:
        layers = json.loads(header["__metadata__"]["layers"])
        layers[1]["in_features"] = "99"
        header["__metadata__"]["layers"] = json.dumps(layers)

    rewrite_header(path, edit)
    with pytest.raises(
        ArtifactError,
        match=rf"{path}: field 'layers\[1\].indices': shape \(10, 2\) does not add up",
    ):
        load_network(path)


def test_corrupted_network(tmp_path, codebook, rng) -> None:
    path = tmp_path / "n.safetensors"
    save_network(path, _program(codebook, rng))
    flip_bit(path, 2)
    with pytest.raises(ArtifactError, match=rf"{path}: field 'payload_sha256'"):
        load_network(path)
