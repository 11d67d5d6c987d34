"""The end-to-end demo: one random layer, exported, run through the RTL in both codebook modes
and checked bit-exactly against golden."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from golden.artifacts import save_codebook, save_layer
from golden.synthetic import random_activations, random_codebook, random_layer
from hw.params import AcceleratorParams
from sim.build import Simulator, lint_verilog, write_verilog
from sim.job import Job

__all__ = ["run_demo"]


def run_demo(
    out_dir: str | Path,
    *,
    K: int = 65536,  # noqa: N803 - the paper's names
    D: int = 8,  # noqa: N803
    L: int = 4,  # noqa: N803
    out_features: int = 128,
    in_features: int = 512,
    seed: int = 0,
    log=print,
) -> dict[str, list[dict]]:
    """Write a random codebook and layer under ``out_dir``; for rom and sram mode, generate and
    lint the Verilog and run the layer in Verilator. Returns the measured rows by mode."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    codebook = random_codebook(K, D, seed)
    program = random_layer(codebook, out_features, in_features, relu=True, rng=rng)
    save_codebook(out / "codebook.safetensors", codebook)
    save_layer(out / "layer.safetensors", program)
    np.save(out / "inputs.npy", random_activations(rng, (in_features,)))
    log(
        f"codebook K={K} D={D} sha256={codebook.sha256[:16]}...; "
        f"layer {out_features}x{in_features}; seed {seed}"
    )
    results = {}
    for mode in ("rom", "sram"):
        params = AcceleratorParams(
            K=K,
            D=D,
            L=L,
            max_inputs=max(in_features, 1024),
            max_outputs=max(out_features, 256),
            mode=mode,
        )
        verilog = write_verilog(params, out / f"rtl-{mode}", codebook)
        lint_verilog(verilog)
        log(f"[{mode}] Verilog written to {verilog} and lint-clean; building with Verilator...")
        simulator = Simulator.build(params, codebook, root=out / "build")
        job = Job(
            params,
            str(out / "codebook.safetensors"),
            [(str(out / "layer.safetensors"), str(out / "inputs.npy"))],
            str(out / f"results-{mode}"),
            seed=seed,
        )
        results[mode] = simulator.run_layers(job, out / f"job-{mode}.json")
    return results
