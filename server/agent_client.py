"""Speak the agent protocol over any byte channel (SSH exec channel or pipes)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
from typing import Any, Awaitable, Callable

from . import errors
from .transport import ByteChannel

log = logging.getLogger(__name__)

MARKER = b"FRAMEWIRE-AGENT"
MAX_JUNK_LINES = 10_000
EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


class AgentError(errors.FramewireError):
    """An error answer from the agent; ``code`` is the agent's error code."""

    status = 502

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, code=code)
        self.agent_details = details


class AgentStopped(errors.RemoteFailure):
    code = "agent-stopped"


class AgentClient:
    """One running agent: requests with ids, several in flight, pushed events."""

    def __init__(self, channel: ByteChannel, on_event: EventCallback | None = None) -> None:
        self.channel = channel
        self.on_event = on_event
        self.hello: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._buffer = b""
        self._reader: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.stopped_reason: str | None = None
        self.sent: collections.Counter[str] = collections.Counter()  # requests, by command

    @property
    def running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def start(self, nonce: str, timeout: float) -> dict[str, Any]:
        """Skip junk up to the marker line, read ``hello``, start the reader."""
        marker = MARKER + b" " + nonce.encode()
        junk: list[bytes] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self._readline()
                    if line is None:
                        raise AgentStopped(
                            "Agent startup failed.",
                            hint=_startup_hint(junk, await self.channel.stderr_tail()))
                    if line.rstrip(b"\r\n") == marker:
                        break
                    junk.append(line)
                    if len(junk) > MAX_JUNK_LINES:
                        raise AgentStopped("Agent startup failed.",
                                           hint="The remote login printed too much output.")
                line = await self._readline()
                if line is None:
                    raise AgentStopped("Agent startup failed.",
                                       hint=_startup_hint([], await self.channel.stderr_tail()))
        except TimeoutError:
            raise AgentStopped("Agent startup failed.",
                               hint=f"The agent did not answer within {timeout:.0f} s.") from None
        if junk:
            log.info("skipped %d line(s) of login output before the agent marker", len(junk))
        self.hello = _parse_hello(line)
        self._reader = asyncio.create_task(self._read_loop())
        return self.hello

    async def _readline(self) -> bytes | None:
        while b"\n" not in self._buffer:
            chunk = await self.channel.read(1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    async def _read_loop(self) -> None:
        try:
            while (line := await self._readline()) is not None:
                try:
                    message = json.loads(line)
                except ValueError:
                    log.warning("agent sent a line that is not JSON; ignored")
                    continue
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif "event" in message and self.on_event is not None:
                    result = self.on_event(message)
                    if asyncio.iscoroutine(result):
                        await result
        finally:
            self.stopped_reason = "The agent stopped."
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AgentStopped(
                        "The remote agent stopped.",
                        hint="Create a new session to start a new agent."))
            self._pending.clear()
            if self.on_event is not None:  # whoever follows its jobs hears of it at once
                try:
                    result = self.on_event({"event": "stopped"})
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("handling the agent's stop failed")

    async def request(self, command: str, args: dict[str, Any] | None = None,
                      timeout: float | None = 300.0) -> dict[str, Any]:
        """Send one request and wait for its answer; agent errors raise AgentError."""
        if not self.running:
            raise AgentStopped("The remote agent stopped.",
                               hint="Create a new session to start a new agent.")
        request_id = next(self._ids)
        self.sent[command] += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        line = json.dumps({"id": request_id, "cmd": command, "args": args or {}},
                          ensure_ascii=True).encode() + b"\n"
        async with self._write_lock:
            self.channel.write(line)
            await self.channel.drain()
        try:
            async with asyncio.timeout(timeout):
                message = await future
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise errors.RemoteFailure(f"The agent did not answer {command!r} in time.") from None
        if message.get("ok"):
            return message["result"]
        error = message.get("error") or {}
        raise AgentError(error.get("code", "internal"), error.get("message", "Agent error."),
                         error.get("details") or {})

    async def close(self) -> None:
        self.channel.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass


PROTOCOL_VERSION = 1


def _parse_hello(line: bytes) -> dict[str, Any]:
    try:
        hello = json.loads(line)["hello"]
    except (ValueError, KeyError, TypeError):
        raise AgentStopped("Agent startup failed.",
                           hint="The agent's first message was not a hello.") from None
    if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL_VERSION:
        spoken = hello.get("protocol") if isinstance(hello, dict) else None
        raise AgentStopped(
            "Agent startup failed.",
            hint=f"The agent speaks protocol {spoken}, the server {PROTOCOL_VERSION}; "
                 "remove ~/.cache/framewire/agent-*.pyz on the remote host.")
    return hello


def _startup_hint(junk: list[bytes], stderr: str) -> str:
    text = stderr.strip() or b"".join(junk[-5:]).decode("utf-8", "replace").strip()
    if "not found" in text and "python" in text.lower():
        return "python3 was not found on the remote host; install Python 3.6 or newer."
    if text:
        return "The agent exited: " + text.splitlines()[-1][:300]
    return "The agent exited before it started; check that python3 works on the remote host."
