"""Valid/ready stream endpoints for cocotb: one place for every testbench's drivers and monitors.

The endpoints do not own a coroutine each. The testbench's single clock loop calls ``drive``
right after each rising edge and ``sample`` once the cycle has settled (``ReadOnly``): a beat
transfers on the next edge exactly when ``valid`` and ``ready`` are both high in that settled
state. One loop for all streams keeps Python's per-cycle cost low.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

__all__ = ["StreamSink", "StreamSource", "random_gaps"]


def random_gaps(seed: int, probability: float = 0.3, longest: int = 1) -> Callable[[], bool]:
    """A seeded generator that says "pause this cycle": a pause starts with ``probability``
    and lasts 1 to ``longest`` cycles."""
    rng = random.Random(seed)
    left = 0

    def pause() -> bool:
        nonlocal left
        if left == 0 and rng.random() < probability:
            left = rng.randint(1, longest)
        if left:
            left -= 1
            return True
        return False

    return pause


class _Endpoint:
    """The handles of stream ``name``: Amaranth flattens it into ``<name>__valid``,
    ``<name>__ready`` and ``<name>__payload`` ports."""

    def __init__(self, dut, name: str) -> None:
        self.name = name
        self._valid = getattr(dut, f"{name}__valid")
        self._ready = getattr(dut, f"{name}__ready")
        self._payload = getattr(dut, f"{name}__payload")


class StreamSource(_Endpoint):
    """Drives ``<name>__valid``/``__payload`` from a queue of packed payloads.

    ``idle``, if given, is asked each cycle whether to withhold the next beat. ``cycles`` lists
    the cycle of each transfer.
    """

    def __init__(self, dut, name: str, idle: Callable[[], bool] | None = None) -> None:
        super().__init__(dut, name)
        self.idle = idle
        self.queue: deque[int] = deque()
        self.cycles: list[int] = []
        self._offering = False

    def send(self, payloads) -> None:
        self.queue.extend(payloads)

    def clear(self) -> None:
        """Drop pending beats and deassert valid (for a reset)."""
        self.queue.clear()
        self._offering = False
        self._valid.value = 0

    def drive(self) -> None:
        # A beat on offer stays on offer until it transfers: withdrawing it would break the
        # stream rules, so idle gaps are only inserted between beats.
        if not self._offering:
            offer = bool(self.queue) and not (self.idle is not None and self.idle())
            if offer:
                self._payload.value = self.queue[0]
            self._valid.value = int(offer)
            self._offering = offer

    def sample(self, cycle: int) -> None:
        if self._offering and self._ready.value:
            self.queue.popleft()
            self.cycles.append(cycle)
            self._offering = False

    @property
    def done(self) -> bool:
        return not self.queue and not self._offering


class StreamSink(_Endpoint):
    """Accepts ``<name>__payload`` beats, holding ready low when ``backpressure()`` says so."""

    def __init__(self, dut, name: str, backpressure: Callable[[], bool] | None = None) -> None:
        super().__init__(dut, name)
        self.backpressure = backpressure
        self.received: list[int] = []
        self.cycles: list[int] = []
        self._accepting = False

    def clear(self) -> None:
        self.received.clear()
        self.cycles.clear()

    def drive(self) -> None:
        self._accepting = not (self.backpressure is not None and self.backpressure())
        self._ready.value = int(self._accepting)

    def sample(self, cycle: int) -> None:
        if self._accepting and self._valid.value:
            self.received.append(self._payload.value.to_unsigned())
            self.cycles.append(cycle)
