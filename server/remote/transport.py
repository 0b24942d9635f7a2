"""How the server reaches an agent: the interface every transport implements.

A transport starts the agent (``serve`` mode) and opens byte-range streams
(``stream`` mode), each as a :class:`ByteChannel`.  ``ssh.SSHTransport`` runs
them on SSH exec channels; ``local.LocalTransport`` runs them as local
subprocesses over pipes, for the embedded single-machine default.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import json
import logging
from typing import Any, Protocol

from ..records import Hello

log = logging.getLogger(__name__)
STDERR_LINES = 50


class ByteChannel(Protocol):
    async def read(self, size: int) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...
    async def stderr_tail(self) -> str: ...


class Transport(abc.ABC):
    kind: str

    @abc.abstractmethod
    async def start_agent(self, nonce: str) -> ByteChannel:
        """Start the agent in ``serve`` mode."""

    @abc.abstractmethod
    async def open_stream(self, path: str, offset: int, length: int) -> ByteChannel:
        """Stream ``length`` bytes of ``path`` from ``offset``."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        return {"transport": self.kind}

    @property
    def notes(self) -> list[str]:
        """What the person should know about how this host was reached (fallbacks)."""
        return []

    async def provide_ffmpeg(self, hello: Hello) -> bool:
        """Give the host an ffmpeg when it has none usable and that is allowed; True
        when it was given (the agent must start again to find it)."""
        return False

    @property
    def remote_username(self) -> str:
        """The account the transport logged in as ("" when it did not say)."""
        return ""


STREAM_MARKER = b"FRAMEWIRE-STREAM"
MAX_PREAMBLE = 1 << 20


def stream_request(path: str, offset: int, length: int) -> bytes:
    return json.dumps({"path": path, "offset": offset, "length": length}).encode() + b"\n"


class StreamChannel:
    """A ``stream``-mode channel with the login junk before its marker removed."""

    def __init__(self, inner: ByteChannel, nonce: str) -> None:
        self.inner = inner
        self._marker = STREAM_MARKER + b" " + nonce.encode() + b"\n"
        self._pending = b""
        self._started = False

    async def read(self, size: int) -> bytes:
        if not self._started:
            await self._skip_preamble()
        if self._pending:
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return await self.inner.read(size)

    async def _skip_preamble(self) -> None:
        buffer = b""
        while True:
            at = buffer.find(self._marker)
            if at >= 0 and (at == 0 or buffer[at - 1:at] == b"\n"):
                self._pending = buffer[at + len(self._marker):]
                self._started = True
                return
            if len(buffer) > MAX_PREAMBLE:
                raise ConnectionError("no stream marker in the first MiB of output")
            chunk = await self.inner.read(1 << 16)
            if not chunk:
                self._started = True  # EOF before the marker: nothing to stream
                return
            buffer += chunk

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    async def drain(self) -> None:
        await self.inner.drain()

    def close(self) -> None:
        self.inner.close()

    async def stderr_tail(self) -> str:
        return await self.inner.stderr_tail()


async def open_stream_channel(inner: ByteChannel, nonce: str, path: str, offset: int,
                              length: int) -> StreamChannel:
    channel = StreamChannel(inner, nonce)
    channel.write(stream_request(path, offset, length))
    await channel.drain()
    return channel


class StderrDrain:
    """Keeps the last lines an agent wrote to stderr and logs them."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.lines: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.task: asyncio.Task[None] | None = None

    def start(self, reader: Any) -> None:
        self.task = asyncio.create_task(self._run(reader))

    async def _run(self, reader: Any) -> None:
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip() if isinstance(line, bytes) \
                    else line.rstrip()
                self.lines.append(text)
                log.debug("%s stderr: %s", self.label, text)
        except Exception:  # the channel went away; nothing more to drain
            pass

    async def tail(self) -> str:
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 1.0)
            except (TimeoutError, asyncio.CancelledError):
                pass
        return "\n".join(self.lines)
