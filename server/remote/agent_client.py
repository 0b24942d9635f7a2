"""Speak the agent protocol over any byte channel (SSH exec channel or pipes).

An agent's error answer becomes a domain exception here, once (``error_for``):
no caller ever sees the agent's raw error codes.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
from typing import Any, Awaitable, Callable

from .. import errors
from ..records import Hello
from .transport import ByteChannel

log = logging.getLogger(__name__)

MARKER = b"FRAMEWIRE-AGENT"
MAX_JUNK_LINES = 10_000
PROTOCOL_VERSION = 1
EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]
STOPPED = {"event": "stopped"}  # what on_event hears when the agent's output ends

# The agent's error codes (agent/protocol.py) and the domain error each becomes.
_PATH_CODES = ("not-found", "is-directory", "access-denied", "not-an-image",
               "truncated-image", "undecodable-image")
_HOST_CODES = ("no-ffmpeg", "no-encoder", "missing-filter", "no-space", "no-slurm",
               "node-local-work-dir")


def error_for(code: str, message: str, details: dict[str, Any]) -> errors.FramewireError:
    """The domain error for an error answer of the agent."""
    hint = details.get("hint") if isinstance(details.get("hint"), str) else None
    field_name = details.get("field")
    pointer = "/" + field_name.replace(".", "/") if isinstance(field_name, str) else None
    if code in _PATH_CODES:
        return errors.RemotePathError(message, code=code, hint=hint)
    if code in _HOST_CODES:
        return errors.RemoteSetupError(message, code=code, hint=hint, pointer=pointer)
    if code == "bad-images":
        return _bad_images(message, details)
    if code == "slurm-refused":  # sbatch's own words: what was asked for does not fit
        return errors.BadRequest(message, code=code, hint=hint, pointer="/slurm")
    if code == "bad-request":
        if isinstance(field_name, str):
            return errors.ValidationError(field_name, message)
        return errors.BadRequest(message)
    if code == "unknown-job":
        return errors.UnknownJob("Unknown video.", hint="Check the video id.")
    return errors.RemoteFailure(message, code=code, hint=hint)


def _bad_images(message: str, details: dict[str, Any]) -> errors.BadImages:
    bad = details.get("bad") or []
    listed = [{
        "code": item.get("code"),
        "title": item.get("message"),
        "detail": item.get("message"),
        "source": {"pointer": "/" + str(item.get("field", "images")).replace(".", "/")},
        "meta": {"path": item.get("path")},
    } for item in bad]
    count = details.get("count", len(bad))
    return errors.BadImages(
        message,
        hint=f"{count} image(s) cannot be used; fix or remove them and retry."
             + (" The body lists the first 100." if count > len(bad) else ""),
        pointer=listed[0]["source"]["pointer"] if listed else "/images",
        details=listed)


def _stopped() -> errors.AgentStopped:
    return errors.AgentStopped("The remote agent stopped.",
                               hint="Create a new session to start a new agent.")


class AgentClient:
    """One running agent: requests with ids, several in flight, pushed events."""

    def __init__(self, channel: ByteChannel, on_event: EventCallback) -> None:
        self.channel = channel
        self.on_event = on_event
        self.hello: Hello = Hello()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._buffer = bytearray()
        self._reader: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.sent: collections.Counter[str] = collections.Counter()  # requests, by command

    @property
    def running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def start(self, nonce: str, timeout: float) -> Hello:
        """Skip junk up to the marker line, read ``hello``, start the reader."""
        marker = MARKER + b" " + nonce.encode()
        junk: list[bytes] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self._readline()
                    if line is None:
                        raise errors.AgentStopped(
                            "Agent startup failed.",
                            hint=_startup_hint(junk, await self.channel.stderr_tail()))
                    if line.rstrip(b"\r\n") == marker:
                        break
                    junk.append(line)
                    if len(junk) > MAX_JUNK_LINES:
                        raise errors.AgentStopped(
                            "Agent startup failed.",
                            hint="The remote login printed too much output.")
                line = await self._readline()
                if line is None:
                    raise errors.AgentStopped(
                        "Agent startup failed.",
                        hint=_startup_hint([], await self.channel.stderr_tail()))
        except TimeoutError:
            raise errors.AgentStopped(
                "Agent startup failed.",
                hint=f"The agent did not answer within {timeout:.0f} s.") from None
        if junk:
            log.info("skipped %d line(s) of login output before the agent marker", len(junk))
        self.hello = _parse_hello(line)
        self._reader = asyncio.create_task(self._read_loop())
        return self.hello

    async def _readline(self) -> bytes | None:
        """The next line, without its newline.  Linear in its length: an answer with
        a batch of thumbnails is a line of megabytes, read 64 KiB at a time."""
        scanned = 0
        while (end := self._buffer.find(b"\n", scanned)) < 0:
            scanned = len(self._buffer)
            chunk = await self.channel.read(1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        return line

    async def _read_loop(self) -> None:
        try:
            while (line := await self._readline()) is not None:
                try:
                    message = json.loads(line)
                except ValueError:
                    log.warning("agent sent a line that is not JSON; ignored")
                    continue
                if not isinstance(message, dict):
                    continue
                if "id" in message:
                    future = self._pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif "event" in message:
                    await self._tell(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(_stopped())
            self._pending.clear()
            # Whoever follows its jobs hears of it at once.
            await self._tell(dict(STOPPED))

    async def _tell(self, message: dict[str, Any]) -> None:
        try:
            result = self.on_event(message)
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("handling the agent's %s event failed", message.get("event"))

    async def request(self, command: str, args: dict[str, Any] | None = None,
                      timeout: float | None = 300.0) -> dict[str, Any]:
        """Send one request and wait for its answer; an error answer raises the
        domain error it stands for (``error_for``)."""
        if not self.running:
            raise _stopped()
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
            result = message.get("result")
            return result if isinstance(result, dict) else {}
        error = message.get("error") or {}
        details = error.get("details")
        raise error_for(str(error.get("code", "internal")),
                        str(error.get("message", "Agent error.")),
                        details if isinstance(details, dict) else {})

    async def close(self) -> None:
        self.channel.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass


def _parse_hello(line: bytes) -> Hello:
    try:
        hello = json.loads(line)["hello"]
    except (ValueError, KeyError, TypeError):
        raise errors.AgentStopped("Agent startup failed.",
                                  hint="The agent's first message was not a hello.") from None
    if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL_VERSION:
        spoken = hello.get("protocol") if isinstance(hello, dict) else None
        raise errors.AgentStopped(
            "Agent startup failed.",
            hint=f"The agent speaks protocol {spoken}, the server {PROTOCOL_VERSION}; "
                 "remove ~/.cache/framewire/agent-*.pyz on the remote host.")
    return hello  # type: ignore[return-value]  # JSON, named by the TypedDict


def _startup_hint(junk: list[bytes], stderr: str) -> str:
    text = stderr.strip() or b"".join(junk[-5:]).decode("utf-8", "replace").strip()
    if "not found" in text and "python" in text.lower():
        return "python3 was not found on the remote host; install Python 3.6 or newer."
    if text:
        return "The agent exited: " + text.splitlines()[-1][:300]
    return "The agent exited before it started; check that python3 works on the remote host."
