"""The register stages the datapath is built from, each with a fixed latency in clock edges,
and the hooks by which an FPGA platform builds the slow ones from its own blocks.

An FPGA's multipliers and block RAMs have registers inside them, but Yosys leaves those unused
when it infers the blocks, so the routing to and from a block and the block's own delay would
fall into one cycle. A platform object (the ``platform`` argument of ``elaborate``; see
:class:`vq4all.hw.fpga.board.ECP5`) may provide ``registered_product`` and ``registered_memory``
with the same cycle behaviour built from those blocks (they give the block's registered output; the
last register of each stage stays in the fabric). Without one (simulation, generic
Verilog) they are plain registers and an Amaranth memory, which is what the simulations check.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, Value, unsigned
from amaranth.lib import memory

__all__ = [
    "MEMORY_LATENCY",
    "PRODUCT_LATENCY",
    "MemoryWrite",
    "delayed",
    "registered",
    "registered_memory",
    "registered_product",
]

#: Clock edges from the operands to :func:`registered_product`'s product.
PRODUCT_LATENCY = 3
#: Clock edges from an address to :func:`registered_memory`'s data.
MEMORY_LATENCY = 3


def registered(m: Module, value, name: str) -> Signal:
    """``value`` through one register. The pipeline never stalls (see
    :mod:`vq4all.hw.accelerator`), so no register has a clock enable; one that is ever needed
    comes through Amaranth's ``EnableInserter``."""
    register = Signal.like(value, name=name)
    m.d.sync += register.eq(value)
    return register


def delayed(m: Module, value, cycles: int, name: str):
    """``value`` as it was ``cycles`` clock edges ago: a chain of registers, beside the
    pipeline stages it keeps pace with."""
    for stage in range(cycles):
        value = registered(m, value, f"{name}_{stage + 1}")
    return value


def registered_product(m: Module, platform, a, b, name: str):
    """``a * b`` :data:`PRODUCT_LATENCY` clock edges later: registered operands, the
    registered product, and the product registered once more. On an FPGA the first two are the
    multiplier block's own registers and the last sits beside the logic that adds the
    products: the blocks stand in a few rows of the chip, often far from that logic, and the
    route from one is a cycle's worth by itself."""
    if hasattr(platform, "registered_product"):
        product = platform.registered_product(m, a, b, name)
    else:
        operand_a = registered(m, a, f"{name}_a")
        operand_b = registered(m, b, f"{name}_b")
        product = registered(m, operand_a * operand_b, f"{name}_block")
    return registered(m, product, name)


@dataclass(frozen=True)
class MemoryWrite:
    """A memory's write port: ``data`` goes to ``addr`` on a clock edge where ``en`` is high."""

    en: Value
    addr: Value
    data: Value


def registered_memory(
    m: Module,
    platform,
    *,
    width: int,
    depth: int,
    init: list[int],
    reads: list,
    name: str,
    write: MemoryWrite | None = None,
) -> list[Signal]:
    """A memory of ``depth`` words of ``width`` bits (initially ``init``, then zeros) read at
    each address of ``reads``, the data :data:`MEMORY_LATENCY` clock edges later: the
    synchronous read, the memory's output register, and the data registered once more beside
    the logic that uses it (block RAMs, like multipliers, stand in a few rows of an FPGA);
    ``write`` (if any) writes whenever its ``en`` is high. A read of the address being written
    returns the old or the new word: callers must not depend on which."""
    if hasattr(platform, "registered_memory"):
        outputs = platform.registered_memory(
            m,
            width=width,
            depth=depth,
            init=init,
            reads=reads,
            name=name,
            write=write,
        )
    else:
        # A one-deep memory would have a zero-width address, which Verilog cannot declare.
        m.submodules[name] = storage = memory.Memory(
            shape=unsigned(width), depth=max(2, depth), init=init
        )
        if write is not None:
            port = storage.write_port()
            m.d.comb += [
                port.en.eq(write.en),
                port.addr.eq(write.addr),
                port.data.eq(write.data),
            ]
        outputs = []
        for i, address in enumerate(reads):
            port = storage.read_port(domain="sync")
            m.d.comb += port.addr.eq(address)
            outputs.append(registered(m, port.data, f"{name}_out_{i}"))
    return [registered(m, data, f"{name}_data_{i}") for i, data in enumerate(outputs)]
