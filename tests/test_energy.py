"""The cycle/energy model: hand-computed figures of a tiny program for every architecture, the
laws it must obey (leakage linear in idle time, load energy in loads, ratio 1 when ROM and
SRAM cost the same), the energy tables and their errors, and ``vq4all energy``'s files."""

from __future__ import annotations

import csv
import dataclasses
import json
import struct
import subprocess
import sys

import pytest

from tests.programs import write_digits_program
from vq4all.golden.layer import save_layer
from vq4all.golden.network import load_network
from vq4all.golden.synthetic import random_codebook, random_layer
from vq4all.hw.accelerator import PIPELINE_DEPTH
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.cycles import layer_cycles
from vq4all.sim.arch.mapping import network_runs
from vq4all.sim.energy.model import (
    Program,
    Schedule,
    architecture_named,
    inference_activity,
    memories_for,
    price,
    schedule_activity,
    stored_bits,
    stored_bytes,
)
from vq4all.sim.energy.report import Setup, energy_report, load_programs, parse_schedule
from vq4all.sim.energy.tables import REQUIRED, SHIPPED, TableError, load_table

#: Energies chosen so that every product in the hand computation below is recognisable; the
#: other SRAMs (weights, activations) cost the same at every size.
TINY_TABLE = """
technology:
  node_nm: 45
  clock_mhz: 100
  cells: hp
  word_bits: 64
  codebook_bytes: 2048
  area_um2_per_bit: {codebook_rom: 0.05, codebook_sram: 0.5, sram: 0.25}
ERT:
  version: 0.3
  tables:
  - name: System.mac
    actions:
    - {name: mac, arguments: {weight_bits: 8}, energy: 1}
    - {name: mac, arguments: {weight_bits: 4}, energy: 0.5}
  - name: System.codebook_rom
    actions:
    - {name: read, arguments: null, energy: 2}
    - {name: leak, arguments: null, energy: 0.5 mW}
  - name: System.codebook_sram
    actions:
    - {name: read, arguments: {cells: hp}, energy: 3}
    - {name: write, arguments: {cells: hp}, energy: 5 pJ}
    - {name: leak, arguments: {cells: hp}, energy: 2 mW}
  - name: System.dram
    actions:
    - {name: read, arguments: null, energy: 0.007 nJ}
    - {name: write, arguments: null, energy: 7}
  - name: System.sram
    actions:
    - {name: read, arguments: {bytes: 1024}, energy: 11}
    - {name: read, arguments: {bytes: 1048576}, energy: 11}
    - {name: write, arguments: {bytes: 1024}, energy: 13}
    - {name: write, arguments: {bytes: 1048576}, energy: 13}
    - {name: leak, arguments: {bytes: 1024}, energy: 1 mW}
    - {name: leak, arguments: {bytes: 1048576}, energy: 1 mW}
"""
#: The per-layer codebook sizes of the tiny program's per-layer VQ version.
OWN = (5, 12)


@pytest.fixture
def tiny(tmp_path):
    """The digits program (64 -> 24 -> 10, K=256, D=8) with a per-layer VQ version of the same
    layers (codebooks of 5 and 12 codewords), and the table above, at L=4."""
    (tmp_path / "tiny.yaml").write_text(TINY_TABLE)
    path = write_digits_program(tmp_path, seed=1)
    program = load_network(path)
    runs = tuple(network_runs(program))
    own = tuple(
        dataclasses.replace(run, codebook_entries=k) for run, k in zip(runs, OWN, strict=True)
    )
    params = AcceleratorParams.for_runs(runs, 256, 8, 4)
    return params, Program("tiny", runs, own), load_table(tmp_path / "tiny.yaml")


# The tiny program by hand. Layer 64 -> 24: G=6 groups of L=4 channels, J=8 blocks of D=8, 48
# index beats, 6 output beats; layer 24 -> 10: G=3, J=3, 9 beats, 3 output beats. 64-bit words;
# requantization parameters 32 + 16 + 6 = 54 bits per channel; K=256: 8-bit indices.
MACS = (48 + 9) * 4 * 8
COMPUTE = (1 + 48 + PIPELINE_DEPTH) + (1 + 9 + PIPELINE_DEPTH)
CODEWORD_READS = (48 + 9) * 4  # one 64-bit codeword per lane per beat
ACT_WORDS = 8 + 3, 3 + 2  # reads: J words in; writes: G*L bytes out, in words
#: Stored bits per layer: 24 x 8 indices and 24 channels' parameters, then 10 x 3 and 10.
STORED = {
    "rom": (24 * 8 * 8 + 24 * 54, 10 * 3 * 8 + 10 * 54),
    "int8": (24 * 64 * 8 + 24 * 54, 10 * 24 * 8 + 10 * 54),
    "int4": (24 * 64 * 4 + 24 * 54, 10 * 24 * 4 + 10 * 54),
    # 3- and 4-bit indices into codebooks of 5 and 12 int8 codewords
    "sram_per_layer": (24 * 8 * 3 + 24 * 54 + 5 * 64, 10 * 3 * 4 + 10 * 54 + 12 * 64),
}
#: Weight words read per layer as the RTL streams them: every beat's L indices (or L x D
#: uniform weights), every output beat's L channels' parameters.
WEIGHT_WORDS = {
    "rom": (-(-(48 * 4 * 8 + 6 * 4 * 54) // 64), -(-(9 * 4 * 8 + 3 * 4 * 54) // 64)),
    "int8": (-(-(48 * 256 + 6 * 4 * 54) // 64), -(-(9 * 256 + 3 * 4 * 54) // 64)),
    "int4": (-(-(48 * 128 + 6 * 4 * 54) // 64), -(-(9 * 128 + 3 * 4 * 54) // 64)),
    "sram_per_layer": (-(-(48 * 4 * 3 + 6 * 4 * 54) // 64), -(-(9 * 4 * 4 + 3 * 4 * 54) // 64)),
}


def _alone(params, program, architecture, table, memories, rate_hz=1000.0):
    schedule = Schedule(switch_every=1, rate_hz=rate_hz)
    activity, inferences = schedule_activity(
        params, [program], architecture, table, schedule, memories
    )
    assert inferences == 1
    return activity, price(activity, architecture, memories, table)


def test_stored_bits_by_hand(tiny) -> None:
    params, program, _ = tiny
    assert (WEIGHT_WORDS["rom"], params.index_bits) == ((45, 15), 8)
    for name, bits in STORED.items():
        runs = program.runs_for(name)
        assert tuple(sum(stored_bits(params, r, name).values()) for r in runs) == bits
        assert stored_bytes(params, program, name) == sum(bits) // 8


def test_two_layer_program_by_hand_with_weights_on_chip(tiny) -> None:
    """Every architecture with a weight SRAM that holds its weights: no DRAM traffic after they
    are loaded; the weight SRAM leaks the whole period (one inference alone at 1000/s)."""
    params, program, table = tiny
    period = 1e-3
    active = COMPUTE / 100e6
    acts = ACT_WORDS[0] * 11 + ACT_WORDS[1] * 13
    # (MAC energy, codebook energy, cycles, codebook leakage pJ)
    expected = {
        "rom": (MACS, CODEWORD_READS * 2, COMPUTE, 0.5 * period * 1e9),
        "sram_universal": (MACS, CODEWORD_READS * 3, COMPUTE, 2 * period * 1e9),
        "int8": (MACS, 0, COMPUTE, 0),
        "int4": (MACS * 0.5, 0, COMPUTE, 0),
        # Loads K_l codewords from the weight SRAM (a read there) into a small SRAM (a write),
        # K_l cycles each; its codeword reads are reads of that small SRAM.
        "sram_per_layer": (
            MACS,
            CODEWORD_READS * 11 + sum(OWN) * (11 + 13),
            COMPUTE + sum(OWN),
            (COMPUTE + sum(OWN)) / 100e6 * 1e9,
        ),
    }
    for name, (mac, codebook, cycles, codebook_leak) in expected.items():
        memories = memories_for(params, [program], architecture_named(name))
        assert memories.weight_sram >= stored_bytes(params, program, name)
        activity, energy = _alone(params, program, name, table, memories)
        words = sum(WEIGHT_WORDS[name if name in WEIGHT_WORDS else "rom"])
        assert activity.cycles == cycles and activity.compute_cycles == COMPUTE
        assert energy["mac"] == pytest.approx(mac)
        assert energy["weights"] == pytest.approx(words * 11)
        assert energy["codebook"] == pytest.approx(codebook)
        assert energy["activations"] == pytest.approx(acts)
        assert energy["dram"] == 0
        act_leak = cycles / 100e6 * 1e9  # the activation buffer, only while working
        assert energy["leakage"] == pytest.approx(codebook_leak + period * 1e9 + act_leak), name
        traffic = activity.traffic()
        assert traffic["dram_bytes"] == 0
        assert traffic["on_chip_read_activations_bytes"] == 11 * 8 * 8 // 8
    assert memories_for(params, [program], architecture_named("rom")).weight_sram == 1024
    del active


def test_two_layer_program_by_hand_with_weights_off_chip(tiny) -> None:
    """A 512-byte weight SRAM: the ROM's 451 bytes fit; int8's 2,005 do not. Its first layer
    (1,698 bytes) does not fit the SRAM either and is read from DRAM where it is used; its
    second (307 bytes) streams from DRAM once into the SRAM and is read there."""
    params, program, table = tiny
    rom = memories_for(params, [program], architecture_named("rom"), weight_sram=512)
    _, rom_energy = _alone(params, program, "rom", table, rom)
    assert rom_energy["dram"] == 0
    int8 = memories_for(params, [program], architecture_named("int8"), weight_sram=512)
    activity, energy = _alone(params, program, "int8", table, int8)
    first, second = WEIGHT_WORDS["int8"]
    streamed = -(-STORED["int8"][1] // 64)
    assert (first, second, streamed) == (213, 47, 39)
    assert energy["dram"] == pytest.approx((first + streamed) * 7)
    assert energy["weights"] == pytest.approx(second * 11 + streamed * 13)
    traffic = activity.traffic()
    assert traffic["dram_weights_bytes"] == (48 * 256 + 6 * 4 * 54 + STORED["int8"][1]) // 8
    assert traffic["dram_bytes"] == traffic["dram_weights_bytes"]
    # Not holding weights between inferences, the weight SRAM leaks only while it works.
    assert energy["leakage"] == pytest.approx(2 * COMPUTE / 100e6 * 1e9)


def test_a_layer_whose_activations_overflow_the_buffer_spills_to_dram(tiny) -> None:
    params, program, table = tiny
    memories = memories_for(params, [program], architecture_named("rom"), act_buffer=64)
    activity, energy = _alone(params, program, "rom", table, memories)
    # 64 + 24 bytes overflow 64; 24 + 10 fit: the first layer reads 64 bytes and writes 24.
    assert activity.traffic()["dram_activations_bytes"] == 64 + 24
    assert energy["dram"] == pytest.approx((64 // 8 + 24 // 8) * 7)  # 8 and 3 words


def test_decode_once_reads_each_tiles_weights_once(tiny) -> None:
    """The same layers decoded once per tile: each of the 6 + 3 tiles reads its J x L indices
    and codewords once and its channels' parameters once, writes them into the weight buffer,
    and each beat reads L x D int8 weights from it; a linear layer has one column, so only
    the buffer's traffic is new."""
    params, program, table = tiny
    memories = memories_for(params, [program], architecture_named("rom"), dataflow="decode_once")
    assert memories.weight_buffer == 256  # 4 lanes x 64 inputs, int8, at least 64 bytes
    layers, _ = inference_activity(params, program, "rom", memories, table, dataflow="decode_once")
    for activity, (tiles, blocks, beats) in zip(layers, ((6, 8, 48), (3, 3, 9)), strict=True):
        assert activity.words["codebook", "read", "codebooks"] == tiles * blocks * 4
        assert activity.bits["weight_buffer", "write", "weights"] == tiles * blocks * 4 * 64
        assert activity.bits["weight_buffer", "read", "weights"] == beats * 4 * 64
    wide = Program("wide", (dataclasses.replace(program.runs[0], pixels=16),))
    stream, _ = inference_activity(params, wide, "rom", memories, table)
    once, _ = inference_activity(params, wide, "rom", memories, table, dataflow="decode_once")
    assert stream[0].words["codebook", "read", "codebooks"] == 16 * 48 * 4
    assert once[0].words["codebook", "read", "codebooks"] == 48 * 4
    # Activations are read once per tile of L channels: G=6 times.
    assert once[0].bits["act_buffer", "read", "activations"] == 6 * 16 * 8 * 64


def test_layer_cycles_are_the_closed_form(tiny) -> None:
    """Per layer, by hand: the config beat, the index beats (48 and 9), the pipeline's fill
    (PIPELINE_DEPTH, which the RTL tests measure), and in sram per layer a codebook's load:
    the whole K=256 (the extreme) or the layer's own K_l. These are the cycles the RTL takes."""
    params, program, table = tiny
    assert PIPELINE_DEPTH == 24
    rom = [1 + 48 + 24, 1 + 9 + 24]
    expected = {
        "rom": rom,
        "sram_universal": rom,
        "int8": rom,
        "sram_per_layer_full": [cycles + 256 for cycles in rom],
        "sram_per_layer": [cycles + k for cycles, k in zip(rom, OWN, strict=True)],
    }
    for name, cycles in expected.items():
        memories = memories_for(params, [program], architecture_named(name))
        layers, _ = inference_activity(params, program, name, memories, table)
        assert [a.cycles for a in layers] == cycles
    for mode, extra in (("rom", 0), ("sram", 256)):
        model = dataclasses.replace(params, mode=mode)
        assert [layer_cycles(model, run) for run in program.runs] == [c + extra for c in rom]
    sram = dataclasses.replace(params, mode="sram")
    assert [layer_cycles(sram, run) for run in program.per_layer_runs] == expected["sram_per_layer"]


def test_a_per_layer_codebook_of_k_codewords_loads_k_cycles_and_k_times_d_bytes(tiny) -> None:
    """Changing a layer's own codebook size by K_l changes its load by exactly K_l cycles and
    K_l x D bytes, read from where the weights are and written into the codebook SRAM."""
    params, program, table = tiny
    architecture = architecture_named("sram_per_layer")
    results = {}
    for entries in (16, 4):
        runs = tuple(dataclasses.replace(r, codebook_entries=entries) for r in program.runs)
        small = Program("small", program.runs, runs)
        memories = memories_for(params, [small], architecture, weight_sram=4096)
        results[entries] = inference_activity(params, small, architecture, memories, table)[0]
    for big, small in zip(results[16], results[4], strict=True):
        assert big.cycles - small.cycles == big.load_cycles - small.load_cycles == 12
        for key in (("codebook", "write", "codebooks"), ("weight_sram", "read", "codebooks")):
            assert big.bits[key] - small.bits[key] == 12 * 8 * 8


def test_double_buffering_hides_a_load_under_the_previous_layer(tiny) -> None:
    params, program, table = tiny
    longer = Program("long", (dataclasses.replace(program.runs[0], pixels=64),) + program.runs)
    schedule = Schedule(switch_every=1, rate_hz=1.0, double_buffer=True)
    memories = memories_for(params, [longer], architecture_named("sram_per_layer_full"))
    activity, _ = schedule_activity(
        params, [longer], "sram_per_layer_full", table, schedule, memories
    )
    # Each load hides under the previous run: run 1's under run 0 (64 columns of 48 beats),
    # run 2's under run 1 (48 beats), run 0's under run 2 (9 beats), back to back.
    computes = [1 + 64 * 48 + PIPELINE_DEPTH, 1 + 48 + PIPELINE_DEPTH, 1 + 9 + PIPELINE_DEPTH]
    expected = sum(max(0, 256 - computes[i - 1]) for i in range(3))
    assert activity.stall_cycles == expected > 0
    assert activity.cycles == sum(computes) + activity.stall_cycles
    single = price(activity, "sram_per_layer_full", memories, table)["leakage"]
    double = price(activity, "sram_per_layer_full", memories, table, double_buffer=True)
    assert double["leakage"] > single  # two codebook SRAMs leak


def test_leakage_grows_with_idle_time(tiny) -> None:
    params, program, table = tiny
    for name in ("rom", "sram_universal", "int4"):
        memories = memories_for(params, [program], architecture_named(name))
        leak = [
            price(
                schedule_activity(params, [program], name, table, Schedule(rate_hz=r), memories)[0],
                name,
                memories,
                table,
            )["leakage"]
            for r in (10.0, 5.0, 1.0)
        ]
        # Affine in the period: what is always powered, plus the active-only memories' constant.
        assert leak[2] - leak[0] == pytest.approx(9 * (leak[1] - leak[0]))
        assert leak[1] > leak[0] > 0


def test_load_energy_is_linear_in_the_number_of_loads(tiny) -> None:
    params, program, table = tiny
    other = Program("other", program.runs[::-1])
    per_load = 256 * (7 + 5)
    universal = architecture_named("sram_universal")
    for programs, evict in (([program], True), ([program, other], False)):
        memories = memories_for(params, programs, universal)
        activity, _ = schedule_activity(
            params, programs, universal, table, Schedule(evict_on_switch=evict), memories
        )
        assert activity.codebook_loads == 0
    for count in (2, 3, 5):
        programs = [Program(f"p{i}", program.runs) for i in range(count)]
        memories = memories_for(params, programs, universal)
        activity, _ = schedule_activity(params, programs, universal, table, Schedule(), memories)
        assert activity.codebook_loads == count  # one reload per switch
        energy = price(activity, universal, memories, table)
        load = energy["dram"] + activity.words["codebook", "write", "codebooks"] * 5
        assert load == pytest.approx(count * per_load)
        assert activity.load_cycles == count * 256


def test_weights_that_do_not_fit_together_reload_on_each_switch(tiny) -> None:
    """Two programs of 451 bytes each on a 512-byte weight SRAM: each fits alone, not both, so
    a switch reloads the next one's weights from DRAM; on a 1 KiB SRAM they stay."""
    params, program, table = tiny
    programs = [program, Program("again", program.runs)]
    rom = architecture_named("rom")
    for size, reloads in ((512, 2), (1024, 0)):
        memories = memories_for(params, programs, rom, weight_sram=size)
        activity, _ = schedule_activity(params, programs, rom, table, Schedule(), memories)
        assert activity.traffic()["dram_weights_bytes"] == reloads * sum(STORED["rom"]) // 8


def test_equal_memories_and_free_loads_give_equal_energy(tmp_path) -> None:
    """ROM read energy equal to the SRAM's, no DRAM or write cost, no leakage: at fraction 1
    the ROM and the universal SRAM take the same energy, and the break-even is there."""
    text = TINY_TABLE.replace("energy: 0.007 nJ", "energy: 0").replace("energy: 5 pJ", "energy: 0")
    text = text.replace("energy: 0.5 mW", "energy: 0 mW").replace("energy: 2 mW", "energy: 0 mW")
    (tmp_path / "free.yaml").write_text(text)
    program = write_digits_program(tmp_path, seed=2)
    report = energy_report([program], load_table(tmp_path / "free.yaml"))
    sweep = report.sweeps["rom_read_fraction"]
    assert sweep["x"][-1] == 1.0
    assert sweep["rom_pj"][-1] == pytest.approx(sweep["sram_universal_pj"][-1], rel=1e-12)
    assert sweep["rom_pj"][0] < sweep["sram_universal_pj"][0]  # a cheaper ROM read wins
    assert report.break_even["rom_read_fraction"]["sram_universal"] == pytest.approx(1.0)


def test_break_even_of_the_dram_cost(tmp_path) -> None:
    """With a ROM read dearer than the SRAM's (free writes, no leakage), the whole-K reload pays
    off below some DRAM cost: the reported point is where the two energies meet."""
    text = TINY_TABLE.replace("{name: read, arguments: null, energy: 2}", "{name: read, energy: 9}")
    text = text.replace("energy: 5 pJ", "energy: 0").replace("0.5 mW", "0 mW")
    text = text.replace("energy: 2 mW", "energy: 0 mW").replace("energy: 1 mW", "energy: 0 mW")
    (tmp_path / "dear.yaml").write_text(text)
    table = load_table(tmp_path / "dear.yaml")
    program = write_digits_program(tmp_path, seed=3)
    setup = Setup(Schedule(rate_hz=1e5))
    report = energy_report([program], table, setup)
    crossing = report.break_even["dram_pj_per_bit"]["sram_per_layer_full"]
    # ROM costs 228 reads x (9 - 3) pJ more; two loads read 512 words of 64 bits from DRAM.
    assert crossing == pytest.approx(228 * 6 / (512 * 64))
    at = table.with_value("dram", "read", crossing * 64)
    again = energy_report([program], at, setup).schedule_result
    assert again["rom"]["energy_pj"]["total"] == pytest.approx(
        again["sram_per_layer_full"]["energy_pj"]["total"]
    )


def test_sram_energy_follows_its_size() -> None:
    """The 22 nm table's SRAM figures at its sizes, a power law between them, and other cells
    scaled as the 512 KiB codebook SRAM's are."""
    table = load_table("22nm")
    assert table.sized("sram", "read", 8192) == pytest.approx(1.55)
    assert table.sized("sram", "read", 524288) == pytest.approx(15.5)
    between = table.sized("sram", "read", 16384)
    assert 1.55 < between < 4.40
    assert between == pytest.approx(1.55 * (4.40 / 1.55) ** 0.5)
    assert table.sized("sram", "read", 1024) < 1.55  # below the smallest, the first law
    assert table.sized("sram", "leak", 524288) == pytest.approx(44.0)
    lstp = table.with_cells("lstp")
    assert lstp.sized("sram", "leak", 524288) == pytest.approx(0.008)


def test_shipped_tables_name_a_source_for_every_figure() -> None:
    assert {"22nm", "45nm"} <= set(SHIPPED)
    for name in SHIPPED:
        table = load_table(name)
        assert all(entry.source.strip() for entry in table.entries), name
        assert {(e.component, e.action) for e in table.entries} >= set(REQUIRED)
        assert all(figure.source for figure in table.technology.area_um2_per_bit.values())
        # The ROM read energy has no published figure: it must be marked as an assumption.
        assert any("codebook_rom.read" in text for text in table.assumptions()), name
    cacti = load_table("22nm").entry("codebook_sram", "leak", cells="lstp")
    assert cacti.value == 0.008 and "CACTI 7" in cacti.source


def test_accelergy_version_0_2_and_leak_per_cycle(tmp_path) -> None:
    """Version 0.2's maps read as 0.3's lists; a numeric leak is pJ per cycle (Accelergy's),
    a power at the clock: 20 pJ x 100 MHz = 2 mW."""
    sizes = (1024, 1048576)
    tables = {
        "mac": {"mac": [{"arguments": {"weight_bits": 8}, "energy": 1}]},
        "codebook_rom": {"read": [{"energy": 2}], "leak": [{"energy": "0.5 mW"}]},
        "codebook_sram": {
            "read": [{"arguments": {"cells": "hp"}, "energy": 3}],
            "write": [{"energy": 5}],
            "leak": [{"energy": 20}],
        },
        "dram": {"read": [{"energy": 7}], "write": [{"energy": 7}]},
        "sram": {
            action: [{"arguments": {"bytes": b}, "energy": value} for b in sizes]
            for action, value in (("read", 11), ("write", 13), ("leak", 10))
        },
    }
    technology = TINY_TABLE.split("ERT:")[0]
    (tmp_path / "v02.yaml").write_text(
        technology + "ERT:\n  version: 0.2\n  tables: " + json.dumps(tables) + "\n"
    )
    (tmp_path / "v03.yaml").write_text(TINY_TABLE)
    old, new = load_table(tmp_path / "v02.yaml"), load_table(tmp_path / "v03.yaml")
    for component, action in REQUIRED:
        if component == "sram":
            for size in (1024, 4096):
                assert old.sized(component, action, size) == pytest.approx(
                    new.sized(component, action, size)
                )
        else:
            assert old.energy(component, action, weight_bits=8) == pytest.approx(
                new.energy(component, action, weight_bits=8)
            )


def test_table_without_technology_takes_the_default_and_says_so(tmp_path) -> None:
    (tmp_path / "ert.yaml").write_text("ERT:" + TINY_TABLE.split("ERT:")[1])
    table = load_table(tmp_path / "ert.yaml")
    assert table.technology.origin == str(SHIPPED["22nm"])
    program = write_digits_program(tmp_path, seed=4)
    notes = energy_report([program], table).notes
    assert any("no technology section" in note for note in notes)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    - {name: write, arguments: null, energy: 7}\n",
            "",
            "component 'dram' action 'write' is missing",
        ),
        ("energy: 11}", "energy: -11}", "component 'sram' action 'read': energy -11"),
        ("energy: 11}", "energy: eleven}", "component 'sram' action 'read': energy"),
        ("energy: 0.007 nJ", "energy: 7 pJoules", "component 'dram' action 'read': unknown unit"),
        ("energy: 5 pJ", "energy: 5 mW", "component 'codebook_sram' action 'write': 'mW' is a"),
    ],
)
def test_bad_tables_are_refused_naming_file_component_and_action(
    tmp_path, old, new, message
) -> None:
    assert old in TINY_TABLE
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_TABLE.replace(old, new))
    with pytest.raises(TableError) as caught:
        load_table(bad)
    assert str(caught.value).startswith(f"{bad}: ")
    assert message in str(caught.value)
    # The command line says it in one line and writes nothing.
    program = write_digits_program(tmp_path, seed=5)
    out = tmp_path / "out"
    result = _cli("energy", str(program), "--table", str(bad), "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not out.exists()


def test_schedule_parsing() -> None:
    schedule = parse_schedule("switch_every=3, rate_hz=2.5,evict_on_switch=no,double_buffer=1")
    assert schedule == Schedule(3, 2.5, False, True)
    for text, fragment in (
        ("every=3", "'every=3' is not one of switch_every="),
        ("switch_every=x", "switch_every='x' is not a int"),
        ("switch_every=0", "switch_every must be a positive integer"),
        ("evict_on_switch=maybe", "evict_on_switch='maybe' is not a bool"),
    ):
        with pytest.raises(ValueError, match="--schedule: .*" + fragment.replace("(", r"\(")):
            parse_schedule(text)


def test_programs_of_different_codebooks_are_refused(tmp_path) -> None:
    first = write_digits_program(tmp_path, seed=6, name="first")
    second = write_digits_program(tmp_path, seed=7, name="second")
    with pytest.raises(ValueError, match=rf"{second}: field 'codebook_sha256'"):
        load_programs([first, second])
    with pytest.raises(ValueError, match=r"field 'format'"):
        load_programs([tmp_path / "codebook.safetensors"])


def test_programs_of_different_activation_widths_are_refused(tmp_path, rng) -> None:
    codebook = random_codebook(256, 8, seed=0)
    paths = []
    for bits in (8, 16):
        paths.append(tmp_path / f"layer{bits}.safetensors")
        save_layer(paths[-1], random_layer(codebook, 12, 40, False, rng, activation_bits=bits))
    assert load_programs(paths[1:])[4] == 16
    with pytest.raises(
        ValueError,
        match=rf"{paths[1]}: field 'activation_bits': the programs' activations are "
        r"8 and 16 bits wide",
    ):
        load_programs(paths)


def test_int16_activations_move_twice_the_activation_bytes(tiny) -> None:
    """The same runs with int16 activations: the act beats are twice as wide (the words in,
    16 + 6 = 22 rather than 8 + 3; the outputs 6 + 3 words rather than 3 + 2), the rest is the
    same."""
    params, program, table = tiny
    wide = dataclasses.replace(params, activation_bits=16)
    memories = memories_for(params, [program], architecture_named("rom"))
    _, narrow_activity = inference_activity(params, program, "rom", memories, table)
    _, wide_activity = inference_activity(wide, program, "rom", memories, table)

    def act_words(activity):
        return tuple(activity.words["act_buffer", a, "activations"] for a in ("read", "write"))

    assert act_words(narrow_activity) == (8 + 3, 3 + 2)
    assert act_words(wide_activity) == (16 + 6, 6 + 3)
    assert wide_activity.macs == narrow_activity.macs
    assert wide_activity.cycles == narrow_activity.cycles


def test_a_rate_the_accelerator_cannot_keep_up_with(tiny) -> None:
    params, program, table = tiny
    memories = memories_for(params, [program], architecture_named("sram_per_layer_full"))
    with pytest.raises(ValueError, match=r"rate_hz=1e\+07: sram_per_layer_full needs"):
        schedule_activity(
            params, [program], "sram_per_layer_full", table, Schedule(rate_hz=1e7), memories
        )


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vq4all.cli", *args], capture_output=True, text=True
    )


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_energy_command_writes_json_csv_and_plots(tmp_path) -> None:
    """Two networks, the first with a per-layer VQ program too, beside the accuracies of a
    model.json: the answer per network and method, the schedule over both, CSV rows per layer,
    inference and schedule, and the plots."""
    first = write_digits_program(tmp_path, seed=8, name="first")
    second = write_digits_program(tmp_path, seed=8, name="second")
    own = write_digits_program(tmp_path, seed=8, name="first-kmeans", per_layer=(7, 20))
    rows = [
        {"network": "first", "method": method, "value": value}
        for method, value in (("vq4all", 91.0), ("kmeans", 40.0), ("uniform4", 92.0))
    ]
    (tmp_path / "model.json").write_text(json.dumps({"rows": rows}))
    out = tmp_path / "energy"
    args = [str(first), str(second), str(own), "--accuracy", str(tmp_path / "model.json")]
    result = _cli("energy", *args, "--table", "45nm", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "--schedule switch_every=10,rate_hz=100.0" in result.stdout  # the default, said
    assert "45nm.yaml (45 nm, hp SRAM cells" in result.stdout
    report = json.loads((out / "energy.json").read_text())
    assert report["setup"]["schedule"]["order"] == ["first", "second"]
    assert [p["kind"] for p in report["programs"]] == ["vq4all", "vq4all", "per_layer"]
    answer = {(e["network"], e["method"], e["architecture"]): e for e in report["answer"]}
    assert answer["first", "kmeans", "sram_per_layer"]["accuracy"] == 40.0
    assert answer["first", "vq4all", "rom"]["accuracy"] == 91.0
    assert answer["first", "uniform8", "int8"]["accuracy"] is None
    assert answer["first", "vq4all", "sram_per_layer_full"]["extreme"]
    assert ("second", "kmeans", "sram_per_layer") not in answer  # it has no per-layer program
    # Where each design's weights fit: both networks' together (the ROM's 451 bytes each).
    fits = report["sweeps"]["weight_sram_kib"]["fits_kib"]
    assert fits["rom"] == pytest.approx(2 * 451 / 1024)
    # The per-layer codebooks of 7 and 20 codewords: K_l cycles more than the ROM's.
    cycles = {a: report["networks"]["first"][a]["cycles"] for a in ("rom", "sram_per_layer")}
    assert cycles["sram_per_layer"] - cycles["rom"] == 7 + 20
    # sram_per_layer is left out of the schedule: the second network has no per-layer program.
    assert set(report["schedule_result"]) == {
        "rom",
        "sram_universal",
        "int8",
        "int4",
        "sram_per_layer_full",
    }
    # A reload at each of the 2 switches of a round of 20 inferences, per inference.
    assert report["schedule_result"]["sram_universal"]["codebook_loads"] == 2 / 20
    pngs = sorted(out.glob("*.png"))
    assert {p.stem for p in pngs} >= {"accuracy_vs_energy", "traffic", "sweeps"}
    for png in pngs:
        width, height = _png_size(png)
        assert width >= 600 and height >= 400 and png.stat().st_size > 20_000, png
    with (out / "energy.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    assert {"scope", "network", "layer", "architecture", "cycles", "energy_total_pj"} <= columns
    assert {"dram_weights_bytes", "on_chip_read_codebooks_bytes", "energy_leakage_pj"} <= columns
    # 2 layers x (6 architectures of the first + 5 of the second), 6 + 5 inferences, 5 schedules
    assert [row["scope"] for row in rows].count("layer") == 2 * 11
    assert len(rows) == 2 * 11 + 11 + 5
    total = sum(float(r["energy_total_pj"]) for r in rows if r["scope"] == "schedule")
    schedule = report["schedule_result"].values()
    assert total == pytest.approx(sum(r["energy_pj"]["total"] * r["inferences"] for r in schedule))


def test_a_per_layer_program_needs_the_networks_vq4all_program(tmp_path) -> None:
    own = write_digits_program(tmp_path, seed=8, name="own", per_layer=(7, 20))
    with pytest.raises(ValueError, match="needs a VQ4ALL program of each network"):
        load_programs([own])
    other = tmp_path / "other"
    other.mkdir()
    first = write_digits_program(other, seed=8)
    programs, *_ = load_programs([first, own])
    assert [run.codebook_entries for run in programs[0].per_layer_runs] == [7, 20]


def test_energy_command_with_the_schedule_and_cells(tmp_path) -> None:
    program = write_digits_program(tmp_path, seed=9)
    out = tmp_path / "out"
    args = ["energy", str(program), "--schedule", "rate_hz=1", "--cells", "lstp", "-o", str(out)]
    result = _cli(*args)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "energy.json").read_text())
    assert report["technology"]["cells"] == "lstp"
    assert report["setup"]["schedule"]["rate_hz"] == 1.0
    bad = _cli("energy", str(program), "--cells", "ulp", "-o", str(tmp_path / "none"))
    assert bad.returncode == 2 and "no entry for cells=ulp" in bad.stderr
    assert not (tmp_path / "none").exists()


def test_break_even_rate_is_where_the_energies_meet(tmp_path) -> None:
    """The ROM's weights (451 bytes) sit in a smaller weight SRAM than int8's (2,005 bytes):
    with leakage in proportion to the size, 1 mW + the ROM's 0.5 against 2 mW; with a dear
    ROM read (30 pJ), more dynamic energy. The rate where they meet is reported, and there the
    two take the same energy."""
    text = TINY_TABLE.replace(
        "{name: read, arguments: null, energy: 2}", "{name: read, energy: 30}"
    )
    (tmp_path / "tiny.yaml").write_text(
        text.replace(
            "{name: leak, arguments: {bytes: 1048576}, energy: 1 mW}",
            "{name: leak, arguments: {bytes: 1048576}, energy: 1024 mW}",
        )
    )
    table = load_table(tmp_path / "tiny.yaml")
    program = write_digits_program(tmp_path, seed=2)
    rate = energy_report([program], table).break_even["rate_hz"]["int8"]
    assert rate is not None and rate > 0
    at = energy_report([program], table, Setup(Schedule(rate_hz=rate))).networks["network"]
    assert at["rom"]["energy_pj"]["total"] == pytest.approx(at["int8"]["energy_pj"]["total"])


def test_the_report_shows_what_decoding_once_saves(tmp_path) -> None:
    """The dynamic energy of each network on each design with both dataflows. Linear layers
    have one column: decoding once reuses nothing, and only adds the weight buffer's traffic and
    the activations' reads per tile, so it costs more on every design."""
    (tmp_path / "tiny.yaml").write_text(TINY_TABLE)
    table = load_table(tmp_path / "tiny.yaml")
    program = write_digits_program(tmp_path, seed=2)
    report = energy_report([program], table)
    flows = report.dataflows["network"]
    assert set(flows) == {"int8", "int4", "rom", "sram_universal", "sram_per_layer_full"}
    stream = energy_report([program], table, Setup(dataflow="stream")).networks["network"]
    for name, energies in flows.items():
        dynamic = stream[name]["energy_pj"]["total"] - stream[name]["energy_pj"]["leakage"]
        assert energies["stream"] == pytest.approx(dynamic)
        assert energies["decode_once"] > energies["stream"]
    assert "dynamic energy saved by decoding each tile's weights once" in report.format()
