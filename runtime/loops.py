"""The background loops of rayfn's actors: one tick every so often, for ever."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


async def tick_forever(every_s: float, tick: Callable[[int], Awaitable[None]], what: str) -> None:
    """Run ``tick(n)`` every ``every_s`` seconds (``n``: 1, 2, ...). A tick that fails
    is logged as ``what`` and the next one runs: one bad entry must never stop a
    schedule, expiry or metrics for good."""
    ticks = 0
    while True:
        await asyncio.sleep(every_s)
        ticks += 1
        try:
            await tick(ticks)
        except Exception:
            logger.exception("%s failed", what)
