"""What one service tells the others without knowing them: a message an agent
pushed, a session that opened.  Built first; the services that listen subscribe
in their constructors, so no service is patched after it is built."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from . import background

if TYPE_CHECKING:
    from .remote.sessions import RemoteSession

log = logging.getLogger(__name__)
AgentListener = Callable[["RemoteSession", dict[str, Any]], Awaitable[None]]
SessionListener = Callable[["RemoteSession"], Awaitable[Any]]


class Events:
    def __init__(self) -> None:
        self._agent: list[AgentListener] = []
        self._opened: list[SessionListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def on_agent_message(self, listener: AgentListener) -> None:
        """``listener(session, message)`` for every event a session's agent pushes
        (and ``{"event": "stopped"}`` when its output ends)."""
        self._agent.append(listener)

    def on_session_opened(self, listener: SessionListener) -> None:
        """``listener(session)``, in the background, for every new session with an agent."""
        self._opened.append(listener)

    async def agent_message(self, session: RemoteSession, message: dict[str, Any]) -> None:
        for listener in self._agent:
            await listener(session, message)

    def session_opened(self, session: RemoteSession) -> None:
        for listener in self._opened:
            task = asyncio.get_running_loop().create_task(self._quietly(listener, session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _quietly(self, listener: SessionListener, session: RemoteSession) -> None:
        try:
            await listener(session)
        except Exception:
            log.exception("a listener of new sessions failed")

    async def close(self) -> None:
        await background.stop(list(self._tasks))
