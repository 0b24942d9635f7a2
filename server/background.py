"""Stopping the services' background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def stop(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    """Cancel ``tasks`` and wait until each has ended, whatever it raised."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)
