"""cocotb tests of the generated accelerator, run inside Verilator by :mod:`sim.build`.

They read the job named by ``$VQ4ALL_JOB`` (:mod:`sim.job`), check every output against golden
exactly, assert the closed-form cycle count when no stream stalls, and write what they measured
to the job's results directory.

``network_matches_golden`` runs a whole network program, image after image, in this one
simulator process: every layer op on the RTL with that layer's indices and requantization
parameters and the real int8 activations of the ops before it, every host op (pooling, flatten,
ReLU, residual add) in golden between them, as a host CPU would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cocotb
import numpy as np
import torch
from cocotb.triggers import RisingEdge

from golden.network import LayerOp, load_network, quantize_input
from sim.cycles import layer_cycles, utilization
from sim.encode import LayerBeats
from sim.job import Job, load_job
from sim.testbench import AcceleratorTestbench

#: No layer test may run longer than this much simulated time.
TEST_TIMEOUT_MS = 200
#: A network run is bounded per layer by the testbench's hang guard; this bounds the whole run
#: (a billion cycles of 10 ns), far above any run that the command line allows.
NETWORK_TIMEOUT_S = 10
PROGRESS_NAME = "progress.jsonl"
NETWORK_RESULT = "network"


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
    tb = AcceleratorTestbench(
        dut, job.params, codebook, idle=True, backpressure=True, seed=job.seed
    )
    await tb.start()
    name, beats, x = job.load_cases(codebook)[job.reset_case or 0]
    index_beats = beats.run.columns * beats.tiling.beats
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


class _NetworkRecord:
    """What a network run measured, written as ``network.json`` (read by :mod:`sim.network`)
    and, image by image, as progress lines."""

    def __init__(self, job: Job, layer_ops: dict[int, LayerOp]) -> None:
        self.job = job
        self.layers = {
            i: {"op": i, "name": op.name, "cycles": [], "bit_exact": []}
            for i, op in layer_ops.items()
        }
        self.images: list[dict] = []
        self.mismatches: list[dict] = []
        self.simulated_cycles = 0
        self.wall_seconds = 0.0
        self.progress = Path(job.results_dir) / PROGRESS_NAME
        self.progress.write_text("")

    def image_done(self, record: dict, cycles: int, wall: float) -> None:
        self.images.append(record)
        self.simulated_cycles += cycles
        self.wall_seconds += wall
        line = {
            "images": len(self.images),
            "simulated_cycles": self.simulated_cycles,
            "wall_seconds": self.wall_seconds,
            "mismatches": len(self.mismatches),
        }
        with self.progress.open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def write(self) -> None:
        self.job.write_result(
            NETWORK_RESULT,
            {
                "layers": list(self.layers.values()),
                "images": self.images,
                "mismatches": self.mismatches,
                "simulated_cycles": self.simulated_cycles,
                "wall_seconds": self.wall_seconds,
            },
        )


@cocotb.test(timeout_time=NETWORK_TIMEOUT_S, timeout_unit="sec")
async def network_matches_golden(dut) -> None:
    """Every layer output of every image equals golden's on the same input; without stalls every
    layer run takes the closed-form cycles (the host compares them, see :mod:`sim.network`)."""
    job = load_job()
    run = job.network
    codebook = job.load_codebook()
    program = load_network(run.program, codebook)
    shapes = program.value_shapes()
    layer_ops = {i: op for i, op in enumerate(program.graph) if isinstance(op, LayerOp)}
    beats = {
        i: LayerBeats(job.params, program.layers[op.layer], codebook, shapes[op.input], op.name)
        for i, op in layer_ops.items()
    }
    images = torch.from_numpy(np.load(run.images, allow_pickle=False))
    labels = np.load(run.labels, allow_pickle=False)
    tb = AcceleratorTestbench(
        dut, job.params, codebook, idle=run.idle, backpressure=run.backpressure, seed=job.seed
    )
    await tb.start()
    record = _NetworkRecord(job, layer_ops)
    try:
        for image, index, label in zip(images, run.image_indices, labels, strict=True):
            # Each image stalls as it would alone, so that one image can be replayed exactly.
            tb.reseed(job.seed + index)
            start_cycle, start_wall = tb.cycle, time.perf_counter()
            values = [quantize_input(image[None], program.input_scale)]
            exact = True
            for i, op in enumerate(program.graph):
                if not isinstance(op, LayerOp):
                    values.append(op.apply(values))
                    continue
                result = await tb.run_layer(beats[i], values[op.input][0].numpy())
                record.layers[i]["cycles"].append(result.cycles)
                record.layers[i]["bit_exact"].append(result.matches)
                if not result.matches:
                    exact = False
                    where = {"image": index, "layer": op.name, "op": i}
                    record.mismatches.append(where | result.first_mismatch())
                    assert run.keep_going, f"image {index}, layer {op.name!r}: RTL != golden"
                # The RTL's output goes on, as it would on the hardware.
                values.append(torch.from_numpy(result.outputs[None]))
            prediction = int(values[-1][0].to(torch.int64).argmax())
            record.image_done(
                {"index": index, "label": int(label), "prediction": prediction, "bit_exact": exact},
                tb.cycle - start_cycle,
                time.perf_counter() - start_wall,
            )
    finally:
        record.write()
