"""The output queue: results wait in a block RAM, read through its registers."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from vq4all.hw.stages import MEMORY_LATENCY, MemoryWrite, delayed, registered_memory

__all__ = ["OutputQueue"]

#: Words fetched ahead of the output: the memory's read latency, and one more so that a word
#: can leave every cycle.
AHEAD = 8


class OutputQueue(wiring.Component):
    """A first-in, first-out queue of ``depth`` words of ``width`` bits (a power of two), with
    :class:`~amaranth.lib.fifo.SyncFIFO`'s ``w_en``/``w_data`` and ``r_rdy``/``r_data``/``r_en``.

    The words are stored in a memory read through :func:`vq4all.hw.stages.registered_memory`
    (on an FPGA a block RAM with its output register), and fetched ahead into a small queue of
    :data:`AHEAD` words in the fabric, whose head is the output: neither the memory's slow read
    nor its address logic reaches whatever takes the output. A queue as deep as the
    accelerator's is a block RAM however it is written, and an unregistered one is the slowest
    path of the design. ``depth`` words fit besides the ones fetched ahead.
    """

    #: Cycles from a write to the word's first cycle at the output, when the queue is empty:
    #: the write, the fetch's read, and the small queue's write.
    LATENCY = 1 + MEMORY_LATENCY + 1

    def __init__(self, width: int, depth: int) -> None:
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 2, not {depth!r}")
        self.width, self.depth = width, depth
        super().__init__(
            {
                "w_en": In(1),
                "w_data": In(width),
                "r_rdy": Out(1),
                "r_data": Out(width),
                "r_en": In(1),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        write_at = Signal(range(self.depth))
        read_at = Signal(range(self.depth))
        stored = Signal(range(self.depth + 1))  # written and not yet fetched
        in_flight = Signal(range(MEMORY_LATENCY + 1))  # fetched and not yet in the small queue
        (word,) = registered_memory(
            m,
            platform,
            width=self.width,
            depth=self.depth,
            init=[],
            reads=[read_at],
            name="storage",
            write=MemoryWrite(self.w_en, write_at, self.w_data),
        )
        m.submodules.ahead = ahead = SyncFIFO(width=self.width, depth=AHEAD)
        fetch = Signal()
        m.d.comb += fetch.eq((stored != 0) & (ahead.level + in_flight < AHEAD))
        fetched = delayed(m, fetch, MEMORY_LATENCY, "fetched")
        m.d.sync += [
            write_at.eq(write_at + self.w_en),
            read_at.eq(read_at + fetch),
            stored.eq(stored + self.w_en - fetch),
            in_flight.eq(in_flight + fetch - fetched),
        ]
        m.d.comb += [
            ahead.w_en.eq(fetched),
            ahead.w_data.eq(word),
            self.r_rdy.eq(ahead.r_rdy),
            self.r_data.eq(ahead.r_data),
            ahead.r_en.eq(self.r_en),
        ]
        return m
