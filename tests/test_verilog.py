"""Verilog generation: reproducible output, a manifest that describes it, clean errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from vq4all.golden.synthetic import random_codebook
from vq4all.hw.params import AcceleratorParams
from vq4all.hw.verilog import MANIFEST_NAME, VERILOG_NAME, render_verilog
from vq4all.sim.rtl.build import lint_verilog

PARAMS = AcceleratorParams(K=64, D=4, L=2, max_inputs=64, max_outputs=16)


def test_output_is_reproducible_and_depends_on_the_codebook() -> None:
    codebook = random_codebook(64, 4, seed=1)
    first = render_verilog(PARAMS, codebook.codewords, codebook.sha256)
    second = render_verilog(PARAMS, codebook.codewords, codebook.sha256)
    assert first == second
    other = random_codebook(64, 4, seed=2)
    assert (
        render_verilog(PARAMS, other.codewords, other.sha256)[VERILOG_NAME] != first[VERILOG_NAME]
    )


def test_manifest_lists_parameters_ports_and_codebook() -> None:
    codebook = random_codebook(64, 4, seed=1)
    files = render_verilog(PARAMS, codebook.codewords, codebook.sha256)
    manifest = json.loads(files[MANIFEST_NAME])
    assert manifest["params"] == {
        "K": 64,
        "D": 4,
        "L": 2,
        "max_inputs": 64,
        "max_outputs": 16,
        "max_columns": 65536,
        "mode": "rom",
        "activation_bits": 8,
    }
    assert manifest["codebook_sha256"] == codebook.sha256
    ports = {port["name"]: port for port in manifest["ports"]}
    assert ports["index__payload"] == {"name": "index__payload", "direction": "in", "width": 2 * 6}
    assert ports["out__payload"] == {"name": "out__payload", "direction": "out", "width": 2 * 8}
    assert "cb_load__payload" not in ports
    for name in ports:
        assert f"{name}" in files[VERILOG_NAME]


def test_int16_activations_widen_the_act_and_out_ports() -> None:
    codebook = random_codebook(64, 4, seed=1)
    params = dataclasses.replace(PARAMS, activation_bits=16)
    manifest = json.loads(
        render_verilog(params, codebook.codewords, codebook.sha256)[MANIFEST_NAME]
    )
    assert manifest["params"]["activation_bits"] == 16
    ports = {port["name"]: port["width"] for port in manifest["ports"]}
    # An act beat is each lane's D activations; an output beat, L activations.
    assert (ports["act__payload"], ports["out__payload"]) == (2 * 4 * 16, 2 * 16)
    # Each channel's bias is an accumulator: 40 bits, beside the 16-bit mult and 6-bit shift.
    assert ports["quant__payload"] == 2 * (40 + 16 + 6)


def test_sram_mode_has_a_load_stream_and_no_codebook() -> None:
    params = AcceleratorParams(K=64, D=4, L=2, max_inputs=64, max_outputs=16, mode="sram")
    manifest = json.loads(render_verilog(params)[MANIFEST_NAME])
    assert manifest["codebook_sha256"] is None
    assert {"cb_load__payload", "cb_load__valid", "cb_load__ready"} <= {
        p["name"] for p in manifest["ports"]
    }


def test_rom_mode_needs_the_codebook_hash() -> None:
    codebook = random_codebook(64, 4, seed=1)
    with pytest.raises(ValueError, match="needs the codebook's SHA-256"):
        render_verilog(PARAMS, codebook.codewords)


#: The smallest sizes of every dimension: one-deep buffers, one-bit counters and indices.
EDGE_PARAMS = [
    AcceleratorParams(K=2, D=1, L=1, max_inputs=1, max_outputs=1, max_columns=1),
    AcceleratorParams(K=4, D=8, L=2, max_inputs=8, max_outputs=2, max_columns=2, mode="sram"),
    AcceleratorParams(K=16, D=4, L=3, max_inputs=3, max_outputs=7, max_columns=1),
]


@pytest.mark.verilator
@pytest.mark.parametrize("params", EDGE_PARAMS, ids=lambda p: f"{p.mode}-K{p.K}-D{p.D}-L{p.L}")
def test_smallest_parameters_give_lint_clean_verilog(params, tmp_path) -> None:
    """Every accepted parameter set must give Verilog that Verilator accepts (a one-deep
    activation buffer once gave an address of type ``wire [-1:0]``)."""
    rom = params.mode == "rom"
    codewords = random_codebook(max(params.K, 4), params.D, seed=1).codewords[: params.K]
    files = render_verilog(params, codewords if rom else None, "0" * 64 if rom else None)
    assert "[-1:0]" not in files[VERILOG_NAME]
    (tmp_path / VERILOG_NAME).write_text(files[VERILOG_NAME])
    lint_verilog(tmp_path / VERILOG_NAME)
