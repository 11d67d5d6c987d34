"""Verilog generation: reproducible output, a manifest that describes it, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from golden.synthetic import random_codebook
from hw.params import AcceleratorParams
from hw.verilog import MANIFEST_NAME, VERILOG_NAME, render_verilog

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
        "mode": "rom",
    }
    assert manifest["codebook_sha256"] == codebook.sha256
    ports = {port["name"]: port for port in manifest["ports"]}
    assert ports["index__payload"] == {"name": "index__payload", "direction": "in", "width": 2 * 6}
    assert ports["out__payload"] == {"name": "out__payload", "direction": "out", "width": 2 * 8}
    assert "cb_load__payload" not in ports
    for name in ports:
        assert f"{name}" in files[VERILOG_NAME]


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


def test_hw_needs_neither_torch_nor_cocotb() -> None:
    """Data flows one way: the hardware package imports no golden model and no testbench."""
    code = (
        "import sys, hw.accelerator, hw.verilog; "
        "bad = [m for m in ('torch', 'cocotb', 'golden', 'sim') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
