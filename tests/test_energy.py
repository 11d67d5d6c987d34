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
    ARCHITECTURE_NAMES,
    Program,
    Schedule,
    inference_activity,
    price,
    schedule_activity,
)
from vq4all.sim.energy.report import energy_report, load_programs, parse_schedule
from vq4all.sim.energy.tables import REQUIRED, SHIPPED, TableError, load_table

#: Energies chosen so that every product in the hand computation below is recognisable.
TINY_TABLE = """
technology:
  node_nm: 45
  clock_mhz: 100
  cells: hp
  word_bits: 64
  codebook_bytes: 2048
  area_um2_per_bit: {codebook_rom: 0.05, codebook_sram: 0.5}
ERT:
  version: 0.3
  tables:
  - name: System.mac
    actions:
    - {name: mac, arguments: null, energy: 1}
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
  - name: System.index_buffer
    actions:
    - {name: read, arguments: null, energy: 11}
  - name: System.act_buffer
    actions:
    - {name: read, arguments: null, energy: 13}
    - {name: write, arguments: null, energy: 17}
"""


@pytest.fixture
def tiny(tmp_path):
    """The digits program (64 -> 24 -> 10, K=256, D=8) and the table above, at L=4."""
    (tmp_path / "tiny.yaml").write_text(TINY_TABLE)
    path = write_digits_program(tmp_path, seed=1)
    program = load_network(path)
    runs = network_runs(program)
    params = AcceleratorParams.for_runs(runs, 256, 8, 4)
    return params, Program("tiny", tuple(runs)), load_table(tmp_path / "tiny.yaml")


def test_tiny_program_by_hand(tiny) -> None:
    """Layer 64 -> 24: G=6 groups, J=8 blocks, 48 index beats, 6 output beats; layer 24 -> 10:
    G=3, J=3, 9 beats, 3 output beats. L=4 lanes, D=8, K=256 (8-bit indices), 64-bit words,
    requantization parameters 32 + 16 + 6 bits per channel. One inference alone at 1000/s."""
    params, program, table = tiny
    schedule = Schedule(switch_every=1, rate_hz=1000.0)
    macs = (48 + 9) * 4 * 8
    codebook_reads = (48 + 9) * 4  # one 64-bit codeword per lane per beat
    # index bits + requantization bits, in 64-bit words, per layer
    index_reads = -(-(48 * 4 * 8 + 6 * 4 * 54) // 64) + -(-(9 * 4 * 8 + 3 * 4 * 54) // 64)
    assert index_reads == 45 + 15
    act_reads, act_writes = 8 + 3, 3 + 2  # J words in; G*L bytes out, in words
    # config + index beats + the pipeline's fill, per layer
    compute = (1 + 48 + PIPELINE_DEPTH) + (1 + 9 + PIPELINE_DEPTH)
    common = macs * 1 + index_reads * 11 + act_reads * 13 + act_writes * 17
    period_s = 1e-3
    expected = {
        # cycles, codebook energy (reads + loads), leakage pJ (mW * s * 1e9), traffic bytes
        "rom": (compute, codebook_reads * 2, 0.5 * period_s * 1e9, 0),
        "sram_per_layer": (
            compute + 2 * 256,
            codebook_reads * 3 + 2 * 256 * (7 + 5),
            2 * (compute + 2 * 256) / 100e6 * 1e9,  # powered only while it works
            2 * 256 * 8 * 2,  # DRAM reads and SRAM writes of two 256-codeword loads
        ),
        "sram_universal": (compute, codebook_reads * 3, 2 * period_s * 1e9, 0),
    }
    for architecture, (cycles, codebook, leakage, load_bytes) in expected.items():
        activity, inferences = schedule_activity(params, [program], architecture, table, schedule)
        energy = price(activity, table)
        assert (inferences, activity.cycles, activity.compute_cycles) == (1, cycles, compute)
        assert energy["mac"] + energy["index"] + energy["activation"] == common
        assert energy["codebook_read"] + energy["codebook_load"] == pytest.approx(codebook)
        assert energy["leakage"] == pytest.approx(leakage)
        assert energy["total"] == pytest.approx(common + codebook + leakage)
        traffic = activity.traffic(64)
        read = "codebook_rom_read_bytes" if architecture == "rom" else "codebook_sram_read_bytes"
        assert traffic[read] == codebook_reads * 8
        assert traffic["codebook_sram_write_bytes"] + traffic["dram_read_bytes"] == load_bytes
        assert (traffic["index_read_bytes"], traffic["act_read_bytes"]) == (60 * 8, 11 * 8)


def test_layer_cycles_are_the_closed_form(tiny) -> None:
    """Per layer, by hand: the config beat, the index beats (48 and 9), the pipeline's fill
    (PIPELINE_DEPTH, which the RTL tests measure), and in sram per layer the K=256 codewords'
    load; the universal SRAM computes as the ROM does. These are the cycles the RTL takes."""
    params, program, table = tiny
    assert PIPELINE_DEPTH == 18
    rom = [1 + 48 + 18, 1 + 9 + 18]
    expected = {
        "rom": rom,
        "sram_per_layer": [cycles + 256 for cycles in rom],
        "sram_universal": rom,
    }
    for architecture, cycles in expected.items():
        layers, _ = inference_activity(params, program, architecture, table)
        assert [a.cycles for a in layers] == cycles
    for mode, extra in (("rom", 0), ("sram", 256)):
        model = dataclasses.replace(params, mode=mode)
        assert [layer_cycles(model, run) for run in program.runs] == [c + extra for c in rom]


def test_a_per_layer_codebook_loads_its_own_codewords(tiny) -> None:
    """A layer with its own codebook of K_l codewords loads K_l, not the accelerator's K: the
    load changes by exactly K - K_l cycles and (K - K_l) x D bytes from DRAM and into the SRAM
    (D=8: one 64-bit word a codeword), and the ROM and the universal SRAM load nothing here."""
    params, program, table = tiny
    sram = dataclasses.replace(params, mode="sram")
    for entries in (16, 4):
        small = Program(
            "small",
            tuple(dataclasses.replace(run, codebook_entries=entries) for run in program.runs),
        )
        for run, whole_run in zip(small.runs, program.runs, strict=True):
            assert layer_cycles(sram, whole_run) - layer_cycles(sram, run) == 256 - entries
        whole, _ = inference_activity(params, program, "sram_per_layer", table)
        own, _ = inference_activity(params, small, "sram_per_layer", table)
        for a, b in zip(whole, own, strict=True):
            assert (a.load_cycles, b.load_cycles) == (256, entries)
            assert a.cycles - b.cycles == 256 - entries
            bytes_a, bytes_b = a.traffic(64), b.traffic(64)
            for level in ("dram_read_bytes", "codebook_sram_write_bytes"):
                assert (bytes_a[level], bytes_b[level]) == (256 * 8, entries * 8)
        for other in ("rom", "sram_universal"):
            assert all(
                a.load_cycles == 0 for a in inference_activity(params, small, other, table)[0]
            )


def test_double_buffering_hides_a_load_under_the_previous_layer(tiny) -> None:
    params, program, table = tiny
    longer = Program("long", (dataclasses.replace(program.runs[0], pixels=64),) + program.runs)
    schedule = Schedule(switch_every=1, rate_hz=1.0, double_buffer=True)
    activity, _ = schedule_activity(params, [longer], "sram_per_layer", table, schedule)
    # Each load hides under the previous run: run 1's under run 0 (64 columns of 48 beats),
    # run 2's under run 1 (48 beats), run 0's under run 2 (9 beats), back to back.
    computes = [1 + 64 * 48 + PIPELINE_DEPTH, 1 + 48 + PIPELINE_DEPTH, 1 + 9 + PIPELINE_DEPTH]
    expected = sum(max(0, 256 - computes[i - 1]) for i in range(3))
    assert activity.stall_cycles == expected > 0
    assert activity.cycles == sum(computes) + activity.stall_cycles
    assert activity.sram_copies == 2


def test_leakage_is_linear_in_idle_time(tiny) -> None:
    params, program, table = tiny
    for architecture in ("rom", "sram_universal"):
        leak = [
            price(
                schedule_activity(params, [program], architecture, table, Schedule(rate_hz=r))[0],
                table,
            )["leakage"]
            for r in (10.0, 5.0, 1.0)
        ]
        assert leak[1] == pytest.approx(2 * leak[0]) and leak[2] == pytest.approx(10 * leak[0])


def test_load_energy_is_linear_in_the_number_of_loads(tiny, tmp_path) -> None:
    params, program, table = tiny
    other = Program("other", program.runs[::-1])
    per_load = 256 * (7 + 5)
    for programs, evict, loads in (([program], True, 0), ([program, other], False, 0)):
        activity, _ = schedule_activity(
            params, programs, "sram_universal", table, Schedule(evict_on_switch=evict)
        )
        assert activity.codebook_loads == loads
    for count in (2, 3, 5):
        programs = [Program(f"p{i}", program.runs) for i in range(count)]
        activity, _ = schedule_activity(params, programs, "sram_universal", table, Schedule())
        assert activity.codebook_loads == count  # one reload per switch
        assert price(activity, table)["codebook_load"] == pytest.approx(count * per_load)
        assert activity.load_cycles == count * 256


def test_equal_memories_and_free_loads_give_ratio_one(tmp_path) -> None:
    """ROM read energy equal to the SRAM's, no DRAM or write cost, no leakage: the sweep's
    point at fraction 1 is ratio 1 against both SRAM architectures (one network)."""
    text = TINY_TABLE.replace("energy: 0.007 nJ", "energy: 0").replace("energy: 5 pJ", "energy: 0")
    text = text.replace("energy: 0.5 mW", "energy: 0 mW").replace("energy: 2 mW", "energy: 0 mW")
    (tmp_path / "free.yaml").write_text(text)
    program = write_digits_program(tmp_path, seed=2)
    report = energy_report([program], load_table(tmp_path / "free.yaml"), Schedule())
    sweep = report.sweeps["rom_read_fraction"]
    assert sweep["x"][-1] == 1.0
    for name in ("sram_per_layer", "sram_universal"):
        assert sweep[f"rom_over_{name}"][-1] == pytest.approx(1.0, rel=1e-12)
        assert sweep[f"rom_over_{name}"][0] < 1.0  # a cheaper ROM read wins
        assert report.break_even["rom_read_fraction"][name] == pytest.approx(1.0)


def test_break_even_of_the_dram_cost(tmp_path) -> None:
    """With a ROM read dearer than the SRAM's (and free writes, no leakage), per-layer loads
    pay off below some DRAM cost: the reported point is where the two energies meet."""
    text = TINY_TABLE.replace("{name: read, arguments: null, energy: 2}", "{name: read, energy: 9}")
    text = text.replace("energy: 5 pJ", "energy: 0").replace("0.5 mW", "0 mW")
    (tmp_path / "dear.yaml").write_text(text.replace("energy: 2 mW", "energy: 0 mW"))
    table = load_table(tmp_path / "dear.yaml")
    program = write_digits_program(tmp_path, seed=3)
    report = energy_report([program], table, Schedule(rate_hz=1e5))
    crossing = report.break_even["dram_pj_per_bit"]["sram_per_layer"]
    # ROM costs 228 reads x (9 - 3) pJ more; two loads read 512 words of 64 bits from DRAM.
    assert crossing == pytest.approx(228 * 6 / (512 * 64))
    at = table.with_value("dram", "read", crossing * 64)
    again = energy_report([program], at, Schedule(rate_hz=1e5)).schedule_result
    assert again["rom"]["energy_pj"]["total"] == pytest.approx(
        again["sram_per_layer"]["energy_pj"]["total"]
    )


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
    tables = {
        "mac": {"mac": [{"energy": 1}]},
        "codebook_rom": {"read": [{"energy": 2}], "leak": [{"energy": "0.5 mW"}]},
        "codebook_sram": {
            "read": [{"arguments": {"cells": "hp"}, "energy": 3}],
            "write": [{"energy": 5}],
            "leak": [{"energy": 20}],
        },
        "dram": {"read": [{"energy": 7}]},
        "index_buffer": {"read": [{"energy": 11}]},
        "act_buffer": {"read": [{"energy": 13}], "write": [{"energy": 17}]},
    }
    technology = TINY_TABLE.split("ERT:")[0]
    (tmp_path / "v02.yaml").write_text(
        technology + "ERT:\n  version: 0.2\n  tables: " + json.dumps(tables) + "\n"
    )
    (tmp_path / "v03.yaml").write_text(TINY_TABLE)
    old, new = load_table(tmp_path / "v02.yaml"), load_table(tmp_path / "v03.yaml")
    for component, action in REQUIRED:
        assert old.energy(component, action) == pytest.approx(new.energy(component, action))


def test_table_without_technology_takes_the_default_and_says_so(tmp_path) -> None:
    (tmp_path / "ert.yaml").write_text("ERT:" + TINY_TABLE.split("ERT:")[1])
    table = load_table(tmp_path / "ert.yaml")
    assert table.technology.origin == str(SHIPPED["22nm"])
    program = write_digits_program(tmp_path, seed=4)
    notes = energy_report([program], table, Schedule()).notes
    assert any("no technology section" in note for note in notes)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "    - {name: write, arguments: null, energy: 17}\n",
            "",
            "component 'act_buffer' action 'write' is missing",
        ),
        ("energy: 11}", "energy: -11}", "component 'index_buffer' action 'read': energy -11"),
        ("energy: 11}", "energy: eleven}", "component 'index_buffer' action 'read': energy"),
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
    _, narrow_activity = inference_activity(params, program, "rom", table)
    _, wide_activity = inference_activity(wide, program, "rom", table)
    assert (narrow_activity.act_reads, narrow_activity.act_writes) == (8 + 3, 3 + 2)
    assert (wide_activity.act_reads, wide_activity.act_writes) == (16 + 6, 6 + 3)
    assert wide_activity.macs == narrow_activity.macs
    assert wide_activity.cycles == narrow_activity.cycles


def test_a_rate_the_accelerator_cannot_keep_up_with(tiny) -> None:
    params, program, table = tiny
    with pytest.raises(ValueError, match=r"rate_hz=1e\+07: sram_per_layer needs"):
        schedule_activity(params, [program], "sram_per_layer", table, Schedule(rate_hz=1e7))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vq4all.cli", *args], capture_output=True, text=True
    )


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def test_energy_command_writes_json_csv_and_plots(tmp_path) -> None:
    first = write_digits_program(tmp_path, seed=8, name="first")
    second = write_digits_program(tmp_path, seed=8, name="second")
    out = tmp_path / "energy"
    result = _cli("energy", str(first), str(second), "--table", "45nm", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "--schedule switch_every=10,rate_hz=100.0" in result.stdout  # the default, said
    assert "45nm.yaml (45 nm, hp SRAM cells" in result.stdout
    report = json.loads((out / "energy.json").read_text())
    assert report["schedule"]["order"] == ["first", "second"]
    assert report["schedule_result"]["sram_universal"]["codebook_loads"] == 2
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 3
    for png in pngs:
        width, height = _png_size(png)
        assert width >= 600 and height >= 400 and png.stat().st_size > 20_000, png
    with (out / "energy.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    assert {"scope", "network", "layer", "architecture", "cycles", "energy_total_pj"} <= columns
    assert {"dram_read_bytes", "codebook_rom_read_bytes", "energy_leakage_pj"} <= columns
    # 2 networks x 2 layers x 3 architectures, then 2 x 3 inferences and 3 schedule rows
    assert [row["scope"] for row in rows].count("layer") == 12
    assert len(rows) == 12 + 6 + 3
    total = sum(float(r["energy_total_pj"]) for r in rows if r["scope"] == "schedule")
    assert total == pytest.approx(
        sum(report["schedule_result"][a]["energy_pj"]["total"] for a in ARCHITECTURE_NAMES)
    )


def test_energy_command_with_the_schedule_and_cells(tmp_path) -> None:
    program = write_digits_program(tmp_path, seed=9)
    out = tmp_path / "out"
    args = ["energy", str(program), "--schedule", "rate_hz=1", "--cells", "lstp", "-o", str(out)]
    result = _cli(*args)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "energy.json").read_text())
    assert (report["technology"]["cells"], report["schedule"]["rate_hz"]) == ("lstp", 1.0)
    bad = _cli("energy", str(program), "--cells", "ulp", "-o", str(tmp_path / "none"))
    assert bad.returncode == 2 and "no entry for cells=ulp" in bad.stderr
    assert not (tmp_path / "none").exists()
