"""The cycle/energy model of the codebook memory: ROM versus SRAM, per layer, per network
inference and per task-switching schedule. Pure Python; no RTL.

Architectures, on the same programs and accelerator:

``rom``
    The universal codebook in ROM (VQ4ALL): no codebook traffic after power-up.
``sram_per_layer``
    What the RTL's sram mode does: before each layer run the whole universal codebook (``K``
    codewords; an extreme, since a per-layer VQ design loads only its layer's small one) is
    read from DRAM and written into an on-chip SRAM. Double buffered, the
    load of layer ``i`` overlaps layer ``i - 1`` (two SRAMs), and only what does not fit under
    it stalls. Its SRAM is power-gated between inferences (its contents are reloaded anyway).
``sram_universal``
    The universal codebook in an SRAM that stays powered, loaded once and reloaded only when a
    task switch evicts it (:attr:`Schedule.evict_on_switch`).

The model counts activity (Accelergy's actions: MACs, codebook reads, DRAM reads, SRAM writes,
index and activation accesses, leakage time) from the stream protocol of
:mod:`vq4all.hw.accelerator`, then prices it with an
:class:`~vq4all.sim.energy.tables.EnergyTable`. Cycles come from
:func:`vq4all.sim.arch.cycles.layer_cycles`, the formula the RTL tests assert: rom and sram per
layer are that formula in each mode; double buffering and the universal SRAM's loads are built from
its terms (:func:`vq4all.sim.arch.cycles.load_cycles`). Every access moves one ``word_bits`` word
(one D-byte codeword is one access when ``D * 8 <= word_bits``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from vq4all.golden.errors import InputError
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.cycles import layer_cycles, load_cycles
from vq4all.sim.arch.mapping import LayerRun
from vq4all.sim.energy.tables import EnergyTable

__all__ = [
    "ALTERNATIVES",
    "ALTERNATIVE_NAMES",
    "ARCHITECTURES",
    "ARCHITECTURE_NAMES",
    "ROM",
    "SRAM_PER_LAYER",
    "SRAM_UNIVERSAL",
    "Architecture",
    "architecture_named",
    "COMPONENTS",
    "Activity",
    "Program",
    "Schedule",
    "codebook_area_mm2",
    "codebook_load",
    "inference_activity",
    "layer_activity",
    "price",
    "schedule_activity",
]


@dataclass(frozen=True)
class Architecture:
    """An architecture as data: what holds the codebook and what is loaded when. The model
    counts every architecture's actions from these fields alone, never from its name.

    ``codebook_memory`` is ``"rom"`` or ``"sram"`` (the table's ``codebook_rom`` or
    ``codebook_sram`` prices its reads, leakage and area); ``load`` is when the codebook comes
    from DRAM: ``"never"``, ``"per_layer"`` (before every layer run) or ``"on_task_switch"``
    (when a switch evicts it); ``always_powered`` memories leak the whole schedule, the others
    only while they work."""

    name: str
    label: str
    codebook_memory: str
    load: str
    always_powered: bool

    def __post_init__(self) -> None:
        if self.codebook_memory not in ("rom", "sram"):
            raise InputError(f"{self.name}: codebook_memory {self.codebook_memory!r}")
        if self.load not in ("never", "per_layer", "on_task_switch"):
            raise InputError(f"{self.name}: load {self.load!r}")

    @property
    def reads_field(self) -> str:
        return f"codebook_{self.codebook_memory}_reads"

    @property
    def seconds_field(self) -> str:
        return f"{self.codebook_memory}_seconds"


ROM = Architecture("rom", "ROM (VQ4ALL)", "rom", "never", always_powered=True)
SRAM_PER_LAYER = Architecture("sram_per_layer", "SRAM per layer", "sram", "per_layer", False)
SRAM_UNIVERSAL = Architecture("sram_universal", "SRAM universal", "sram", "on_task_switch", True)
#: The architectures compared, VQ4ALL's ROM first; :data:`ALTERNATIVES` are the others.
ARCHITECTURES = (ROM, SRAM_PER_LAYER, SRAM_UNIVERSAL)
ALTERNATIVES = tuple(a for a in ARCHITECTURES if a is not ROM)
#: Their names: the keys of every per-architecture figure in reports and plots.
ARCHITECTURE_NAMES = tuple(a.name for a in ARCHITECTURES)
ALTERNATIVE_NAMES = tuple(a.name for a in ALTERNATIVES)


def architecture_named(name: str | Architecture) -> Architecture:
    """The architecture called ``name`` (or ``name`` itself); raises :class:`InputError` for an
    unknown one."""
    if isinstance(name, Architecture):
        return name
    for architecture in ARCHITECTURES:
        if architecture.name == name:
            return architecture
    raise InputError(f"unknown architecture {name!r}; one of {', '.join(ARCHITECTURE_NAMES)}")


#: The energy components of a result, in the order of the plots' stacks.
COMPONENTS = ("mac", "codebook_read", "codebook_load", "index", "activation", "leakage")


@dataclass(frozen=True)
class Program:
    """A network (or single layer) as the model sees it: its name and layer runs."""

    name: str
    runs: tuple[LayerRun, ...]


@dataclass(frozen=True)
class Schedule:
    """Task switching: the programs run round-robin in the given order, ``switch_every``
    inferences each before switching, at ``rate_hz`` inferences per second; a switch evicts the
    universal SRAM's codebook when ``evict_on_switch``. ``double_buffer`` overlaps each per-layer
    codebook load with the previous layer."""

    switch_every: int = 10
    rate_hz: float = 100.0
    evict_on_switch: bool = True
    double_buffer: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.switch_every, int) and self.switch_every >= 1):
            raise InputError(f"switch_every must be a positive integer, not {self.switch_every!r}")
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise InputError(f"rate_hz must be a positive number, not {self.rate_hz!r}")


@dataclass(frozen=True)
class Activity:
    """What one piece of work does: cycles, and counts of every action.

    Traffic counts accesses of one ``word_bits`` word; ``*_bits`` are the bits moved.
    ``rom_seconds`` / ``sram_seconds`` are how long each codebook memory is powered (leaks).
    """

    cycles: int = 0
    compute_cycles: int = 0
    load_cycles: int = 0
    stall_cycles: int = 0
    macs: int = 0
    codebook_rom_reads: int = 0
    codebook_sram_reads: int = 0
    codebook_sram_writes: int = 0
    dram_reads: int = 0
    index_reads: int = 0
    act_reads: int = 0
    act_writes: int = 0
    codebook_loads: int = 0
    rom_seconds: float = 0.0
    sram_seconds: float = 0.0
    sram_copies: int = 1

    def __add__(self, other: Activity) -> Activity:
        fields = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self)
            if f.name != "sram_copies"
        }
        return Activity(**fields, sram_copies=max(self.sram_copies, other.sram_copies))

    def scaled(self, factor: int) -> Activity:
        fields = {
            f.name: getattr(self, f.name) * factor
            for f in dataclasses.fields(self)
            if f.name != "sram_copies"
        }
        return Activity(**fields, sram_copies=self.sram_copies)

    def traffic(self, word_bits: int) -> dict[str, int]:
        """Bytes and accesses per memory level, with units in the keys."""
        word = word_bits // 8
        levels = {
            "codebook_rom_read": self.codebook_rom_reads,
            "codebook_sram_read": self.codebook_sram_reads,
            "codebook_sram_write": self.codebook_sram_writes,
            "dram_read": self.dram_reads,
            "index_read": self.index_reads,
            "act_read": self.act_reads,
            "act_write": self.act_writes,
        }
        out = {}
        for level, accesses in levels.items():
            out[f"{level}_accesses"] = accesses
            out[f"{level}_bytes"] = accesses * word
        return out


def _words(bits: int, word_bits: int) -> int:
    return -(-bits // word_bits)


def layer_activity(
    params: AcceleratorParams,
    run: LayerRun,
    architecture: Architecture | str,
    word_bits: int,
    previous_compute: int | None = None,
    double_buffer: bool = False,
) -> Activity:
    """The activity of one layer run on ``architecture`` (no leakage time; see
    :func:`inference_activity`). ``previous_compute`` is the compute cycles of the layer run
    before it, under which a double-buffered load hides."""
    architecture = architecture_named(architecture)
    tiling = params.tiling(run.out_features, run.in_features)
    beats = run.columns * tiling.beats
    out_beats = run.columns * tiling.groups
    compute = layer_cycles(dataclasses.replace(params, mode="rom"), run)
    codeword_bits = params.D * 8
    # Every index beat reads L codewords (padding lanes too: the lanes run in lock step) and
    # L indices; every group's last beat also the L channels' requantization parameters.
    reads = beats * params.L * _words(codeword_bits, word_bits)
    weight_bits = beats * params.L * params.index_bits + out_beats * params.quant_layout.size
    counts = {
        "compute_cycles": compute,
        "macs": beats * params.L * params.D,
        "index_reads": _words(weight_bits, word_bits),
        "act_reads": _words(run.columns * tiling.blocks * params.act_layout.size, word_bits),
        "act_writes": _words(out_beats * params.out_layout.size, word_bits),
    }
    activity = Activity(cycles=compute, **{architecture.reads_field: reads}, **counts)
    if architecture.load != "per_layer":
        return activity
    hidden = previous_compute if double_buffer and previous_compute is not None else 0
    loaded = activity + codebook_load(params, word_bits, hidden, run)
    return dataclasses.replace(loaded, sram_copies=2 if double_buffer else 1)


def codebook_load(
    params: AcceleratorParams, word_bits: int, hidden: int = 0, run: LayerRun | None = None
) -> Activity:
    """One load of a codebook from DRAM into an SRAM, one codeword per cycle, as the RTL's sram
    mode loads them (:func:`vq4all.sim.arch.cycles.load_cycles`): ``run``'s own codebook, or
    the whole universal one (K codewords). The first ``hidden`` cycles overlap other work (a
    double-buffered load under the previous layer); the rest stall."""
    cycles = load_cycles(dataclasses.replace(params, mode="sram"), run)
    words = cycles * _words(params.D * 8, word_bits)
    stall = max(0, cycles - hidden)
    return Activity(
        cycles=stall,
        load_cycles=cycles,
        stall_cycles=stall,
        codebook_sram_writes=words,
        dram_reads=words,
        codebook_loads=1,
    )


def _seconds(cycles: int, table: EnergyTable) -> float:
    return cycles / (table.technology.clock_mhz.value * 1e6)


def inference_activity(
    params: AcceleratorParams,
    program: Program,
    architecture: Architecture | str,
    table: EnergyTable,
    double_buffer: bool = False,
) -> tuple[list[Activity], Activity]:
    """Per layer and for one whole inference of ``program``, back to back with the previous
    inference of the same program: a double-buffered first layer hides its load under the
    last layer. Leakage time counts only the active cycles here (:func:`schedule_activity`
    adds the idle time)."""
    architecture = architecture_named(architecture)
    word_bits = table.technology.word_bits
    rom = dataclasses.replace(params, mode="rom")
    computes = [layer_cycles(rom, run) for run in program.runs]
    layers = []
    for i, run in enumerate(program.runs):
        activity = layer_activity(
            params, run, architecture, word_bits, computes[i - 1], double_buffer
        )
        seconds = _seconds(activity.cycles, table)
        layers.append(dataclasses.replace(activity, **{architecture.seconds_field: seconds}))
    return layers, sum(layers, Activity())


def schedule_activity(
    params: AcceleratorParams,
    programs: list[Program],
    architecture: Architecture | str,
    table: EnergyTable,
    schedule: Schedule,
) -> tuple[Activity, int]:
    """The activity of one round of ``schedule`` (every program ``switch_every`` times, in
    steady state) and its number of inferences. Leakage: the ROM and the universal SRAM are
    powered the whole round; the per-layer SRAM only while it works.

    Raises ``ValueError`` naming ``rate_hz`` when the round's work does not fit its time.
    """
    architecture = architecture_named(architecture)
    inferences = len(programs) * schedule.switch_every
    total = Activity()
    for program in programs:
        _, one = inference_activity(params, program, architecture, table, schedule.double_buffer)
        total = total + one.scaled(schedule.switch_every)
    switches = schedule.evict_on_switch and len(programs) > 1
    if architecture.load == "on_task_switch" and switches:
        # One switch, and one reload, per program per round.
        total = total + codebook_load(params, table.technology.word_bits).scaled(len(programs))
    round_seconds = inferences / schedule.rate_hz
    busy = _seconds(total.cycles, table)
    if busy > round_seconds * (1 + 1e-12):
        raise InputError(
            f"rate_hz={schedule.rate_hz:g}: {architecture.name} needs "
            f"{busy / inferences * 1e3:.3f} ms per inference at "
            f"{table.technology.clock_mhz.value:g} MHz, more than the "
            f"{1e3 / schedule.rate_hz:.3f} ms between inferences"
        )
    if architecture.always_powered:
        total = dataclasses.replace(total, **{architecture.seconds_field: round_seconds})
    return total, inferences


def price(activity: Activity, table: EnergyTable) -> dict[str, float]:
    """Energy per component in pJ (:data:`COMPONENTS`, plus ``total``)."""
    e = table.energy
    sram_read = activity.codebook_sram_reads * e("codebook_sram", "read")
    rom_read = activity.codebook_rom_reads * e("codebook_rom", "read")
    leak_mw = activity.rom_seconds * e("codebook_rom", "leak") + (
        activity.sram_seconds * activity.sram_copies * e("codebook_sram", "leak")
    )
    energy = {
        "mac": activity.macs * e("mac", "mac"),
        "codebook_read": rom_read + sram_read,
        "codebook_load": activity.dram_reads * e("dram", "read")
        + activity.codebook_sram_writes * e("codebook_sram", "write"),
        "index": activity.index_reads * e("index_buffer", "read"),
        "activation": activity.act_reads * e("act_buffer", "read")
        + activity.act_writes * e("act_buffer", "write"),
        "leakage": leak_mw * 1e9,  # mW * s = 1e-3 J = 1e9 pJ
    }
    energy["total"] = sum(energy.values())
    return energy


def codebook_area_mm2(
    params: AcceleratorParams,
    architecture: Architecture | str,
    table: EnergyTable,
    double_buffer: bool = False,
) -> float:
    """Area of the codebook memory: K x D bytes at the technology's density (two copies for a
    double-buffered per-layer load)."""
    architecture = architecture_named(architecture)
    bits = params.K * params.D * 8
    memory = f"codebook_{architecture.codebook_memory}"
    copies = 2 if architecture.load == "per_layer" and double_buffer else 1
    return bits * copies * table.technology.area_um2_per_bit[memory].value * 1e-6
