"""The Slurm executor against a real Slurm (two slurmd "nodes" on this host) over the
real sshd: discovery, queue states in words, cancel, the faults a cluster has, and
an honest end for a job Slurm stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from server.config import HostConfig
from tests.fixtures import SSHD, LiveServer, probe, solid_frames
from tests.hosts import HostileSSHD

FINAL = ("succeeded", "failed", "canceled", "expired")


@pytest.fixture
def cluster(make_server: Callable[..., LiveServer], sshd: SSHD, slurm: str) -> LiveServer:
    """A server that logs in to the test sshd with its key (the login node)."""
    return make_server(ssh={"known_hosts": str(sshd.known_hosts),
                            "client_keys": [str(sshd.client_key)]})


def login(server: LiveServer, sshd: SSHD) -> str:
    response = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                             "username": sshd.user})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return str(response.json()["sid"])


def submit(server: LiveServer, sid: str, paths: list[str], **extra: Any) -> str:
    body = {"content-type": "video/mp4", "images": paths, "executor": "slurm", **extra}
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 202, (response.headers.get("X-Slycat-Message"),
                                         response.headers.get("X-Slycat-Hint"))
    return str(response.json()["sid"])


def status(server: LiveServer, sid: str, vsid: str) -> dict[str, Any]:
    response = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status")
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return dict(response.json())


def until(server: LiveServer, sid: str, vsid: str, check: Callable[[dict[str, Any]], bool],
          timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = status(server, sid, vsid)
        if check(current):
            return current
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {current}"
        time.sleep(0.2)


def active(job_id: str) -> list[str]:
    """Slurm's job ``job_id`` while it is pending or running (squeue's default states)."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i|%T"], capture_output=True,
                         text=True, check=False).stdout
    return [line for line in out.splitlines() if line.strip()]


def frames(images: Path, count: int = 20) -> list[str]:
    return solid_frames(images, [(10 * i % 255, 60, 200) for i in range(count)],
                        size=(96, 64))


def noise_frames(images: Path, count: int) -> list[str]:
    """Random pixels: slow to encode, so a job stays running through what a test does."""
    from PIL import Image

    paths = []
    for index in range(count):
        path = images / f"noise{index:04d}.png"
        Image.frombytes("RGB", (640, 360), os.urandom(640 * 360 * 3)).save(path,
                                                                           compress_level=1)
        os.chmod(path, 0o644)
        paths.append(str(path))
    return paths


def test_the_hello_says_what_slurm_offers(cluster: LiveServer, sshd: SSHD,
                                          slurm: str) -> None:
    info = cluster.request("GET", f"/remotes/{login(cluster, sshd)}").json()["agent"]["slurm"]
    assert info["version"] == slurm
    partitions = {item["name"]: item for item in info["partitions"]}
    assert info["default_partition"] == "debug" and partitions["debug"]["default"]
    assert (partitions["debug"]["max_time"], partitions["short"]["max_time"]) == (None, 1800)
    assert partitions["short"]["max_time_text"] == "00:30:00"
    assert partitions["debug"]["nodes"] == 2


def test_a_job_waits_in_the_queue_then_runs_on_a_node_and_succeeds(
        cluster: LiveServer, sshd: SSHD, images: Path, tmp_path: Path) -> None:
    sid = login(cluster, sshd)
    # Enough work that "running" lasts a few seconds: the stream shows each state.
    paths = solid_frames(images, [(i, 2 * i % 255, 90) for i in range(120)], size=(640, 360),
                         names=[f"q{i:03d}.png" for i in range(120)])
    vsid = submit(cluster, sid, paths, preset="veryslow")
    with cluster.request("GET", f"/remotes/{sid}/videos/{vsid}/events", stream=True,
                         headers={"Accept": "application/x-ndjson"}, timeout=180) as stream:
        seen = [json.loads(line)["data"] for line in stream.iter_lines()]
    final = seen[-1]
    assert final["status"] == "succeeded", final["message"]
    assert final["executor"] == "slurm"
    queued = [item for item in seen if item["status"] == "queued"]
    assert queued and queued[0]["scheduler"] and queued[0]["scheduler"]["job_ids"]
    job_id = queued[0]["scheduler"]["job_ids"][0]
    assert job_id.isdigit()
    first_running = next(index for index, item in enumerate(seen)
                         if item["status"] == "running")
    assert seen.index(queued[0]) < first_running, "queued with a Slurm job id before running"
    assert final["scheduler"]["job_ids"] == [job_id]
    assert final["scheduler"]["nodes"] and final["scheduler"]["nodes"][0] in ("n1", "n2")
    video = cluster.request("GET", f"/remotes/{sid}/videos/{vsid}")
    (tmp_path / "slurm.mp4").write_bytes(video.content)
    info = probe(tmp_path / "slurm.mp4")
    assert (info["codec"], info["width"], info["height"], info["frames"]) == (
        "h264", 640, 360, 120)
    assert info["duration"] == pytest.approx(120 / 25, abs=0.02)
    assert active(job_id) == []


def test_drained_nodes_queue_it_in_words_and_resuming_runs_it(
        cluster: LiveServer, sshd: SSHD, images: Path,
        drained: Callable[[], None]) -> None:
    sid = login(cluster, sshd)
    vsid = submit(cluster, sid, frames(images))
    waiting = until(cluster, sid, vsid, lambda s: (s["scheduler"] or {}).get("reason")
                    not in (None, "None"))
    assert waiting["status"] == "queued" and waiting["phase"] == "waiting in queue"
    scheduler = waiting["scheduler"]
    assert scheduler["partition"] == "debug" and scheduler["job_ids"][0].isdigit()
    assert scheduler["reason"] == "ReqNodeNotAvail"  # Slurm: "ReqNodeNotAvail, Unavail…"
    assert scheduler["reason_text"] == ("the nodes it needs are not available (down or "
                                        "drained): n[1-2]")
    assert waiting["message"] == f"Waiting in the Slurm queue: {scheduler['reason_text']}."
    assert isinstance(scheduler["waited_seconds"], int)
    drained()
    final = until(cluster, sid, vsid, lambda s: s["status"] in FINAL)
    assert final["status"] == "succeeded", final["message"]


def test_cancel_while_queued_never_runs_and_cancel_while_running_stops_at_once(
        cluster: LiveServer, sshd: SSHD, images: Path,
        drained: Callable[[], None]) -> None:
    sid = login(cluster, sshd)
    queued = submit(cluster, sid, frames(images))
    job_id = until(cluster, sid, queued, lambda s: bool(s["scheduler"]))["scheduler"][
        "job_ids"][0]
    canceled = cluster.post_json(f"/remotes/{sid}/videos/{queued}/cancel", {}).json()
    assert canceled["status"] == "canceled"
    assert canceled["events"]["started"] is None, "it never ran"
    assert active(job_id) == []
    drained()  # the nodes come back: the canceled job must not start now
    time.sleep(3)
    assert status(cluster, sid, queued)["status"] == "canceled"
    assert active(job_id) == []

    slow = solid_frames(images, [(i, 90, 90) for i in range(200)], size=(640, 360),
                        names=[f"slow{i:04d}.png" for i in range(200)])
    running = submit(cluster, sid, slow, preset="veryslow")
    now = until(cluster, sid, running, lambda s: s["status"] == "running"
                and s["frames_done"] > 0)
    job_id = now["scheduler"]["job_ids"][0]
    started = time.monotonic()
    answer = cluster.post_json(f"/remotes/{sid}/videos/{running}/cancel", {}).json()
    final = answer if answer["status"] in FINAL else until(
        cluster, sid, running, lambda s: s["status"] in FINAL, timeout=30)
    assert final["status"] == "canceled", (final["message"], final.get("stderr"))
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 20
    while active(job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert active(job_id) == [], "no Slurm job left"


def test_a_requeued_job_waits_again_and_runs_to_every_frame(
        cluster: LiveServer, sshd: SSHD, images: Path, tmp_path: Path) -> None:
    sid = login(cluster, sshd)
    vsid = submit(cluster, sid, noise_frames(images, 120))
    running = until(cluster, sid, vsid, lambda s: s["status"] == "running"
                    and s["frames_done"] > 0)
    job_id = running["scheduler"]["job_ids"][0]
    subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
    again = until(cluster, sid, vsid, lambda s: s["status"] == "queued")
    assert again["message"].startswith("Requeued by Slurm; waiting in the queue again: ")
    assert again["phase"] == "waiting in queue" and again["ok"] is True
    # Slurm holds a requeued job for two minutes (BeginTime); let it go now.
    waiting = until(cluster, sid, vsid, lambda s: (s["scheduler"] or {}).get("reason")
                    == "BeginTime")
    assert waiting["scheduler"]["reason_text"] == "waiting for its start time"
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True,
                   capture_output=True)
    final = until(cluster, sid, vsid, lambda s: s["status"] in FINAL, timeout=180)
    assert final["status"] == "succeeded", final["message"]
    assert final["scheduler"]["job_ids"] == [job_id]
    (tmp_path / "requeued.mp4").write_bytes(
        cluster.request("GET", f"/remotes/{sid}/videos/{vsid}").content)
    assert probe(tmp_path / "requeued.mp4")["frames"] == 120


def agent_pid(server: LiveServer, sid: str) -> int:
    return int(server.request("GET", f"/remotes/{sid}").json()["agent"]["pid"])


def test_the_job_survives_a_killed_agent_a_server_restart_and_a_killed_slurmd(
        make_server: Callable[..., LiveServer], sshd: SSHD, images: Path,
        drained: Callable[[], None], tmp_path: Path) -> None:
    keys = {"known_hosts": str(sshd.known_hosts), "client_keys": [str(sshd.client_key)]}
    server = make_server(ssh=keys)
    sid = login(server, sshd)
    paths = noise_frames(images, 300)  # about 17 s of encoding on two cores
    vsid = submit(server, sid, paths)
    until(server, sid, vsid, lambda s: bool(s["scheduler"]))
    # The agent killed while the job waits in the queue: a new session finds it.
    os.kill(agent_pid(server, sid), signal.SIGKILL)
    sid = login(server, sshd)
    assert status(server, sid, vsid)["status"] == "queued"
    drained()
    until(server, sid, vsid, lambda s: s["status"] == "running")
    # ... and again while it runs.
    os.kill(agent_pid(server, sid), signal.SIGKILL)
    sid = login(server, sshd)
    assert status(server, sid, vsid)["status"] == "running"
    # The server restarted: the job store knows the job, a new session reaches it.
    data_dir = server.config.server.data_dir
    server.stop()
    server = make_server(ssh=keys, server={"data_dir": data_dir})
    sid = login(server, sshd)
    node = until(server, sid, vsid, lambda s: bool((s["scheduler"] or {}).get("nodes")))[
        "scheduler"]["nodes"][0]
    # slurmd killed and started again under the running job: the job goes on.
    assert status(server, sid, vsid)["status"] == "running"
    pid_file = Path(f"/run/slurmd-{node}.pid")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    time.sleep(1)
    subprocess.run(["slurmd", "-N", node], check=True, capture_output=True)
    final = until(server, sid, vsid, lambda s: s["status"] in FINAL, timeout=300)
    assert final["status"] == "succeeded", final["message"]
    video = server.request("GET", f"/remotes/{sid}/videos/{vsid}")
    (tmp_path / "survived.mp4").write_bytes(video.content)
    assert probe(tmp_path / "survived.mp4")["frames"] == 300
    assert final["events"]["started"] is not None and final["frames_done"] == 300


def test_a_job_over_its_time_limit_fails_with_slurms_words(
        cluster: LiveServer, sshd: SSHD, images: Path) -> None:
    """Slurm's shortest limit is a minute, checked about every 30 s: the batch job's
    own set-up (batch_setup) sleeps past it, idle, rather than encoding for that long."""
    cluster.config.hosts["127.0.0.1"] = HostConfig(batch_setup=[["sleep", "300"]])
    sid = login(cluster, sshd)
    vsid = submit(cluster, sid, frames(images, 3), slurm={"time": "1"})
    running = until(cluster, sid, vsid, lambda s: s["phase"] == "starting")
    assert running["scheduler"]["time_limit"] == "1:00"
    final = until(cluster, sid, vsid, lambda s: s["status"] in FINAL, timeout=200)
    assert final["status"] == "failed"
    assert final["message"] == ("Slurm stopped it at its time limit of 00:01:00; ask for a "
                                "longer time (slurm.time), or fewer frames per video.")
    assert final["scheduler"]["state"] == "TIMEOUT"
    assert "DUE TO TIME LIMIT" in final["stderr"]  # slurmstepd's line, from the job's log
    assert active(final["scheduler"]["job_ids"][0]) == []


def test_what_slurm_cannot_do_is_a_400_naming_the_fix(
        cluster: LiveServer, sshd: SSHD, images: Path, tmp_path: Path) -> None:
    sid = login(cluster, sshd)
    paths = frames(images, 3)
    unknown = cluster.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": paths, "executor": "slurm",
        "slurm": {"partition": "gpu"}})
    assert unknown.status_code == 400
    assert unknown.headers["X-Slycat-Message"] == "Unknown partition 'gpu' on 127.0.0.1."
    assert unknown.headers["X-Slycat-Hint"] == "Partitions you may use there: debug, short."
    assert unknown.json()["errors"][0]["source"]["pointer"] == "/slurm/partition"
    too_long = cluster.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": paths, "executor": "slurm",
        "slurm": {"partition": "short", "time": "2:00:00"}})
    assert too_long.status_code == 400
    assert "over the partition short's limit of 00:30:00" in too_long.headers[
        "X-Slycat-Message"]
    free_form = cluster.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": paths, "executor": "slurm",
        "slurm": {"partition": "debug", "options": ["--wrap=rm -rf ~"]}})
    assert free_form.status_code == 400
    assert free_form.headers["X-Slycat-Message"].startswith(
        "Unknown option 'slurm.options'; allowed here: partition, time, cpus, mem")
    # A node-local work directory: compute nodes cannot see the job's files.
    cluster.config.hosts["127.0.0.1"] = HostConfig(work_dir="/tmp/framewire-slurm-test")
    local_dir = login(cluster, sshd)
    refused = cluster.post_json(f"/remotes/{local_dir}/videos", {
        "content-type": "video/mp4", "images": paths, "executor": "slurm"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "node-local-work-dir"
    assert refused.headers["X-Slycat-Message"] == (
        "The agent's work directory /tmp/framewire-slurm-test is on this node's own disk: "
        "Slurm's compute nodes cannot see the job's files.")
    assert "Set work_dir in this host's profile" in refused.headers["X-Slycat-Hint"]


def test_a_host_without_slurm_says_so(make_server: Callable[..., LiveServer],
                                      no_slurm: HostileSSHD, images: Path) -> None:
    server = make_server(ssh={"known_hosts": str(no_slurm.known_hosts)})
    account = no_slurm.accounts["fwnoslurm"]
    sid = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": no_slurm.port,
                                        "username": account.name,
                                        "password": account.password}).json()["sid"]
    assert server.request("GET", f"/remotes/{sid}").json()["agent"]["slurm"] is None
    refused = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": frames(images, 2), "executor": "slurm"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "no-slurm"
    assert refused.headers["X-Slycat-Message"].startswith("127.0.0.1 has no Slurm: ")
    assert "module" in refused.headers["X-Slycat-Hint"]


def doctor(port: int, user: str, known_hosts: Path, tmp_path: Path, profile: str,
           password: str | None = None,
           key: Path | None = None) -> subprocess.CompletedProcess[str]:
    import shutil
    import sys

    keys = f'client_keys = ["{key}"]\n' if key else ""
    config = tmp_path / "doctor.toml"
    config.write_text(f'[ssh]\nknown_hosts = "{known_hosts}"\nssh_config = ""\n{keys}'
                      f'[server]\ndata_dir = "{tmp_path / "state"}"\n'
                      f'[hosts."127.0.0.1"]\n{profile}\n')
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    login = ["--password-stdin"] if password else ["--no-password"]
    return subprocess.run([*argv, "doctor", f"{user}@127.0.0.1:{port}", "--config",
                           str(config), *login], input=(password or "") + "\n",
                          capture_output=True, text=True, timeout=120, check=False)


def test_doctor_prints_what_slurm_offers(sshd: SSHD, no_slurm: HostileSSHD, slurm: str,
                                         tmp_path: Path) -> None:
    found = doctor(sshd.port, sshd.user, sshd.known_hosts, tmp_path, 'executor = "slurm"',
                   key=sshd.client_key)
    assert found.returncode == 0, found.stdout + found.stderr
    assert (f"  [ok  ] Slurm {slurm}: partitions debug (default, no time limit), short (up "
            "to 00:30:00); no sacct (accounting off); jobs run on compute nodes"
            ) in found.stdout.splitlines()
    assert found.stdout.splitlines()[-1] == "ready for videos"
    account = no_slurm.accounts["fwnoslurm"]
    missing = doctor(no_slurm.port, account.name, no_slurm.known_hosts, tmp_path,
                     'executor = "slurm"', password=account.password)
    assert missing.returncode == 1, missing.stdout
    assert ("  [FAIL] no Slurm: sbatch, squeue, scontrol, scancel and sinfo are not all on "
            "the PATH, and this host's profile says executor = \"slurm\"") in missing.stdout
    assert missing.stdout.splitlines()[-1] == "not ready: see FAIL above"
    plain = doctor(no_slurm.port, account.name, no_slurm.known_hosts, tmp_path, "",
                   password=account.password)
    assert plain.returncode == 0, plain.stdout
    assert "  [note] no Slurm here: videos are made on this host" in plain.stdout
