"""The agent over plain pipes: marker and hello, ids, concurrency, detached jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from server.remote import bundle
from tests.fixtures import probe, solid_frames

JOB_A = "a" * 32
JOB_B = "b" * 32


class Agent:
    def __init__(self, work: Path, login_script: str = "") -> None:
        archive = bundle.build().write_to(str(work.parent / "agent-bin"))
        self.nonce = os.urandom(4).hex()
        argv = [sys.executable, archive, "serve", "--nonce", self.nonce]
        if login_script:  # as sshd would: the user's shell runs the command line
            argv = ["sh", "-c", f"{login_script}; exec " + " ".join(argv)]
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "FRAMEWIRE_WORK_DIR": str(work)})
        self.junk: list[bytes] = []
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            assert line, self.process.stderr.read() if self.process.stderr else "no output"
            if line == f"FRAMEWIRE-AGENT {self.nonce}\n".encode():
                break
            self.junk.append(line)
        self.hello = json.loads(self.process.stdout.readline())["hello"]
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def send(self, command: str, **args: Any) -> int:
        self._next += 1
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": self._next, "cmd": command,
                                             "args": args}).encode() + b"\n")
        self.process.stdin.flush()
        return self._next

    def receive(self) -> dict[str, Any]:
        """The next response (events are collected on the side)."""
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            assert line, "agent closed stdout"
            message = json.loads(line)
            if "event" in message:
                self.events.append(message)
                continue
            return message

    def call(self, command: str, **args: Any) -> dict[str, Any]:
        request_id = self.send(command, **args)
        message = self.receive()
        assert message["id"] == request_id
        return message

    def wait_job(self, job: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.call("video-status", job=job)["result"]
            if status["status"] in ("succeeded", "failed", "canceled"):
                return status
            time.sleep(0.1)
        raise AssertionError("job did not finish")

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def agent(work: Path) -> Iterator[Agent]:
    running = Agent(work)
    yield running
    running.stop()


def test_login_junk_before_the_marker_is_skipped(work: Path) -> None:
    noisy = Agent(work, login_script="echo 'Welcome!'; echo 'Last login: never'")
    try:
        assert noisy.junk == [b"Welcome!\n", b"Last login: never\n"]
        assert noisy.call("ping")["result"] == {"pong": True}
    finally:
        noisy.stop()


def test_hello_describes_the_agent(agent: Agent, work: Path) -> None:
    hello = agent.hello
    assert hello["protocol"] == 1
    assert hello["python"] == ".".join(map(str, sys.version_info[:3]))
    assert hello["work_dir"] == str(work)
    assert hello["ffmpeg"]["path"] and hello["ffmpeg"]["version"]
    assert {"h264", "vp9"} <= set(hello["capabilities"]["encoders"])
    assert {"browse", "stat", "read-image", "thumbnails", "create-video", "video-status",
            "cancel-video", "delete-video"} <= set(hello["capabilities"]["commands"])


def test_errors_carry_codes(agent: Agent) -> None:
    unknown = agent.call("frobnicate")
    assert unknown["ok"] is False and unknown["error"]["code"] == "unknown-command"
    relative = agent.call("stat", path="relative")
    assert relative["error"]["code"] == "bad-request"
    assert agent.call("stat", path="/nonexistent/x")["error"]["code"] == "not-found"
    assert agent.call("video-status", job=JOB_A)["error"]["code"] == "unknown-job"
    assert agent.call("video-status", job="../../etc")["error"]["code"] == "bad-request"


def test_several_requests_in_flight_answer_out_of_order(agent: Agent, tmp_path: Path) -> None:
    frames = tmp_path / "many"
    frames.mkdir()
    source = solid_frames(frames, [(1, 2, 3)])[0]
    many = []
    for index in range(4000):
        link = frames / f"l{index}.png"
        os.symlink(source, link)
        many.append(str(link))
    slow = agent.send("create-video", job=JOB_A, images=many, **{"content-type": "video/mp4"})
    fast = agent.send("ping")
    first, second = agent.receive(), agent.receive()
    assert [first["id"], second["id"]] == [fast, slow]
    assert second["ok"] is True and second["result"]["frames_total"] == 4000
    agent.call("cancel-video", job=JOB_A)


def slow_job(agent: Agent, images: Path, job: str, frames: int = 150) -> None:
    colours = [(i % 256, (i * 3) % 256, (i * 7) % 256) for i in range(frames)]
    paths = solid_frames(images, colours, size=(960, 540))
    answer = agent.call("create-video", job=job, images=paths,
                        **{"content-type": "video/webm"})
    assert answer["ok"], answer


def test_cancel_stops_ffmpeg_and_removes_partial_files(agent: Agent, work: Path,
                                                       tmp_path: Path) -> None:
    slow_job(agent, tmp_path, JOB_A)
    deadline = time.monotonic() + 30
    while agent.call("video-status", job=JOB_A)["result"]["phase"] != "encoding":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = agent.call("cancel-video", job=JOB_A)["result"]
    assert status["status"] == "canceled"
    assert status["message"] == "Canceled."
    job_dir = work / "jobs" / JOB_A
    assert sorted(p.name for p in job_dir.iterdir()) == [
        "ffmpeg.log", "runner.log", "spec.json", "status.json"]
    deadline = time.monotonic() + 5
    while alive(status["pid"]):  # the runner exits right after writing its status
        assert time.monotonic() < deadline, "the runner outlived its cancel"
        time.sleep(0.05)
    deleted = agent.call("delete-video", job=JOB_A)["result"]
    assert deleted == {"job": JOB_A, "deleted": True}
    assert not job_dir.exists()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_jobs_survive_the_agent_and_are_found_again(work: Path, tmp_path: Path) -> None:
    first = Agent(work)
    slow_job(first, tmp_path, JOB_B, frames=60)
    first.process.send_signal(signal.SIGKILL)  # as a dropped SSH link would
    first.process.wait()
    first.stop()
    second = Agent(work)
    try:
        status = second.wait_job(JOB_B)
        assert status["status"] == "succeeded", status
        assert status["frames_done"] == 60
        info = probe(status["output"]["path"])
        assert info["frames"] == 60 and info["codec"] == "vp9"
        assert not (work / "jobs" / JOB_B / "frames").exists()
    finally:
        second.stop()


def test_a_vanished_runner_fails_the_job(agent: Agent, work: Path, tmp_path: Path) -> None:
    slow_job(agent, tmp_path, JOB_A)
    status = agent.call("video-status", job=JOB_A)["result"]
    os.killpg(status["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(status["pid"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    final = agent.wait_job(JOB_A)
    assert final["status"] == "failed"
    assert final["message"] == "The encoder process ended unexpectedly."


def test_progress_events_are_pushed(agent: Agent, tmp_path: Path) -> None:
    slow_job(agent, tmp_path, JOB_A, frames=40)
    final = agent.wait_job(JOB_A)
    assert final["status"] == "succeeded"
    deadline = time.monotonic() + 5
    while not any(e["data"]["status"] == "succeeded" for e in agent.events):
        assert time.monotonic() < deadline, agent.events
        agent.call("ping")
        time.sleep(0.1)
    states = [e["data"]["status"] for e in agent.events if e["data"]["id"] == JOB_A]
    assert states[-1] == "succeeded"
    assert all(0 <= e["data"]["progress"] <= 100 for e in agent.events)


def test_cancel_right_after_create_is_canceled(agent: Agent, tmp_path: Path) -> None:
    """Even when SIGTERM lands before the runner installed its handlers."""
    slow_job(agent, tmp_path, JOB_A, frames=5)
    status = agent.call("cancel-video", job=JOB_A)["result"]
    assert status["status"] in ("canceled", "succeeded"), status
    if status["status"] == "canceled":
        assert status["message"] == "Canceled."


def test_unreleased_conversions_are_removed_when_the_server_hangs_up(
        agent: Agent, work: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    source = Path(solid_frames(frames, [(10, 200, 10)], size=(80, 60))[0])
    kept = agent.call("read-image", path=str(source), **{"max-width": 40})["result"]
    released = agent.call("read-image", path=str(source), **{"content-type": "image/jpeg"})
    assert kept["temporary"] is True and (kept["width"], kept["height"]) == (40, 30)
    temporary = Path(released["result"]["path"])
    assert temporary.exists() and Path(kept["path"]).exists()
    assert agent.call("release", path=str(temporary))["result"] == {"released": True}
    assert not temporary.exists()
    outside = agent.call("release", path=str(source))
    assert outside["error"]["code"] == "bad-request"
    agent.stop()  # stdin closes as when the SSH channel drops mid-request
    assert not Path(kept["path"]).exists()
    assert source.exists()
    assert list((work / "tmp").iterdir()) == []
