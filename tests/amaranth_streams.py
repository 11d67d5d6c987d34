"""Valid/ready producers and consumers for Amaranth's simulator, shared by the unit tests."""

from __future__ import annotations

import random

__all__ = ["stream_get", "stream_put", "put_all", "get_all"]


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
