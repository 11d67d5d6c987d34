"""cocotb tests of the generated accelerator, run inside Verilator by :mod:`sim.build`.

They read the job named by ``$VQ4ALL_JOB`` (:mod:`sim.job`), check every output against golden
exactly, assert the closed-form cycle count when no stream stalls, and write what they measured
to the job's results directory.
"""

from __future__ import annotations

import time

import cocotb
from cocotb.triggers import RisingEdge

from sim.cycles import layer_cycles, utilization
from sim.job import load_job
from sim.testbench import AcceleratorTestbench

#: No single test may run longer than this much simulated time.
TEST_TIMEOUT_MS = 200


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(idle=[False, True], backpressure=[False, True])
async def layers_match_golden(dut, idle: bool, backpressure: bool) -> None:
    """Every case's outputs equal golden; without stalls its cycles equal the closed form."""
    job = load_job()
    codebook = job.load_codebook()
    tb = AcceleratorTestbench(
        dut, job.params, codebook, idle=idle, backpressure=backpressure, seed=job.seed
    )
    await tb.start()
    rows = []
    for name, program, x in job.load_cases(codebook):
        start_cycle, start_wall = tb.cycle, time.perf_counter()
        result = await tb.run_layer(program, x)
        wall = time.perf_counter() - start_wall
        expected_cycles = layer_cycles(job.params, program.out_features, program.in_features)
        rows.append(
            {
                "layer": name,
                "M": program.out_features,
                "N": program.in_features,
                "relu": program.relu,
                "match": result.matches,
                "cycles": result.cycles,
                "model_cycles": expected_cycles,
                "utilization": utilization(
                    job.params, program.out_features, program.in_features, result.cycles
                ),
                # Every simulated cycle of the run, the drain included, and its wall time.
                "sim_cycles": tb.cycle - start_cycle,
                "wall_s": wall,
            }
        )
        assert result.matches, (
            f"{name}: RTL {result.outputs.tolist()} != golden {result.expected.tolist()}"
        )
        if not (idle or backpressure):
            assert result.cycles == expected_cycles, (
                f"{name}: {result.cycles} cycles, model {expected_cycles}"
            )
    job.write_result(f"layers_idle{int(idle)}_backpressure{int(backpressure)}", rows)


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
async def reset_mid_layer(dut) -> None:
    """A reset halfway through a layer, then a rerun of that layer, gives the golden result."""
    job = load_job()
    codebook = job.load_codebook()
    tb = AcceleratorTestbench(
        dut, job.params, codebook, idle=True, backpressure=True, seed=job.seed
    )
    await tb.start()
    name, program, x = job.load_cases(codebook)[job.reset_case or 0]
    first = cocotb.start_soon(tb.run_layer(program, x))
    index_beats = -(-program.out_features // job.params.L) * program.blocks
    while len(tb.sources["index"].cycles) < index_beats // 2:
        await RisingEdge(dut.clk)
    first.cancel()
    await tb.reset()
    result = await tb.run_layer(program, x)
    job.write_result(
        "reset_mid_layer", [{"layer": name, "match": result.matches, "cycles": result.cycles}]
    )
    assert result.matches, (
        f"{name} after reset: RTL {result.outputs.tolist()} != golden {result.expected.tolist()}"
    )
