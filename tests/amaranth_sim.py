"""Amaranth simulator helpers shared by the unit tests: a hang-guarded runner and valid/ready
producers and consumers."""

from __future__ import annotations

import random

from amaranth.sim import Simulator

__all__ = ["get_all", "put_all", "simulate", "stream_get", "stream_put"]

CLOCK_PERIOD = 1e-6


def simulate(dut, *testbenches, monitors=(), max_cycles: int = 100_000) -> None:
    """Run ``testbenches`` on ``dut`` with a clock; fail if they have not all finished after
    ``max_cycles`` (a hang guard), and let any exception inside them propagate. ``monitors``
    run in the background and need not finish."""
    finished = []
    sim = Simulator(dut)
    sim.add_clock(CLOCK_PERIOD)
    for monitor in monitors:
        sim.add_process(monitor)
    for testbench in testbenches:

        async def guarded(ctx, testbench=testbench):
            await testbench(ctx)
            finished.append(testbench)

        sim.add_testbench(guarded)
    sim.run_until(max_cycles * CLOCK_PERIOD)
    assert len(finished) == len(testbenches), f"{len(testbenches) - len(finished)} testbenches hung"


async def stream_put(ctx, stream, payload) -> None:
    """Offer one beat and return after the clock edge that transfers it."""
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Accept one beat and return its payload."""
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def put_all(ctx, stream, beats, rng: random.Random | None = None) -> None:
    """Send ``beats`` in order, idling a random 0-2 cycles before each when ``rng`` is given."""
    for beat in beats:
        if rng is not None and rng.random() < 0.5:
            await ctx.tick().repeat(1 + rng.randrange(2))
        await stream_put(ctx, stream, beat)


async def get_all(ctx, stream, count: int, rng: random.Random | None = None) -> list:
    """Receive ``count`` beats, holding ready low a random 0-2 cycles before each with ``rng``."""
    beats = []
    for _ in range(count):
        if rng is not None and rng.random() < 0.5:
            await ctx.tick().repeat(1 + rng.randrange(2))
        beats.append(await stream_get(ctx, stream))
    return beats
