"""Accelerator parameters and the payload layouts of its streams.

The widths here are the hardware side of the numerics contract in :mod:`vq4all.golden.numerics`
(int8 codewords, int8 or int16 activations, an accumulator 24 bits wider than them, a 16-bit
unsigned multiplier and a shift in ``[1, 48]``); ``tests/test_params.py`` checks that the two
agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from vq4all.golden.errors import InputError

__all__ = [
    "ACC_EXTRA_BITS",
    "ACTIVATION_BITS",
    "MODES",
    "MULT_BITS",
    "SHIFT_BITS",
    "SHIFT_MAX",
    "AcceleratorParams",
    "Tiling",
    "rejecting_bad_parameters",
]

#: The activation widths the hardware can be built for.
ACTIVATION_BITS = (8, 16)
#: The accumulator's bits beyond the activations'.
ACC_EXTRA_BITS = 24
MULT_BITS = 16
SHIFT_BITS = 6
SHIFT_MAX = 48
MODES = ("rom", "sram")


@contextmanager
def rejecting_bad_parameters(component) -> Iterator[None]:
    """Wrap a component constructor's checks. Amaranth warns about every component that is
    created and never elaborated; one whose constructor rejected its parameters never existed
    for the user, so that warning is silenced for it (and only for it)."""
    try:
        yield
    except (TypeError, ValueError):
        component._MustUse__silence = True
        raise


def _bits_for(largest: int) -> int:
    return max(1, largest.bit_length())


class Tiling(NamedTuple):
    """How one layer run maps onto the L lanes of D multipliers (see
    :mod:`vq4all.hw.accelerator`): ``units`` times ``groups`` groups of L output channels,
    ``steps`` index beats (one per cycle) each.

    A dot-product run (``packed`` false) takes one input column per unit: each lane's D
    multipliers take a block of D of its inputs and sum them, ``steps = J = ceil(N / D)``, and
    the L channels are those of one convolution group. A column-packed run takes D columns (the
    pixels of a convolution) per unit: each lane's D multipliers take one input of D columns,
    one codeword entry times D activations, ``steps = N``, and its L channels may come from as
    many convolution groups, each lane with its own activations: depthwise and few-input
    layers fill every slot. ``blocks`` is J, codeword indices per channel, in both.
    """

    packed: bool
    units: int
    groups: int
    steps: int
    blocks: int
    #: Output beats (of L channels) per group: 1, or D columns packed.
    outputs: int = 1
    #: Tiles of L channels whose weights are decoded once and reused (decode-once dataflow).
    tiles: int = 1

    @property
    def beats(self) -> int:
        """Index beats of the run, one per cycle: ``units * groups * steps``."""
        return self.units * self.groups * self.steps

    @property
    def quant_beats(self) -> int:
        """Requantization beats (L channels' parameters) of the run: one per group and unit."""
        return self.units * self.groups

    @property
    def out_beats(self) -> int:
        """Output beats of the run: ``outputs`` per group and unit."""
        return self.quant_beats * self.outputs


@dataclass(frozen=True)
class AcceleratorParams:
    """Parameters of the decode + MAC accelerator.

    ``K`` codewords (a power of two, so an index is ``log2 K`` bits) of ``D`` int8 entries;
    ``L`` output lanes; layers up to ``max_inputs`` inputs and ``max_outputs`` outputs per
    input column, and up to ``max_columns`` columns (the im2col columns of a convolution) per
    layer run; ``mode`` is ``"rom"`` (codebook fixed at elaboration) or ``"sram"`` (loaded
    per layer run); activations (inputs and outputs) are ``activation_bits`` wide, 8 or 16.

    Raises ``ValueError`` for a parameter the hardware cannot implement, quoting it.
    """

    K: int = 256
    D: int = 8
    L: int = 4
    max_inputs: int = 1024
    max_outputs: int = 256
    max_columns: int = 65536
    mode: str = "rom"
    activation_bits: int = 8

    def __post_init__(self) -> None:
        for name in ("K", "D", "L", "max_inputs", "max_outputs", "max_columns"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer, not {value!r}")
        if self.K < 2 or self.K & (self.K - 1):
            raise InputError(f"K must be a power of two >= 2, not {self.K!r}")
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.activation_bits not in ACTIVATION_BITS:
            raise InputError(
                f"activation_bits must be one of {ACTIVATION_BITS}, not {self.activation_bits!r}"
            )
        worst = self.max_blocks * self.D * self.product_max
        if worst >= 2 ** (self.acc_bits - 1):
            raise InputError(
                f"max_inputs={self.max_inputs!r} can overflow the {self.acc_bits}-bit "
                f"accumulator ({worst} >= 2**{self.acc_bits - 1})"
            )

    @classmethod
    def for_runs(
        cls,
        runs: Iterable,
        K: int,  # noqa: N803 - the paper's names
        D: int,  # noqa: N803
        L: int = 4,  # noqa: N803
        mode: str = "rom",
        activation_bits: int | None = None,
        max_inputs: int | None = None,
        max_outputs: int | None = None,
        max_columns: int | None = None,
        fallback: AcceleratorParams | None = None,
    ) -> AcceleratorParams:
        """Parameters that run ``runs`` (layer runs: ``in_features``, ``out_features`` and
        ``columns`` each): every limit that is not given is the largest of the runs', else
        ``fallback``'s (default: this class's defaults), and so is the activation width.

        Raises ``ValueError`` as the constructor does."""
        runs = list(runs)
        fallback = fallback or cls()

        def limit(given: int | None, field: str, name: str) -> int:
            if given is not None:
                return given
            return max((getattr(run, field) for run in runs), default=getattr(fallback, name))

        return cls(
            K=K,
            D=D,
            L=L,
            max_inputs=limit(max_inputs, "in_features", "max_inputs"),
            max_outputs=limit(max_outputs, "out_features", "max_outputs"),
            max_columns=limit(max_columns, "columns", "max_columns"),
            mode=mode,
            activation_bits=activation_bits or fallback.activation_bits,
        )

    @property
    def acc_bits(self) -> int:
        """The accumulator's width."""
        return self.activation_bits + ACC_EXTRA_BITS

    @property
    def product_max(self) -> int:
        """The largest magnitude of one codeword entry times one activation."""
        return 128 * 2 ** (self.activation_bits - 1)

    @property
    def index_bits(self) -> int:
        return (self.K - 1).bit_length()

    @property
    def max_blocks(self) -> int:
        """The most codeword indices (blocks of D inputs) per output channel."""
        return -(-self.max_inputs // self.D)

    @property
    def max_groups(self) -> int:
        """The most groups of L output channels per layer run."""
        return -(-self.max_outputs // self.L)

    def tiling(
        self, out_features: int, in_features: int, conv_groups: int = 1, pixels: int = 1
    ) -> Tiling:
        """The tiling of a layer run of ``conv_groups`` convolution groups of ``out_features``
        channels of ``in_features`` inputs, over ``pixels`` columns each: the one place that
        computes it. The run is column-packed when that takes fewer cycles (its D output beats
        per group drain after its last step), it has at least D inputs (so that a group's D
        results drain while the next group computes) and its channels fit ``max_outputs``."""
        blocks = -(-in_features // self.D)
        dot = Tiling(
            False,
            conv_groups * pixels,
            -(-out_features // self.L),
            blocks,
            blocks,
            tiles=conv_groups * -(-out_features // self.L),
        )
        channels = out_features * conv_groups
        packed = Tiling(
            True,
            -(-pixels // self.D),
            -(-channels // self.L),
            in_features,
            blocks,
            self.D,
            -(-channels // self.L),
        )
        fits = in_features >= self.D and channels <= self.max_outputs
        faster = packed.beats + self.D - 1 < dot.beats
        return packed if fits and faster else dot

    @property
    def codeword_layout(self) -> data.ArrayLayout:
        return data.ArrayLayout(signed(8), self.D)

    @property
    def config_layout(self) -> data.StructLayout:
        """One beat per layer run. Counts are stored minus one, so that every encoding is legal."""
        fields = {
            "last_step": unsigned(_bits_for(self.max_inputs - 1)),
            "last_group": unsigned(_bits_for(self.max_groups - 1)),
            "last_unit": unsigned(_bits_for(self.max_columns - 1)),
            "relu": unsigned(1),
            "packed": unsigned(1),
        }
        if self.mode == "sram":
            fields["last_entry"] = unsigned(self.index_bits)
        return data.StructLayout(fields)

    @property
    def channel_layout(self) -> data.StructLayout:
        """Requantization parameters of one output channel."""
        return data.StructLayout(
            {
                "bias": signed(self.acc_bits),
                "mult": unsigned(MULT_BITS),
                "shift": unsigned(SHIFT_BITS),
            }
        )

    @property
    def quant_layout(self) -> data.ArrayLayout:
        """One beat per group of L output channels."""
        return data.ArrayLayout(self.channel_layout, self.L)

    @property
    def act_layout(self) -> data.ArrayLayout:
        """D activations: a block of a column's inputs, or one input of D packed columns."""
        return data.ArrayLayout(signed(self.activation_bits), self.D)

    @property
    def act_beat_layout(self) -> data.ArrayLayout:
        """One act beat: each lane's D activations. A dot-product run uses lane 0's alone, for
        every lane."""
        return data.ArrayLayout(self.act_layout, self.L)

    @property
    def index_layout(self) -> data.ArrayLayout:
        """One beat per block: the L lanes' codeword indices."""
        return data.ArrayLayout(unsigned(self.index_bits), self.L)

    @property
    def input_streams(self) -> dict[str, data.Layout]:
        """The payload layout of each input stream, by port name (``cb_load`` in sram mode)."""
        streams = {
            "config": self.config_layout,
            "quant": self.quant_layout,
            "act": self.act_beat_layout,
            "index": self.index_layout,
        }
        if self.mode == "sram":
            streams["cb_load"] = self.codeword_layout
        return streams

    @property
    def out_layout(self) -> data.ArrayLayout:
        """One beat per group: the L lanes' outputs."""
        return data.ArrayLayout(signed(self.activation_bits), self.L)
