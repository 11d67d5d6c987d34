"""The cycle/energy model of whole accelerators: VQ4ALL's ROM codebook against the designs one
would build instead, each storing its own weights, on the same MAC array and the same layers.
Pure Python; no RTL.

Architectures are data (:class:`Architecture`), never branches on a name:

``rom``
    VQ4ALL: the universal codebook in ROM; the weights are its indices.
``sram_universal``
    VQ4ALL with the universal codebook in an SRAM that stays powered, loaded from DRAM once and
    again whenever a task switch evicts it (:attr:`Schedule.evict_on_switch`).
``sram_per_layer``
    Classical per-layer VQ: each layer's own codebook of K_l codewords (a per-layer VQ
    program's, such as the k-means baseline's) is stored with its weights and loaded into a
    small codebook SRAM before the layer, K_l cycles, as the RTL's sram mode does.
``sram_per_layer_full``
    A labelled extreme: the whole universal codebook (K codewords) from DRAM before every layer,
    what the RTL's sram mode does with a program of the universal codebook.
``int8``, ``int4``
    Uniform per-channel weights, no codebook: each beat reads its L x D weights.

Every architecture stores its network's weights (:func:`stored_bits`: indices or uniform weights,
each output channel's requantization parameters, a per-layer codebook) in a weight SRAM when they
fit it; otherwise they stream from DRAM every inference through it (:class:`Memories`). A layer
whose input and output do not fit the activation buffer spills them to DRAM. Weights are read by
the dataflow (:data:`DATAFLOWS`): as the RTL does, every beat re-reads its indices and their
codewords for every input column (``stream``), or each tile's weights are decoded once into a
small weight buffer and reused across the columns (``decode_once``), the activations then read
once per tile. The same dataflow holds for every architecture.

The model counts activity (bits moved per memory, action and kind; MACs; cycles) from the
stream protocol of :mod:`vq4all.hw.accelerator`, then prices it with an
:class:`~vq4all.sim.energy.tables.EnergyTable`. Cycles come from
:func:`vq4all.sim.arch.cycles.layer_cycles`, the formula the RTL tests assert; every architecture
computes in the same cycles, and a per-layer load adds its codewords' cycles
(:func:`vq4all.sim.arch.cycles.load_cycles`), hidden under the previous layer when double
buffered. Every access moves one ``word_bits`` word: a memory's bits of one kind in one layer
are counted in whole words.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field

from vq4all.golden.errors import InputError
from vq4all.hw.params import AcceleratorParams
from vq4all.sim.arch.cycles import layer_cycles
from vq4all.sim.arch.mapping import LayerRun
from vq4all.sim.energy.tables import EnergyTable

__all__ = [
    "ARCHITECTURES",
    "COMPONENTS",
    "DATAFLOWS",
    "KINDS",
    "Activity",
    "Architecture",
    "Memories",
    "Program",
    "Schedule",
    "architecture_named",
    "area_mm2",
    "inference_activity",
    "layer_activity",
    "memories_for",
    "price",
    "schedule_activity",
    "stored_bits",
    "stored_bytes",
]

#: Traffic kinds.
KINDS = ("weights", "codebooks", "activations")
#: How weights reach the MACs (see the module doc).
DATAFLOWS = ("stream", "decode_once")
#: The energy components of a result, in the order of the plots' stacks.
COMPONENTS = ("mac", "codebook", "weights", "activations", "dram", "leakage")


@dataclass(frozen=True)
class Architecture:
    """An accelerator as data; the model reads only these fields.

    ``codebook`` is what holds it (``"none"``, ``"rom"``, ``"sram"``); ``load`` when it comes
    into an SRAM (``"never"``, ``"per_layer"``, ``"on_task_switch"``); ``codebook_entries``
    which codebook: the ``"universal"`` one (K codewords, the table's ``codebook_*`` memory) or
    each ``"layer"``'s own (K_l codewords, stored with the weights, a small ``sram``).
    ``weight_bits`` is the bits of one stored weight of a uniform architecture; ``None`` stores
    codebook indices. ``always_powered`` codebook memories leak the whole schedule.
    ``methods`` are the compression methods whose weights it runs (the accuracy it is shown
    with); ``extreme`` marks a design shown only as a labelled extreme, never as the answer."""

    name: str
    label: str
    codebook: str
    load: str
    codebook_entries: str = "universal"
    weight_bits: int | None = None
    always_powered: bool = False
    methods: tuple[str, ...] = ()
    extreme: bool = False

    def __post_init__(self) -> None:
        choices = {
            "codebook": ("none", "rom", "sram"),
            "load": ("never", "per_layer", "on_task_switch"),
            "codebook_entries": ("universal", "layer"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{self.name}: {name} {getattr(self, name)!r} not in {allowed}")
        if (self.codebook == "none") != (self.weight_bits is not None):
            raise InputError(f"{self.name}: weight_bits go with no codebook, and only with none")
        if self.load != "never" and self.codebook != "sram":
            raise InputError(f"{self.name}: only an SRAM codebook is loaded")

    def codebook_copies(self, double_buffer: bool) -> int:
        """Codebook memories it holds: two when a per-layer load is double buffered."""
        return 2 if double_buffer and self.load == "per_layer" else 1

    @property
    def per_layer(self) -> bool:
        """Whether it runs a per-layer VQ program (each layer's own codebook)."""
        return self.codebook_entries == "layer" and self.codebook != "none"


#: The designs compared, in the order of the answer table: what one would build instead, then
#: VQ4ALL, then the labelled extreme.
ARCHITECTURES = (
    Architecture("int8", "int8 weights", "none", "never", weight_bits=8, methods=("uniform8",)),
    Architecture("int4", "int4 weights", "none", "never", weight_bits=4, methods=("uniform4",)),
    Architecture(
        "sram_per_layer",
        "per-layer VQ, own codebooks",
        "sram",
        "per_layer",
        "layer",
        methods=("kmeans", "perlayer-trained"),
    ),
    Architecture("rom", "VQ4ALL, ROM", "rom", "never", always_powered=True, methods=("vq4all",)),
    Architecture(
        "sram_universal",
        "VQ4ALL, universal SRAM",
        "sram",
        "on_task_switch",
        always_powered=True,
        methods=("vq4all",),
    ),
    Architecture(
        "sram_per_layer_full",
        "whole-K reload per layer (extreme)",
        "sram",
        "per_layer",
        methods=("vq4all",),
        extreme=True,
    ),
)


def architecture_named(name: str | Architecture) -> Architecture:
    """The architecture called ``name`` (or ``name`` itself); raises :class:`InputError` for an
    unknown one."""
    if isinstance(name, Architecture):
        return name
    for architecture in ARCHITECTURES:
        if architecture.name == name:
            return architecture
    known = ", ".join(a.name for a in ARCHITECTURES)
    raise InputError(f"unknown architecture {name!r}; one of {known}")


@dataclass(frozen=True)
class Program:
    """A network (or one layer) as the model sees it: its layer runs, and the same layers of a
    per-layer VQ program (each run's ``codebook_entries`` its own K_l), when there is one."""

    name: str
    runs: tuple[LayerRun, ...]
    per_layer_runs: tuple[LayerRun, ...] | None = None

    def runs_for(self, architecture: Architecture | str) -> tuple[LayerRun, ...]:
        architecture = architecture_named(architecture)
        if not architecture.per_layer:
            return self.runs
        if self.per_layer_runs is None:
            raise InputError(f"{self.name}: {architecture.name} needs a per-layer VQ program")
        return self.per_layer_runs

    def runs_on(self, architecture: Architecture | str) -> bool:
        return not architecture_named(architecture).per_layer or self.per_layer_runs is not None


@dataclass(frozen=True)
class Schedule:
    """Task switching: the programs run round-robin in the given order, ``switch_every``
    inferences each before switching, at ``rate_hz`` inferences per second; a switch evicts what
    the next program does not share (the universal SRAM's codebook, weights that do not fit
    beside the other programs') when ``evict_on_switch``. ``double_buffer`` overlaps each
    per-layer codebook load with the previous layer."""

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
class Memories:
    """The sizes (bytes) of an architecture's on-chip memories: its weight SRAM (0: none, the
    weights read straight from DRAM), its codebook SRAM when it loads per-layer codebooks, the
    decode-once weight buffer (0 with the stream dataflow) and the activation buffer."""

    weight_sram: int
    codebook_sram: int
    weight_buffer: int
    act_buffer: int


def _words(bits: int, word_bits: int) -> int:
    return -(-bits // word_bits)


def _pow2(size: int, floor: int = 1024) -> int:
    """``size`` rounded up to a power of two, at least ``floor``: how memories come."""
    return max(floor, 1 << max(0, math.ceil(size) - 1).bit_length())


def _index_bits(params: AcceleratorParams, run: LayerRun, architecture: Architecture) -> int:
    if architecture.per_layer:
        return (run.codebook_entries - 1).bit_length()
    return params.index_bits


def _channel_bits(params: AcceleratorParams) -> int:
    """One output channel's requantization parameters, as the accelerator holds them."""
    return params.quant_layout.size // params.L


def stored_bits(
    params: AcceleratorParams, run: LayerRun, architecture: Architecture
) -> Counter[str]:
    """What a layer stores, by kind: its weights (indices, or uniform weights, plus every output
    channel's requantization parameters) and its own codebook (per-layer VQ)."""
    architecture = architecture_named(architecture)
    channels = run.out_features * run.conv_groups
    blocks = -(-run.in_features // params.D)
    if architecture.weight_bits is not None:
        weights = channels * run.in_features * architecture.weight_bits
    else:
        weights = channels * blocks * _index_bits(params, run, architecture)
    stored = Counter(weights=weights + channels * _channel_bits(params))
    if architecture.per_layer:
        stored["codebooks"] = run.codebook_entries * params.D * 8
    return stored


def _act_bytes(params: AcceleratorParams, run: LayerRun) -> int:
    """The bytes of a layer's input and output, the activation buffer's need."""
    values = math.prod(run.input_shape or (run.in_features,)) + math.prod(run.output_shape or ())
    return values * params.activation_bits // 8


def memories_for(
    params: AcceleratorParams,
    programs: list[Program],
    architecture: Architecture,
    weight_sram: int | None = None,
    act_buffer: int | None = None,
    dataflow: str = "stream",
) -> Memories:
    """The memories of ``architecture`` running ``programs``. ``None`` sizes a memory to fit
    (the next power of two of at least 1 KiB): the weight SRAM to hold every program's weights
    at once, the activation buffer to hold any layer's input and output."""
    architecture = architecture_named(architecture)
    runs = [run for program in programs for run in program.runs_for(architecture)]
    if weight_sram is None:
        total = sum(sum(stored_bits(params, run, architecture).values()) for run in runs)
        weight_sram = _pow2(total / 8)
    if act_buffer is None:
        act_buffer = _pow2(max((_act_bytes(params, run) for run in runs), default=0))
    codebook = 0
    if architecture.per_layer:
        codebook = _pow2(max((r.codebook_entries for r in runs), default=0) * params.D, floor=64)
    buffer = 0
    if dataflow == "decode_once":
        bits = 8 if architecture.weight_bits is None else architecture.weight_bits
        tile = max((params.L * -(-r.in_features // params.D) * params.D for r in runs), default=0)
        buffer = _pow2(tile * bits / 8, floor=64)
    return Memories(weight_sram, codebook, buffer, act_buffer)


@dataclass(frozen=True)
class Activity:
    """What one piece of work does: cycles, MACs, and the bits moved, keyed by (memory, action,
    kind). Memories: ``codebook``, ``weight_sram``, ``weight_buffer``, ``act_buffer`` and
    ``dram``; actions ``read`` and ``write``; kinds :data:`KINDS`. ``words`` are the accesses of
    ``word_bits`` each, rounded up per layer and key. ``seconds`` is how long each memory is
    powered (leaks)."""

    cycles: int = 0
    compute_cycles: int = 0
    load_cycles: int = 0
    stall_cycles: int = 0
    macs: int = 0
    codebook_loads: int = 0
    words: Counter = field(default_factory=Counter)
    bits: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)

    def __add__(self, other: Activity) -> Activity:
        return Activity(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def scaled(self, factor: int) -> Activity:
        def scale(value):
            if isinstance(value, Counter):
                return Counter({key: count * factor for key, count in value.items()})
            return value * factor

        return Activity(**{f.name: scale(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def moved(
        self,
        memory: str,
        action: str,
        kind: str,
        bits: int,
        word_bits: int,
        accesses: int | None = None,
    ) -> Activity:
        """This activity plus ``bits`` of ``kind`` moved by ``action`` on ``memory``, in
        ``accesses`` of one word each (by default as few as hold the bits)."""
        if bits <= 0:
            return self
        key = (memory, action, kind)
        words = _words(bits, word_bits) if accesses is None else accesses
        return dataclasses.replace(
            self, words=self.words + Counter({key: words}), bits=self.bits + Counter({key: bits})
        )

    def traffic(self) -> dict[str, int]:
        """Bytes per inference by level and kind: from DRAM (read and written) and read on chip,
        with units in the keys."""
        out = {}
        for kind in KINDS:
            dram = sum(b for (m, _, k), b in self.bits.items() if m == "dram" and k == kind)
            chip = sum(
                b for (m, a, k), b in self.bits.items() if m != "dram" and a == "read" and k == kind
            )
            out[f"dram_{kind}_bytes"] = dram // 8
            out[f"on_chip_read_{kind}_bytes"] = chip // 8
        out["dram_bytes"] = sum(out[f"dram_{kind}_bytes"] for kind in KINDS)
        out["on_chip_read_bytes"] = sum(out[f"on_chip_read_{kind}_bytes"] for kind in KINDS)
        return out


def layer_activity(
    params: AcceleratorParams,
    run: LayerRun,
    architecture: Architecture | str,
    memories: Memories,
    word_bits: int,
    *,
    weights_from: str = "weight_sram",
    dataflow: str = "stream",
    previous_compute: int | None = None,
    double_buffer: bool = False,
) -> Activity:
    """The activity of one layer run on ``architecture`` (no leakage time; see
    :func:`inference_activity`). ``weights_from`` is where its stored weights are:
    ``"weight_sram"`` (on chip), ``"stream"`` (from DRAM this inference, staged in the weight
    SRAM) or ``"dram"`` (read from DRAM where they are used). ``previous_compute`` is the
    compute cycles of the layer run before it, under which a double-buffered load hides."""
    architecture = architecture_named(architecture)
    if dataflow not in DATAFLOWS:
        raise InputError(f"dataflow {dataflow!r} is not one of {', '.join(DATAFLOWS)}")
    tiling = run.tiling(params)
    lanes, blocks, beats = params.L, tiling.blocks, tiling.beats
    tiles = tiling.tiles
    compute = layer_cycles(dataclasses.replace(params, mode="rom"), run)
    activity = Activity(cycles=compute, compute_cycles=compute, macs=beats * lanes * params.D)
    source = "dram" if weights_from == "dram" else "weight_sram"
    if weights_from == "stream":
        for kind, bits in stored_bits(params, run, architecture).items():
            activity = activity.moved("dram", "read", kind, bits, word_bits)
            activity = activity.moved("weight_sram", "write", kind, bits, word_bits)

    # Weights per beat: L indices and L codewords, or L x D uniform weights; per group of L
    # channels their requantization parameters. Decoded once, a tile's go through the buffer.
    codebook = architecture.codebook != "none"
    per_beat = lanes * (
        _index_bits(params, run, architecture) if codebook else params.D * architecture.weight_bits
    )
    decoded = lanes * params.D * (8 if codebook else architecture.weight_bits)
    reuse = beats if dataflow == "stream" else tiles * blocks
    channels = tiling.quant_beats if dataflow == "stream" else tiles
    channel = channels * lanes * _channel_bits(params)
    activity = activity.moved(source, "read", "weights", reuse * per_beat + channel, word_bits)
    if codebook:  # each lane's codeword is an access of its own
        codewords = reuse * lanes
        accesses = codewords * _words(params.D * 8, word_bits)
        bits = codewords * params.D * 8
        activity = activity.moved("codebook", "read", "codebooks", bits, word_bits, accesses)
    if dataflow == "decode_once":
        activity = activity.moved(
            "weight_buffer", "write", "weights", tiles * blocks * decoded, word_bits
        )
        activity = activity.moved("weight_buffer", "read", "weights", beats * decoded, word_bits)

    # Activations: a dot-product run reads each column's blocks once (stream), or once per tile
    # (decode once); a packed run reads each lane's D with every beat. A layer whose input and
    # output overflow the buffer reads its input from DRAM and writes its output there.
    if tiling.packed:
        act_in = beats * lanes * params.act_layout.size
    else:
        passes = 1 if dataflow == "stream" else tiling.groups
        act_in = tiling.units * blocks * params.act_layout.size * passes
    act_out = tiling.out_beats * params.out_layout.size
    activity = activity.moved("act_buffer", "read", "activations", act_in, word_bits)
    activity = activity.moved("act_buffer", "write", "activations", act_out, word_bits)
    if _act_bytes(params, run) > memories.act_buffer:
        inputs = math.prod(run.input_shape or (run.in_features,)) * params.activation_bits
        outputs = math.prod(run.output_shape or ()) * params.activation_bits
        activity = activity.moved("dram", "read", "activations", inputs, word_bits)
        activity = activity.moved("dram", "write", "activations", outputs, word_bits)

    if architecture.load == "per_layer":
        hidden = previous_compute if double_buffer and previous_compute is not None else 0
        activity = activity + codebook_load(params, word_bits, hidden, run, architecture, source)
    return activity


def codebook_load(
    params: AcceleratorParams,
    word_bits: int,
    hidden: int = 0,
    run: LayerRun | None = None,
    architecture: Architecture | str = "sram_per_layer_full",
    source: str = "weight_sram",
) -> Activity:
    """One load of a codebook into the codebook SRAM, one codeword per cycle, as the RTL's sram
    mode loads them: ``run``'s own codebook from where its weights are (``source``; a per-layer
    architecture), or the whole universal codebook (K codewords) from DRAM. The first ``hidden``
    cycles overlap other work (a double-buffered load under the previous layer); the rest
    stall."""
    architecture = architecture_named(architecture)
    own = architecture.per_layer and run is not None
    entries = run.codebook_entries if own else params.K
    bits = entries * params.D * 8
    stall = max(0, entries - hidden)
    writes = entries * _words(params.D * 8, word_bits)  # a codeword a cycle
    activity = Activity(
        cycles=stall, load_cycles=entries, stall_cycles=stall, codebook_loads=1
    ).moved("codebook", "write", "codebooks", bits, word_bits, writes)
    return activity.moved(source if own else "dram", "read", "codebooks", bits, word_bits)


def _seconds(cycles: int, table: EnergyTable) -> float:
    return cycles / (table.technology.clock_mhz.value * 1e6)


def _weights_from(
    params: AcceleratorParams,
    run: LayerRun,
    architecture: Architecture,
    memories: Memories,
    resident: bool,
) -> str:
    if resident:
        return "weight_sram"
    layer = sum(stored_bits(params, run, architecture).values()) / 8
    return "stream" if 0 < layer <= memories.weight_sram else "dram"


def inference_activity(
    params: AcceleratorParams,
    program: Program,
    architecture: Architecture | str,
    memories: Memories,
    table: EnergyTable,
    *,
    resident: bool = True,
    dataflow: str = "stream",
    double_buffer: bool = False,
) -> tuple[list[Activity], Activity]:
    """Per layer and for one whole inference of ``program``, back to back with the previous
    inference of the same program (a double-buffered first layer hides its load under the last
    layer). ``resident`` weights are in the weight SRAM already; others stream from DRAM.
    Powered time counts the active cycles of the memories that work only while the accelerator
    does (:func:`schedule_activity` adds the idle time of the others)."""
    architecture = architecture_named(architecture)
    word_bits = table.technology.word_bits
    runs = program.runs_for(architecture)
    rom = dataclasses.replace(params, mode="rom")
    computes = [layer_cycles(rom, run) for run in runs]
    layers = []
    for i, run in enumerate(runs):
        source = _weights_from(params, run, architecture, memories, resident)
        activity = layer_activity(
            params,
            run,
            architecture,
            memories,
            word_bits,
            weights_from=source,
            dataflow=dataflow,
            previous_compute=computes[i - 1],
            double_buffer=double_buffer,
        )
        seconds = _seconds(activity.cycles, table)
        active = ["act_buffer", "weight_buffer"] + ([] if resident else ["weight_sram"])
        if not architecture.always_powered and architecture.codebook != "none":
            active.append("codebook")
        powered = Counter({memory: seconds for memory in active})
        layers.append(dataclasses.replace(activity, seconds=powered))
    return layers, sum(layers, Activity())


def stored_bytes(
    params: AcceleratorParams, program: Program, architecture: Architecture | str
) -> int:
    """What ``architecture`` stores for ``program``'s weights, in bytes (:func:`stored_bits`)."""
    architecture = architecture_named(architecture)
    runs = program.runs_for(architecture)
    return sum(sum(stored_bits(params, run, architecture).values()) for run in runs) // 8


def schedule_activity(
    params: AcceleratorParams,
    programs: list[Program],
    architecture: Architecture | str,
    table: EnergyTable,
    schedule: Schedule,
    memories: Memories,
    dataflow: str = "stream",
) -> tuple[Activity, int]:
    """The activity of one round of ``schedule`` (every program ``switch_every`` times, in
    steady state) and its number of inferences.

    Weights: when every program's fit the weight SRAM together they stay there; when each fits
    alone, a switch reloads the next one's from DRAM (if switches evict); otherwise they stream
    from DRAM every inference. The universal SRAM's codebook is reloaded on every switch that
    evicts. Leakage: the ROM, the universal SRAM and a weight SRAM holding weights are powered
    the whole round; the other memories only while they work.

    Raises :class:`InputError` naming ``rate_hz`` when the round's work does not fit its time.
    """
    architecture = architecture_named(architecture)
    word_bits = table.technology.word_bits
    inferences = len(programs) * schedule.switch_every
    switches = schedule.evict_on_switch and len(programs) > 1
    sizes = [stored_bytes(params, program, architecture) for program in programs]
    together = sum(sizes) <= memories.weight_sram
    total = Activity()
    for program, size in zip(programs, sizes, strict=True):
        resident = together or size <= memories.weight_sram
        _, one = inference_activity(
            params,
            program,
            architecture,
            memories,
            table,
            resident=resident,
            dataflow=dataflow,
            double_buffer=schedule.double_buffer,
        )
        total = total + one.scaled(schedule.switch_every)
        if resident and not together and switches:
            for run in program.runs_for(architecture):
                for kind, bits in stored_bits(params, run, architecture).items():
                    total = total.moved("dram", "read", kind, bits, word_bits)
                    total = total.moved("weight_sram", "write", kind, bits, word_bits)
    if architecture.load == "on_task_switch" and switches:
        # One switch, and one reload, per program per round.
        load = codebook_load(params, word_bits, architecture=architecture)
        total = total + load.scaled(len(programs))
    round_seconds = inferences / schedule.rate_hz
    busy = _seconds(total.cycles, table)
    if busy > round_seconds * (1 + 1e-12):
        raise InputError(
            f"rate_hz={schedule.rate_hz:g}: {architecture.name} needs "
            f"{busy / inferences * 1e3:.3f} ms per inference at "
            f"{table.technology.clock_mhz.value:g} MHz, more than the "
            f"{1e3 / schedule.rate_hz:.3f} ms between inferences; a lower rate_hz runs it"
        )
    always = Counter()
    if architecture.always_powered:
        always["codebook"] = round_seconds
    if all(size <= memories.weight_sram for size in sizes):
        always["weight_sram"] = round_seconds
    seconds = Counter({m: s for m, s in total.seconds.items() if m not in always}) + always
    return dataclasses.replace(total, seconds=seconds), inferences


def _memory_energy(
    architecture: Architecture, memories: Memories, table: EnergyTable, memory: str, action: str
) -> float:
    """pJ per word (mW for ``leak``) of one of the architecture's memories."""
    if memory == "dram":
        return table.energy("dram", action) if action != "leak" else 0.0
    if memory == "codebook":
        if architecture.codebook == "rom":
            return table.energy("codebook_rom", action) if action != "write" else 0.0
        if architecture.codebook_entries == "universal":
            return table.energy("codebook_sram", action)
        return table.sized("sram", action, memories.codebook_sram)
    return table.sized("sram", action, getattr(memories, memory))


_COMPONENT_OF_KIND = {"weights": "weights", "codebooks": "codebook", "activations": "activations"}


def price(
    activity: Activity,
    architecture: Architecture | str,
    memories: Memories,
    table: EnergyTable,
    double_buffer: bool = False,
) -> dict[str, float]:
    """Energy per component in pJ (:data:`COMPONENTS`, plus ``total``): on-chip accesses by
    what they move (codebook reads and writes, weights, activations), DRAM, and leakage."""
    architecture = architecture_named(architecture)
    bits = architecture.weight_bits or 8
    energy = dict.fromkeys(COMPONENTS, 0.0)
    energy["mac"] = activity.macs * table.energy("mac", "mac", weight_bits=bits)
    for (memory, action, kind), words in activity.words.items():
        cost = words * _memory_energy(architecture, memories, table, memory, action)
        if memory == "dram":
            energy["dram"] += cost
        else:  # on chip, by what it moves
            energy[_COMPONENT_OF_KIND[kind]] += cost
    for memory, seconds in activity.seconds.items():
        copies = architecture.codebook_copies(double_buffer) if memory == "codebook" else 1
        leak_mw = _memory_energy(architecture, memories, table, memory, "leak")
        energy["leakage"] += seconds * leak_mw * copies * 1e9  # mW * s = 1e-3 J = 1e9 pJ
    energy["total"] = sum(energy[name] for name in COMPONENTS)
    return energy


def area_mm2(
    params: AcceleratorParams,
    architecture: Architecture | str,
    memories: Memories,
    table: EnergyTable,
    double_buffer: bool = False,
) -> dict[str, float]:
    """Area of the architecture's memories in mm^2: its codebook memory (two copies for a
    double-buffered per-layer load), weight SRAM, weight buffer and activation buffer, at the
    technology's density, and their ``total``."""
    architecture = architecture_named(architecture)
    density = table.technology.area_um2_per_bit
    bits = {"codebook": 0.0}
    if architecture.codebook != "none":
        universal = architecture.codebook_entries == "universal"
        size = params.K * params.D if universal else memories.codebook_sram
        memory = f"codebook_{architecture.codebook}" if universal else "sram"
        copies = architecture.codebook_copies(double_buffer)
        bits["codebook"] = size * 8 * copies * density[memory].value
    for memory in ("weight_sram", "weight_buffer", "act_buffer"):
        bits[memory] = getattr(memories, memory) * 8 * density["sram"].value
    area = {name: value * 1e-6 for name, value in bits.items()}
    area["total"] = sum(area.values())
    return area
