"""cocotb tests of the generated accelerator, run inside Verilator by :mod:`vq4all.sim.rtl.build`.

They read the job named by ``$VQ4ALL_JOB`` (:mod:`vq4all.sim.rtl.job`), check every output against
golden exactly, assert the closed-form cycle count when no stream stalls, and write what they
measured to the job's results directory.

``network_matches_golden`` runs a whole network program, image after image, in this one
simulator process: every layer op on the RTL with that layer's indices and requantization
parameters and the real activations of the ops before it, every host op (pooling, flatten,
ReLU, residual add) in golden between them, as a host CPU would
(:class:`vq4all.sim.rtl.host.NetworkHost`).
"""

from __future__ import annotations

import time

import cocotb
from cocotb.triggers import RisingEdge

from vq4all.sim.arch.cycles import layer_cycles, utilization
from vq4all.sim.rtl.host import NETWORK_RESULT, NetworkHost
from vq4all.sim.rtl.job import load_job
from vq4all.sim.rtl.testbench import AcceleratorTestbench

#: No layer test may run longer than this much simulated time.
TEST_TIMEOUT_MS = 200
#: A network run is bounded per layer by the testbench's hang guard; this bounds the whole run
#: (a billion cycles of 10 ns), far above any run that the command line allows.
NETWORK_TIMEOUT_S = 10


@cocotb.test(timeout_time=TEST_TIMEOUT_MS, timeout_unit="ms")
@cocotb.parametrize(idle=[False, True], backpressure=[False, True])
async def layers_match_golden(dut, idle: bool, backpressure: bool) -> None:
    """Every case's outputs equal golden; without stalls its cycles equal the closed form."""
    job = load_job()
    codebook = job.load_codebook()
    tb = AcceleratorTestbench(dut, job.params, idle=idle, backpressure=backpressure, seed=job.seed)
    await tb.start()
    rows = []
    for name, beats, x in job.load_cases(codebook):
        start_cycle, start_wall = tb.cycle, time.perf_counter()
        result = await tb.run_layer(beats, x)
        wall = time.perf_counter() - start_wall
        expected_cycles = layer_cycles(job.params, beats.run)
        rows.append(
            {
                "layer": name,
                "M": beats.program.out_features,
                "N": beats.program.in_features,
                "relu": beats.program.relu,
                "match": result.matches,
                "cycles": result.cycles,
                "model_cycles": expected_cycles,
                "utilization": utilization(job.params, beats.run, result.cycles),
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
    tb = AcceleratorTestbench(dut, job.params, idle=True, backpressure=True, seed=job.seed)
    await tb.start()
    name, beats, x = job.load_cases(codebook)[job.reset_case or 0]
    index_beats = beats.tiling.beats
    first = cocotb.start_soon(tb.run_layer(beats, x))
    while len(tb.sources["index"].cycles) < index_beats // 2:
        await RisingEdge(dut.clk)
    first.cancel()
    interrupted = {
        "index_beats": index_beats,
        "index_beats_before_reset": len(tb.sources["index"].cycles),
        "outputs_before_reset": len(tb.sink.received),
    }
    await tb.reset()
    result = await tb.run_layer(beats, x)
    job.write_result(
        "reset_mid_layer",
        [{"layer": name, "match": result.matches, "cycles": result.cycles} | interrupted],
    )
    assert result.matches, (
        f"{name} after reset: RTL {result.outputs.tolist()} != golden {result.expected.tolist()}"
    )


@cocotb.test(timeout_time=NETWORK_TIMEOUT_S, timeout_unit="sec")
async def network_matches_golden(dut) -> None:
    """Every layer output of every image equals golden's on the same input; without stalls every
    layer run takes the closed-form cycles (the host compares them, see
    :mod:`vq4all.sim.rtl.network`)."""
    job = load_job()
    codebook = job.load_codebook()
    host = NetworkHost.for_job(job, codebook)
    tb = AcceleratorTestbench(
        dut,
        job.params,
        idle=job.network.idle,
        backpressure=job.network.backpressure,
        seed=job.seed,
    )
    await tb.start()
    try:
        images, labels = job.network.load_images()
        for image, index, label, golden in host.inputs(images, labels, job.network.image_indices):
            # Each image stalls as it would alone, so that one image can be replayed exactly.
            tb.reseed(job.seed + index)
            start_cycle = tb.cycle
            steps = host.image(image, index, golden)
            request = next(steps)
            while True:
                result = await tb.run_layer(*request)
                try:
                    request = steps.send(result)
                except StopIteration as done:
                    record = done.value
                    break
            host.image_done(record, label, tb.cycle - start_cycle)
    finally:
        job.write_result(NETWORK_RESULT, host.result())
