"""Verilog generation: the netlist, with the ROM contents inline, and a JSON manifest.

This module only renders text; :func:`vq4all.sim.rtl.build.write_verilog` writes it to disk."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from vq4all.golden.errors import InputError
from vq4all.hw.accelerator import PIPELINE_DEPTH, Accelerator
from vq4all.hw.params import AcceleratorParams

__all__ = ["MANIFEST_NAME", "TOP_NAME", "VERILOG_NAME", "render_verilog"]

TOP_NAME = "vq4all_accel"
VERILOG_NAME = f"{TOP_NAME}.v"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def _port_list(dut: Accelerator) -> list[dict]:
    ports = [
        {"name": "clk", "direction": "in", "width": 1},
        {"name": "rst", "direction": "in", "width": 1},
    ]
    for path, member, _ in dut.signature.flatten(dut):
        ports.append(
            {
                "name": "__".join(str(part) for part in path),
                "direction": "in" if member.flow == wiring.In else "out",
                "width": Shape.cast(member.shape).width,
            }
        )
    return ports


def render_verilog(
    params: AcceleratorParams,
    codewords: np.ndarray | None = None,
    codebook_sha256: str | None = None,
) -> dict[str, str]:
    """The generated files, by name: ``vq4all_accel.v`` and ``manifest.json``.

    In rom mode the codewords are the ROM's ``initial`` contents inside the Verilog, and
    ``codebook_sha256`` identifies them in the manifest. Sources are emitted without ``src``
    attributes, so the output depends on the parameters and codewords alone.
    Raises ``ValueError`` for inconsistent parameters or codewords.
    """
    if params.mode == "rom" and codebook_sha256 is None:
        raise InputError("rom mode needs the codebook's SHA-256 for the manifest")
    dut = Accelerator(params, codewords)
    manifest = {
        "version": MANIFEST_VERSION,
        "top": TOP_NAME,
        "verilog": VERILOG_NAME,
        "params": dataclasses.asdict(params),
        "codebook_sha256": codebook_sha256 if params.mode == "rom" else None,
        "pipeline_depth": PIPELINE_DEPTH,
        "ports": _port_list(dut),
    }
    return {
        VERILOG_NAME: verilog.convert(dut, name=TOP_NAME, emit_src=False),
        MANIFEST_NAME: json.dumps(manifest, indent=2) + "\n",
    }
