"""The local transport: the agent as a subprocess of the server, on its own machine
(the embedded single-machine default: no SSH)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
from typing import Any

from . import bundle
from .transport import ByteChannel, StderrDrain, Transport, open_stream_channel

STOP_GRACE = 5.0  # seconds a local agent has to exit by itself, then after each signal


async def stop_process(process: asyncio.subprocess.Process, grace: float) -> None:
    """End a local agent process: its input closed, it exits by itself; signals only
    when it has not after ``grace`` seconds.

    Signalling at once races with its own exit: Python's terminate() first polls,
    which reaps an exited child before asyncio's child watcher does (that logs
    "Unknown child process pid …, will report returncode 255").
    """
    if process.stdin is not None and not process.stdin.is_closing():
        process.stdin.close()
    for signal_it in (None, process.terminate, process.kill):
        if signal_it is not None and process.returncode is None:
            try:
                signal_it()
            except ProcessLookupError:
                pass
        try:
            await asyncio.wait_for(process.wait(), grace)
            return
        except TimeoutError:
            continue


class ProcessChannel:
    """A local subprocess's stdin/stdout as a ByteChannel."""

    def __init__(self, process: asyncio.subprocess.Process, label: str) -> None:
        self.process = process
        self.drain_stderr = StderrDrain(label)
        self.drain_stderr.start(process.stderr)
        self.stopping: asyncio.Task[None] | None = None

    async def read(self, size: int) -> bytes:
        assert self.process.stdout is not None
        return await self.process.stdout.read(size)

    def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)

    async def drain(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.drain()

    def close(self) -> None:
        if self.stopping is None:
            self.stopping = asyncio.get_running_loop().create_task(
                stop_process(self.process, STOP_GRACE))

    async def stopped(self) -> None:
        """Until the process has ended (after :meth:`close`)."""
        self.close()
        assert self.stopping is not None
        await asyncio.shield(self.stopping)

    async def stderr_tail(self) -> str:
        return await self.drain_stderr.tail()


def local_ffmpeg(configured: str) -> str | None:
    """ffmpeg for local agents: configured, then PATH, then imageio-ffmpeg's."""
    if configured:
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


class LocalTransport(Transport):
    """The agent as a subprocess of the server, on the server's own machine."""

    kind = "local"

    def __init__(self, cache_dir: str, ffmpeg: str | None, work_dir: str = "",
                 nice: int = 0) -> None:
        self.agent_path = bundle.build().write_to(cache_dir)
        self.nice = nice
        self.env = dict(os.environ)
        if ffmpeg:
            self.env["FRAMEWIRE_FFMPEG"] = ffmpeg
        if work_dir:
            self.env["FRAMEWIRE_WORK_DIR"] = work_dir
        self._channels: list[ProcessChannel] = []

    async def _spawn(self, *args: str, label: str) -> ProcessChannel:
        process = await asyncio.create_subprocess_exec(
            sys.executable, self.agent_path, *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, limit=1 << 20)
        self._channels = [c for c in self._channels if c.process.returncode is None]
        channel = ProcessChannel(process, label)
        self._channels.append(channel)
        return channel

    async def start_agent(self, nonce: str) -> ByteChannel:
        return await self._spawn("serve", "--nonce", nonce, "--nice", str(self.nice),
                                 label="local agent")

    async def open_stream(self, path: str, offset: int, length: int) -> ByteChannel:
        nonce = secrets.token_hex(8)
        inner = await self._spawn("stream", "--nonce", nonce, label="local stream")
        return await open_stream_channel(inner, nonce, path, offset, length)

    async def close(self) -> None:
        channels, self._channels = self._channels, []
        await asyncio.gather(*(channel.stopped() for channel in channels))

    def describe(self) -> dict[str, Any]:
        return {"transport": self.kind, "agent_path": self.agent_path, "uploaded": False}
