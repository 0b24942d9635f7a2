"""The job store over the local executor: real runner, real ffmpeg, no SSH."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest
from PIL import Image

from agent import __main__ as entry
from agent import executors, jobdir, protocol
from agent.jobs import JobStore

JOB_A, JOB_B, JOB_C = "a" * 32, "b" * 32, "c" * 32
Status = dict[str, Any]


def local_store(work: Path, ffmpeg_info: dict[str, Any]) -> JobStore:
    """A store as a fresh agent makes one: its own executor, nothing in memory."""
    return JobStore(str(work), {"local": executors.LocalExecutor(
        entry.self_argv() + ["run-job"])}, ffmpeg_info)


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "work"
    yield path
    for job in (path / "jobs").glob("*"):  # leave no runner behind
        try:
            pid = jobdir.read_status(str(job)).get("pid")
        except protocol.AgentError:
            continue
        executors.signal_group(pid, signal.SIGKILL)


def pngs(directory: Path, count: int, size: tuple[int, int] = (32, 24)) -> list[str]:
    directory.mkdir(exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"f{index}.png"
        Image.new("RGB", size, (80 * index % 256, 120, 40)).save(path)
        paths.append(str(path))
    return paths


def slow_request(tmp_path: Path) -> dict[str, Any]:
    """Thousands of mid-sized frames: encoding takes long enough to be caught at it."""
    return {"content-type": "video/webm", "images": pngs(tmp_path / "slow", 3, (640, 360)),
            "durations": [120, 120, 120], "speed": 0}


def wait_for(look: Callable[[], Status], done: Callable[[Status], bool],
             timeout: float = 30) -> Status:
    deadline = time.monotonic() + timeout
    while True:
        status = look()
        if done(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def final(status: Status) -> bool:
    return status["status"] in protocol.FINAL_STATES


def test_a_submitted_job_runs_to_its_outputs(work: Path, tmp_path: Path,
                                             ffmpeg_info: dict[str, Any]) -> None:
    store = local_store(work, ffmpeg_info)
    created = store.create({"job": JOB_A, "images": pngs(tmp_path / "in", 3),
                            "content-type": "video/mp4", "poster": True})
    assert created["id"] == JOB_A and created["status"] in protocol.JOB_STATES
    assert created["pid"]  # the executor recorded the runner before answering
    status = wait_for(lambda: store.status({"job": JOB_A}), final)
    assert (status["status"], status["message"], status["frames_done"]) == (
        protocol.SUCCEEDED, "Video ready.", 3)
    job_dir = work / "jobs" / JOB_A
    assert [(o["name"], o["path"]) for o in status["outputs"]] == [
        ("video", str(job_dir / "video.mp4")), ("poster", str(job_dir / "poster.jpg"))]
    assert all(os.path.getsize(o["path"]) > 0 for o in status["outputs"])
    assert sorted(p.name for p in job_dir.iterdir()) == [
        "ffmpeg.log", "poster.jpg", "runner.log", "spec.json", "status.json", "video.mp4"]


def test_cancel_stops_the_work_quickly_and_leaves_no_partial_output(
        work: Path, tmp_path: Path, ffmpeg_info: dict[str, Any]) -> None:
    store = local_store(work, ffmpeg_info)
    store.create(dict(slow_request(tmp_path), job=JOB_A))
    running = wait_for(lambda: store.status({"job": JOB_A}),
                       lambda status: status["phase"] == "encoding" or final(status))
    assert running["status"] == protocol.RUNNING
    start = time.monotonic()
    canceled = store.cancel({"job": JOB_A})
    assert time.monotonic() - start < executors.CANCEL_WAIT
    assert (canceled["status"], canceled["message"]) == (protocol.CANCELED, "Canceled.")
    assert "runner_max_rss_kb" in canceled  # the runner wrote it, not the agent
    wait_for(lambda: {"alive": executors.alive(running["pid"])}, lambda s: not s["alive"], 5)
    assert sorted(p.name for p in (work / "jobs" / JOB_A).iterdir()) == [
        "ffmpeg.log", "runner.log", "spec.json", "status.json"]
    assert store.cancel({"job": JOB_A}) == canceled  # a final job is left as it is


def test_a_later_agent_finds_jobs_an_earlier_one_started(
        work: Path, tmp_path: Path, ffmpeg_info: dict[str, Any]) -> None:
    first = local_store(work, ffmpeg_info)
    first.create({"job": JOB_A, "images": pngs(tmp_path / "in", 3),
                  "content-type": "video/mp4"})
    first.create(dict(slow_request(tmp_path), job=JOB_B))
    wait_for(lambda: first.status({"job": JOB_B}), lambda status: status["pid"] is not None)
    second = local_store(work, ffmpeg_info)  # as after a dropped link or a restart
    assert wait_for(lambda: second.status({"job": JOB_A}), final)["status"] == \
        protocol.SUCCEEDED
    assert second.status({"job": JOB_B})["status"] in (protocol.QUEUED, protocol.RUNNING)
    canceled = second.cancel({"job": JOB_B})
    assert canceled["status"] == protocol.CANCELED
    with pytest.raises(protocol.AgentError) as error:
        second.status({"job": JOB_C})
    assert (error.value.code, error.value.message) == (protocol.UNKNOWN_JOB,
                                                       "Unknown video job.")


def test_work_that_vanished_ends_the_job(work: Path, tmp_path: Path,
                                         ffmpeg_info: dict[str, Any]) -> None:
    first = local_store(work, ffmpeg_info)
    first.create(dict(slow_request(tmp_path), job=JOB_A))
    pid = wait_for(lambda: first.status({"job": JOB_A}),
                   lambda status: status["status"] == protocol.RUNNING)["pid"]
    os.killpg(pid, signal.SIGKILL)
    wait_for(lambda: {"alive": executors.alive(pid)}, lambda s: not s["alive"], 5)
    status = local_store(work, ffmpeg_info).status({"job": JOB_A})
    assert (status["status"], status["message"]) == (
        protocol.FAILED, "The encoder process ended unexpectedly.")
    assert not (work / "jobs" / JOB_A / "frames").exists()


class CountingExecutor(executors.LocalExecutor):
    def __init__(self) -> None:
        super().__init__(entry.self_argv() + ["run-job"])
        self.looks: list[list[str]] = []

    def poll_all(self, jobs: Sequence[tuple[str, Status]]) -> dict[str, Status]:
        self.looks.append([os.path.basename(job_dir) for job_dir, _ in jobs])
        return super().poll_all(jobs)


def test_many_jobs_are_polled_in_one_look(work: Path, tmp_path: Path,
                                          ffmpeg_info: dict[str, Any]) -> None:
    executor = CountingExecutor()
    store = JobStore(str(work), {"local": executor}, ffmpeg_info)
    images = pngs(tmp_path / "in", 2)
    for job in (JOB_A, JOB_B):
        store.create({"job": job, "images": images, "content-type": "video/mp4"})
    executor.looks.clear()
    statuses = store.statuses([JOB_A, JOB_B, JOB_C])
    assert sorted(statuses) == [JOB_A, JOB_B]  # the unknown one is left out
    assert executor.looks == [[JOB_A, JOB_B]]
    for job in (JOB_A, JOB_B):
        wait_for(lambda job=job: store.status({"job": job}), final)


def test_a_batch_jobs_runner_stopped_by_its_scheduler_leaves_the_end_to_it(
        work: Path, tmp_path: Path, ffmpeg_info: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Slurm job's runner signalled without a cancel framewire asked for (a time
    limit, a preemption, somebody's scancel) does not call the job canceled: it
    leaves it unfinished, phase "stopped", for the executor to end in Slurm's words.
    Asked for, the same signal ends it canceled.  (The runner started here as a
    local process: what is tested is the runner's reading of the signal.)"""
    from agent import jobs

    monkeypatch.setattr(jobs, "NODE_LOCAL", ())  # tmp_path stands for a shared directory
    runner = entry.self_argv() + ["run-job"]
    store = JobStore(str(work), {"local": executors.LocalExecutor(runner),
                                 "slurm": executors.LocalExecutor(runner)}, ffmpeg_info)
    for job, asked in ((JOB_A, False), (JOB_B, True)):
        store.create(dict(slow_request(tmp_path), job=job, executor={"kind": "slurm"}))
        job_dir = str(work / "jobs" / job)
        pid = wait_for(lambda where=job_dir: jobdir.read_status(where),
                       lambda status: status["phase"] == "encoding")["pid"]
        if asked:
            jobdir.mark_cancel(job_dir)
        os.killpg(pid, signal.SIGTERM)
        wait_for(lambda runner=pid: {"alive": executors.alive(runner)},
                 lambda s: not s["alive"], 10)
        status = jobdir.read_status(job_dir)
        if asked:
            assert (status["status"], status["message"]) == (protocol.CANCELED, "Canceled.")
        else:
            assert (status["status"], status["phase"], status["message"]) == (
                protocol.RUNNING, "stopped",
                "Stopped by the scheduler (signal 15); waiting for it to say why.")
            assert status["pid"] is None and status["executor"] == "slurm"
        assert not list((work / "jobs" / job).glob("partial.*"))
