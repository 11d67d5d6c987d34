"""The codebook memory and decode stage: L indices in, L codewords out, three cycles later."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from vq4all.golden.errors import InputError
from vq4all.hw.params import AcceleratorParams, rejecting_bad_parameters
from vq4all.hw.stages import MEMORY_LATENCY, MemoryWrite, registered_memory

__all__ = ["CodebookMemory", "pack_codewords"]


def pack_codewords(codewords: np.ndarray) -> list[int]:
    """Each int8 row as one ``8 * D``-bit word, entry 0 in the low byte (the layout's order)."""
    rows = np.ascontiguousarray(codewords, dtype=np.int8).view(np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in rows]


def _check_codewords(params: AcceleratorParams, codewords: np.ndarray | None) -> None:
    if params.mode == "sram":
        if codewords is not None:
            raise InputError("sram mode takes no codewords: they are written at run time")
        return
    if codewords is None:
        raise InputError("rom mode needs the codewords")
    if not isinstance(codewords, np.ndarray) or codewords.dtype != np.int8:
        raise InputError(f"codewords must be an int8 numpy array, not {codewords!r}")
    if codewords.shape != (params.K, params.D):
        raise InputError(
            f"codewords of shape {codewords.shape!r} do not match K={params.K}, D={params.D}"
        )


class CodebookMemory(wiring.Component):
    """K x D int8 codewords with L synchronous read ports, one per output lane.

    In ``rom`` mode the contents are ``codewords`` (int8 ``[K, D]``), fixed at elaboration. In
    ``sram`` mode they are written through ``write_*`` before a layer runs.

    Raises ``ValueError`` if ``codewords`` is missing in rom mode, given in sram mode, or not an
    int8 array of shape ``[K, D]``.
    """

    #: Clock edges from ``addr`` to ``codewords``: the read, the output register, the
    #: register beside the MAC array (:func:`vq4all.hw.stages.registered_memory`).
    LATENCY = MEMORY_LATENCY

    def __init__(self, params: AcceleratorParams, codewords: np.ndarray | None = None) -> None:
        with rejecting_bad_parameters(self):
            _check_codewords(params, codewords)
        self.params = params
        self._init = pack_codewords(codewords) if codewords is not None else []
        members = {
            "addr": In(data.ArrayLayout(unsigned(params.index_bits), params.L)),
            "codewords": Out(data.ArrayLayout(params.codeword_layout, params.L)),
        }
        if params.mode == "sram":
            members |= {
                "write_en": In(1),
                "write_addr": In(unsigned(params.index_bits)),
                "write_data": In(params.codeword_layout),
            }
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        params = self.params
        write = None
        if params.mode == "sram":
            write = MemoryWrite(self.write_en, self.write_addr, self.write_data)
        outputs = registered_memory(
            m,
            platform,
            width=8 * params.D,
            depth=params.K,
            init=self._init,
            reads=list(self.addr),
            name="storage",
            write=write,
        )
        m.d.comb += [self.codewords[lane].eq(outputs[lane]) for lane in range(params.L)]
        return m
