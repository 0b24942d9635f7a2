"""AgentClient over a fake byte channel: the handshake, replies out of order, pushed
events, every agent error code turned into its domain error, a dropped stream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from server import errors
from server.remote.agent_client import AgentClient, error_for

NONCE = "0123456789abcdef"
HELLO = {"protocol": 1, "agent": "0.1.0", "pid": 42, "work_dir": "/w",
         "ffmpeg": {"path": "/usr/bin/ffmpeg", "encoders": {"h264": "libx264"}}}


class FakeChannel:
    """The agent's side of the pipe, played by the test."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.written: list[dict[str, Any]] = []
        self.requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed = False

    def say(self, data: bytes) -> None:
        self.incoming.put_nowait(data)

    def send(self, message: dict[str, Any]) -> None:
        self.say(json.dumps(message).encode() + b"\n")

    def hang_up(self) -> None:
        self.say(b"")

    async def read(self, size: int) -> bytes:
        return await self.incoming.get()

    def write(self, data: bytes) -> None:
        for line in data.decode().splitlines():
            message = json.loads(line)
            self.written.append(message)
            self.requests.put_nowait(message)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True

    async def stderr_tail(self) -> str:
        return "Traceback: the agent fell over"


async def started(channel: FakeChannel, events: list[dict[str, Any]] | None = None
                  ) -> AgentClient:
    seen = events if events is not None else []

    async def on_event(message: dict[str, Any]) -> None:
        seen.append(message)

    client = AgentClient(channel, on_event)
    channel.say(b"Welcome to the cluster\nLast login: today\n")  # login junk first
    channel.say(f"FRAMEWIRE-AGENT {NONCE}\n".encode())
    channel.send({"hello": HELLO})
    await client.start(NONCE, timeout=5)
    return client


def test_the_handshake_skips_login_junk_and_reads_the_hello() -> None:
    async def run() -> None:
        channel = FakeChannel()
        client = await started(channel)
        assert client.running and client.hello["pid"] == 42
        await client.close()
        assert channel.closed
    asyncio.run(run())


def test_startup_without_a_marker_says_why() -> None:
    async def run() -> None:
        channel = FakeChannel()
        client = AgentClient(channel, lambda message: None)
        channel.say(b"sh: python3: not found\n")
        channel.hang_up()
        with pytest.raises(errors.AgentStopped) as stopped:
            await client.start(NONCE, timeout=5)
        assert stopped.value.message == "Agent startup failed."
        assert stopped.value.hint == "The agent exited: Traceback: the agent fell over"
    asyncio.run(run())


def test_a_hello_in_another_protocol_is_refused() -> None:
    async def run() -> None:
        channel = FakeChannel()
        client = AgentClient(channel, lambda message: None)
        channel.say(f"FRAMEWIRE-AGENT {NONCE}\n".encode())
        channel.send({"hello": {"protocol": 2}})
        with pytest.raises(errors.AgentStopped) as refused:
            await client.start(NONCE, timeout=5)
        assert "protocol 2, the server 1" in (refused.value.hint or "")
    asyncio.run(run())


def test_replies_out_of_order_reach_their_requests_and_events_are_pushed() -> None:
    async def run() -> None:
        channel = FakeChannel()
        events: list[dict[str, Any]] = []
        client = await started(channel, events)
        first = asyncio.ensure_future(client.request("browse", {"path": "/a"}))
        second = asyncio.ensure_future(client.request("stat", {"path": "/b"}))
        one, two = await channel.requests.get(), await channel.requests.get()
        assert (one["cmd"], two["cmd"]) == ("browse", "stat") and one["id"] != two["id"]
        channel.send({"event": "job", "data": {"id": "j", "status": "running"}})
        channel.send({"id": two["id"], "ok": True, "result": {"type": "f"}})
        channel.say(b"not json at all\n")  # ignored, like a stray line
        channel.send({"id": one["id"], "ok": True, "result": {"names": ["x"]}})
        assert await second == {"type": "f"}
        assert await first == {"names": ["x"]}
        assert events == [{"event": "job", "data": {"id": "j", "status": "running"}}]
        assert client.sent == {"browse": 1, "stat": 1}
        await client.close()
    asyncio.run(run())


def test_an_answer_of_many_megabytes_is_read_in_time_linear_in_its_length() -> None:
    """A batch of thumbnails is one line of megabytes, arriving 64 KiB at a time
    (re-scanning and re-copying the whole buffer for each piece took 2.4 s for 32 MiB)."""
    async def run() -> None:
        channel = FakeChannel()
        client = await started(channel)
        answer = asyncio.ensure_future(client.request("thumbnails", {"paths": ["/a.png"]}))
        request = await channel.requests.get()
        data = "x" * (32 << 20)
        line = json.dumps({"id": request["id"], "ok": True, "result": {"data": data}}).encode()
        started_at = time.perf_counter()
        for offset in range(0, len(line), 1 << 16):
            channel.say(line[offset:offset + (1 << 16)])
        channel.say(b"\n")
        assert (await answer)["data"] == data
        assert time.perf_counter() - started_at < 1.0
        await client.close()
    asyncio.run(run())


@pytest.mark.parametrize("code, details, kind, status, pointer", [
    ("not-found", {"path": "/x"}, errors.RemotePathError, 400, None),
    ("undecodable-image", {}, errors.RemotePathError, 400, None),
    ("no-encoder", {"field": "outputs.1.codec", "hint": "Use another"},
     errors.RemoteSetupError, 400, "/outputs/1/codec"),
    ("no-space", {}, errors.RemoteSetupError, 400, None),
    ("bad-request", {"field": "crf"}, errors.ValidationError, 400, "/crf"),
    ("bad-request", {}, errors.BadRequest, 400, None),
    ("bad-images", {"count": 1, "bad": [{"field": "images.3", "path": "/p",
                                         "code": "not-found", "message": "File not found"}]},
     errors.BadImages, 400, "/images/3"),
    ("unknown-job", {}, errors.UnknownJob, 404, None),
    ("job-exists", {}, errors.RemoteFailure, 502, None),
    ("internal", {}, errors.RemoteFailure, 502, None),
])
def test_every_agent_error_code_becomes_its_domain_error(
        code: str, details: dict[str, Any], kind: type, status: int,
        pointer: str | None) -> None:
    error = error_for(code, "What went wrong.", details)
    assert type(error) is kind and error.status == status
    assert error.pointer == pointer
    if kind is errors.BadImages:
        assert error.errors()[0]["meta"] == {"path": "/p"}
        assert error.hint == "1 image(s) cannot be used; fix or remove them and retry."
    if kind is errors.UnknownJob:
        assert (error.message, error.code) == ("Unknown video.", "unknown-video")


def test_an_error_answer_raises_the_domain_error() -> None:
    async def run() -> None:
        channel = FakeChannel()
        client = await started(channel)
        asking = asyncio.ensure_future(client.request("read-image", {"path": "/c.png"}))
        request = await channel.requests.get()
        channel.send({"id": request["id"], "ok": False, "error": {
            "code": "undecodable-image", "message": "Cannot decode the image /c.png.",
            "details": {"path": "/c.png"}}})
        with pytest.raises(errors.RemotePathError) as refused:
            await asking
        assert refused.value.code == "undecodable-image"
        await client.close()
    asyncio.run(run())


def test_a_dropped_stream_fails_what_waits_and_says_stopped() -> None:
    async def run() -> None:
        channel = FakeChannel()
        events: list[dict[str, Any]] = []
        client = await started(channel, events)
        waiting = asyncio.ensure_future(client.request("video-status", {"job": "j"}))
        await channel.requests.get()
        channel.hang_up()
        with pytest.raises(errors.AgentStopped):
            await waiting
        await asyncio.sleep(0)
        assert not client.running
        assert events[-1] == {"event": "stopped"}
        with pytest.raises(errors.AgentStopped):
            await client.request("ping")
        await client.close()
    asyncio.run(run())


def test_an_answer_that_never_comes_times_out() -> None:
    async def run() -> None:
        channel = FakeChannel()
        client = await started(channel)
        with pytest.raises(errors.RemoteFailure) as late:
            await client.request("browse", {"path": "/"}, timeout=0.05)
        assert late.value.message == "The agent did not answer 'browse' in time."
        await client.close()
    asyncio.run(run())
