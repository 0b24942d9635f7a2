"""Jobs that survive: progress streams, long-polls, cut links, restarts, cancel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from PIL import Image

from tests.fixtures import SSHD, LiveServer, connect, free_port, make_config, probe, solid_frames
from tests.webhook_receiver import Receiver


def colours(count: int) -> list[tuple[int, int, int]]:
    return [(i * 5 % 256, (i * 11) % 256, (i * 17) % 256) for i in range(count)]


def start_job(server: LiveServer, sid: str, paths: list[str], **options: Any) -> str:
    response = server.post_json(f"/remotes/{sid}/videos",
                                {"content-type": "video/webm", "images": paths, **options})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    return response.json()["sid"]


@pytest.fixture
def slow_frames(images: Path) -> list[str]:
    """Enough 640x480 VP9 work to take a few seconds on two cores."""
    return solid_frames(images, colours(90), size=(640, 480))


@pytest.fixture
def long_frames(images: Path) -> list[str]:
    """Noise, which VP9 cannot shortcut: several seconds of work on any machine."""
    paths = []
    for index in range(120):
        path = images / f"noise{index:03d}.png"
        Image.frombytes("RGB", (480, 360), os.urandom(480 * 360 * 3)).save(
            path, compress_level=1)
        paths.append(str(path))
    return paths


def sse_events(response: requests.Response) -> Iterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if "data" in event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            key, _, value = line.partition(": ")
            event[key] = int(value) if key == "id" else json.loads(value) \
                if key == "data" else value


def test_sse_stream_in_order_ending_with_the_final_status(server: LiveServer, remote: str,
                                                         slow_frames: list[str]) -> None:
    vsid = start_job(server, remote, slow_frames)
    with server.request("GET", f"/remotes/{remote}/videos/{vsid}/events",
                        stream=True, timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = list(sse_events(response))
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["event"] == "status" for e in events)
    states = [e["data"]["status"] for e in events]
    assert states[0] == "queued" and states[-1] == "succeeded"
    assert states.index("running") < states.index("succeeded")
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    final = events[-1]["data"]
    assert final["ready"] is True and final["frames_done"] == 90
    assert final["outputs"][0]["url"] == f"/remotes/{remote}/videos/{vsid}/outputs/video"
    # Throttled: at most two progress events a second, plus the state changes.
    seconds = max(1.0, len(events) / 2)
    assert len(events) <= 2 * seconds + 6


def test_ndjson_stream_and_resume_from_last_event_id(server: LiveServer, remote: str,
                                                    slow_frames: list[str]) -> None:
    vsid = start_job(server, remote, slow_frames)
    url = f"/remotes/{remote}/videos/{vsid}/events"
    first: list[dict[str, Any]] = []
    with server.request("GET", url, stream=True, timeout=300,
                        headers={"Accept": "application/x-ndjson"}) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        for line in response.iter_lines():
            first.append(json.loads(line))
            if len(first) == 2:
                break  # the client goes away mid-stream
    rest: list[dict[str, Any]] = []
    with server.request("GET", url, stream=True, timeout=300,
                        headers={"Accept": "application/x-ndjson",
                                 "Last-Event-ID": str(first[-1]["id"])}) as response:
        rest = [json.loads(line) for line in response.iter_lines()]
    ids = [event["id"] for event in first + rest]
    assert ids == list(range(1, len(ids) + 1)), "events were lost or repeated on resume"
    assert rest[-1]["data"]["status"] == "succeeded"
    with server.request("GET", url, stream=True, timeout=60,
                        headers={"Accept": "application/x-ndjson"}) as response:
        replay = [json.loads(line) for line in response.iter_lines()]
    assert [event["id"] for event in replay] == ids
    assert [e["data"]["status"] for e in replay] == [e["data"]["status"] for e in first + rest]


def test_long_poll_returns_when_the_job_ends(server: LiveServer, remote: str,
                                             slow_frames: list[str]) -> None:
    vsid = start_job(server, remote, slow_frames)
    started = time.monotonic()
    response = server.request("GET", f"/remotes/{remote}/videos/{vsid}/status",
                              params={"block": "true", "timeout": "120"})
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert time.monotonic() - started < 120
    quick = server.request("GET", f"/remotes/{remote}/videos/{vsid}/status",
                           params={"block": "true", "timeout": "soon"})
    assert quick.status_code == 400
    assert quick.headers["X-Slycat-Message"] == "timeout must be a number of seconds, got 'soon'."


def test_lists_and_several_statuses_at_once(server: LiveServer, remote: str,
                                            images: Path) -> None:
    first = start_job(server, remote, solid_frames(images, colours(3)))
    second = start_job(server, remote, solid_frames(images, colours(4), names=[
        f"b{i}.png" for i in range(4)]))
    for vsid in (first, second):
        server.wait_video(remote, vsid)
    listed = server.request("GET", f"/remotes/{remote}/videos").json()["videos"]
    assert [job["sid"] for job in listed][:2] == [second, first]
    both = server.request("GET", f"/remotes/{remote}/videos",
                          params={"ids": f"{first},{second}"}).json()["videos"]
    assert {job["sid"]: job["frames_total"] for job in both} == {first: 3, second: 4}
    done = server.request("GET", "/videos", params={"status": "succeeded"}).json()["videos"]
    assert {first, second} <= {job["sid"] for job in done}
    assert server.request("GET", "/videos", params={"status": "running"}).json() == {
        "videos": [], "next": None}
    bad = server.request("GET", "/videos", params={"status": "done"})
    assert bad.status_code == 400
    assert bad.headers["X-Slycat-Message"].startswith("Unknown status 'done'")
    assert [job["sid"] for job in server.request("GET", "/videos", params={
        "ids": first, "limit": "1"}).json()["videos"]] == [first], "not only the newest page"


def test_lists_come_in_pages_that_neither_overlap_nor_skip(server: LiveServer, remote: str,
                                                           images: Path) -> None:
    made = [start_job(server, remote, solid_frames(images, colours(2), names=[
        f"p{index}-{i}.png" for i in range(2)])) for index in range(3)]
    whole = server.request("GET", f"/remotes/{remote}/videos").json()
    assert whole["next"] is None and "Link" not in server.request(
        "GET", f"/remotes/{remote}/videos").headers
    everything = [job["sid"] for job in whole["videos"]]
    assert everything[:3] == made[::-1]
    paged: list[str] = []
    page: str | None = f"/remotes/{remote}/videos?limit=2"
    for _ in range(len(everything)):  # bounded: one page per job at most
        if page is None:
            break
        response = server.request("GET", page)
        assert response.status_code == 200
        body = response.json()
        assert 1 <= len(body["videos"]) <= 2
        paged += [job["sid"] for job in body["videos"]]
        if body["next"] is not None:
            assert response.headers["Link"] == f'<{body["next"]}>; rel="next"'
            assert "limit=2" in body["next"]
        page = body["next"]
    assert page is None and paged == everything
    mine = server.request("GET", "/videos", params={"limit": "1"}).json()
    assert len(mine["videos"]) == 1 and mine["next"].startswith("/videos?limit=1&before=")
    for params, field, message in (
            ({"limit": "0"}, "limit", "limit must be a whole number from 1 to 1000."),
            ({"limit": "1001"}, "limit", "limit must be a whole number from 1 to 1000."),
            ({"before": "0" * 32}, "before", "before must be a video id from this list: "
                                            "pass the value of next from the previous page."),
            ({"ids": ",".join(["a"] * 1001)}, "ids",
             "ids names at most 1000 videos; ask in several requests.")):
        refused = server.request("GET", "/videos", params=params)
        assert refused.status_code == 400
        assert refused.headers["X-Slycat-Message"] == message
        assert refused.json()["errors"][0]["source"]["pointer"] == f"/{field}"
    for job in made:
        server.wait_video(remote, job)


def test_cancel_stops_the_job(server: LiveServer, remote: str,
                              slow_frames: list[str]) -> None:
    vsid = start_job(server, remote, slow_frames)
    response = server.request("POST", f"/remotes/{remote}/videos/{vsid}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "canceled" and body["ok"] is False
    assert server.request("GET", f"/remotes/{remote}/videos/{vsid}").status_code == 409
    again = server.request("POST", f"/remotes/{remote}/videos/{vsid}/cancel")
    assert again.json()["status"] == "canceled"


def finish_and_check(server: LiveServer, sid: str, vsid: str, frames: int,
                     tmp_path: Path) -> None:
    status = server.wait_video(sid, vsid, timeout=300)
    assert status["status"] == "succeeded", status
    target = tmp_path / f"{vsid}.webm"
    target.write_bytes(server.request("GET", f"/remotes/{sid}/videos/{vsid}").content)
    info = probe(target)
    assert (info["codec"], info["frames"]) == ("vp9", frames)


def test_cut_ssh_link_mid_encode_then_reattach(server: LiveServer, sshd: SSHD,
                                               slow_frames: list[str], tmp_path: Path) -> None:
    sid = connect(server, sshd)
    vsid = start_job(server, sid, slow_frames)
    # Kill the sshd processes serving the test user: the link drops as if cut.
    subprocess.run(["pkill", "-KILL", "-u", sshd.user, "-f", "sshd"], check=False)
    deadline = time.monotonic() + 15
    while server.request("GET", f"/remotes/{sid}").json()["agent"]["state"] == "running":
        assert time.monotonic() < deadline, "the server did not notice the cut link"
        time.sleep(0.1)
    stale = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status")
    assert stale.status_code == 400
    assert stale.headers["X-Slycat-Message"] == "Agent required."
    fresh = connect(server, sshd)
    finish_and_check(server, fresh, vsid, 90, tmp_path)


def before_the_end(hook: Receiver, condition: Callable[[], Any], failure: str) -> None:
    """Wait until ``condition`` holds, which must happen while the job still runs."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, failure
        assert not hook.received, "the job ended before the test cut it off: make it longer"
        time.sleep(0.1)


def callback(hook: Receiver) -> dict[str, Any]:
    """The status in the first webhook ``hook`` receives."""
    deadline = time.monotonic() + 120
    while not hook.received:
        assert time.monotonic() < deadline, "the job's end was never seen"
        time.sleep(0.2)
    return dict(json.loads(hook.received[0].body)["data"])


def test_after_a_cut_link_the_server_follows_the_job_itself(
        make_server: Callable[..., LiveServer], sshd: SSHD, long_frames: list[str],
        receivers: list[Receiver], tmp_path: Path) -> None:
    # The server holds a key for the host, so it can log in without a person.
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts),
                              "client_keys": [str(sshd.client_key)]},
                         server={"follow_interval": 1.0})
    hook = Receiver(free_port())
    receivers.append(hook.start())
    sid = connect(server, sshd)
    vsid = start_job(server, sid, long_frames, url_callback=hook.url)
    subprocess.run(["pkill", "-KILL", "-u", sshd.user, "-f", "sshd"], check=False)
    # Nobody asks about the job: the server logs in with its key and follows it...
    before_the_end(hook, lambda: server.request("GET", "/admin/sessions").json()["sessions"],
                   "the server did not re-attach")
    data = callback(hook)  # ... so the callback comes all the same
    assert data["sid"] == vsid and data["status"] == "succeeded"
    assert data["frames_done"] == 120
    listed = server.request("GET", "/videos", params={"ids": vsid}).json()["videos"]
    assert listed[0]["status"] == "succeeded"
    # The server's own session closed once the job ended.
    deadline = time.monotonic() + 30
    while server.request("GET", "/admin/sessions").json()["sessions"] and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.request("GET", "/admin/sessions").json()["sessions"] == []
    fresh = connect(server, sshd)
    finish_and_check(server, fresh, vsid, 120, tmp_path)


def test_a_new_session_takes_over_a_job_nobody_asks_about(
        make_server: Callable[..., LiveServer], sshd: SSHD, long_frames: list[str],
        receivers: list[Receiver]) -> None:
    # No server key: only the owner's own new session can follow the job.
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts)},
                         server={"follow_interval": 1.0})
    hook = Receiver(free_port())
    receivers.append(hook.start())
    sid = connect(server, sshd)
    vsid = start_job(server, sid, long_frames, url_callback=hook.url)
    os.kill(server.request("GET", f"/remotes/{sid}").json()["agent"]["pid"], signal.SIGKILL)
    fresh = connect(server, sshd)  # opened, then never asked about the job
    before_the_end(hook, lambda: server.request("GET", f"/remotes/{fresh}").json()[
        "running_jobs"] == 1, "the new session did not take the job over")
    data = callback(hook)
    assert data["sid"] == vsid and data["status"] == "succeeded"
    info = server.request("GET", f"/remotes/{fresh}").json()
    assert info["running_jobs"] == 0 and info["agent"]["state"] == "running"


def test_killed_agent_then_new_session(server: LiveServer, sshd: SSHD,
                                       slow_frames: list[str], tmp_path: Path) -> None:
    sid = connect(server, sshd)
    vsid = start_job(server, sid, slow_frames)
    os.kill(server.request("GET", f"/remotes/{sid}").json()["agent"]["pid"], signal.SIGKILL)
    fresh = connect(server, sshd)
    finish_and_check(server, fresh, vsid, 90, tmp_path)


def test_server_restart_mid_encode_loses_nothing(make_server: Callable[..., LiveServer],
                                                 sshd: SSHD, slow_frames: list[str],
                                                 tmp_path: Path) -> None:
    first = make_server(ssh={"known_hosts": str(sshd.known_hosts)})
    sid = connect(first, sshd)
    vsid = start_job(first, sid, slow_frames)
    first.stop()
    second = LiveServer(make_config(Path(first.config.server.data_dir),
                                    ssh={"known_hosts": str(sshd.known_hosts)},
                                    server={"token": first.token}))
    try:
        listed = second.request("GET", "/videos").json()["videos"]
        assert vsid in [job["sid"] for job in listed]
        assert second.request("GET", f"/remotes/{sid}/videos/{vsid}/status").status_code == 404
        fresh = connect(second, sshd)
        finish_and_check(second, fresh, vsid, 90, tmp_path)
    finally:
        second.stop()


def test_another_host_account_cannot_reach_the_job(make_server: Callable[..., LiveServer],
                                                   server: LiveServer, remote: str,
                                                   images: Path) -> None:
    vsid = start_job(server, remote, solid_frames(images, colours(2)))
    local = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    response = server.request("GET", f"/remotes/{local}/videos/{vsid}/status")
    assert response.status_code == 404
    assert response.headers["X-Slycat-Message"] == "Unknown video."


def test_a_truncated_frame_is_named_before_anything_starts(server: LiveServer, remote: str,
                                                           images: Path) -> None:
    paths = solid_frames(images, colours(5))
    broken = Path(paths[2])
    broken.write_bytes(broken.read_bytes()[:60])  # a PNG header, then nothing
    response = server.post_json(f"/remotes/{remote}/videos",
                                {"content-type": "video/mp4", "images": paths})
    assert response.status_code == 400
    assert response.headers["X-Slycat-Message"] == (
        f"Incomplete image (still being written?): {broken}")
    assert response.json()["errors"][0]["source"]["pointer"] == "/images/2"


def test_a_frame_ffmpeg_cannot_decode_fails_the_job(server: LiveServer, remote: str,
                                                    images: Path) -> None:
    paths = solid_frames(images, colours(5), size=(64, 48))
    broken = Path(paths[2])
    data = bytearray(broken.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start:start + 20] = b"\xff" * 20  # whole file, garbage compressed pixels
    broken.write_bytes(bytes(data))
    vsid = start_job(server, remote, paths)
    status = server.wait_video(remote, vsid)
    assert status["status"] == "failed" and status["ok"] is False
    # ffmpeg skips it without naming it; the failure names the file and its place.
    assert status["message"].startswith(f"Image 3 of 5 could not be decoded: {broken} ("), \
        status["message"]
    assert status["stderr"]
    job_dir = Path(server.request("GET", f"/remotes/{remote}").json()["agent"]["work_dir"]) \
        / "jobs" / vsid
    assert not list(job_dir.glob("partial.*")) and not list(job_dir.glob("video.*"))


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs as the agent's work directory (the tests run as root, as CI does)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_remote_disk_fails_the_job_cleanly(make_server: Callable[..., LiveServer],
                                                  tiny_disk: Path, images: Path) -> None:
    from PIL import Image

    server = make_server(local={"work_dir": str(tiny_disk)})
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    paths = []
    for index in range(30):
        path = images / f"noise{index}.png"
        Image.frombytes("RGB", (320, 240), os.urandom(320 * 240 * 3)).save(path)
        paths.append(str(path))
    response = server.post_json(f"/remotes/{sid}/videos",
                                {"content-type": "video/mp4", "images": paths, "crf": 0})
    assert response.status_code == 202
    vsid = response.json()["sid"]
    status = server.wait_video(sid, vsid)
    assert status["status"] == "failed", status
    assert status["message"].startswith("The remote disk is full: ffmpeg could not write the "
                                        "output (No space left on device")
    job_dir = tiny_disk / "jobs" / vsid
    assert not list(job_dir.glob("partial.*")) and not list(job_dir.glob("video.*"))
    assert not (job_dir / "frames").exists()
    assert server.request("GET", f"/remotes/{sid}/videos/{vsid}").status_code == 409


def test_server_with_keys_follows_jobs_after_a_restart(make_server: Callable[..., LiveServer],
                                                       sshd: SSHD, slow_frames: list[str]
                                                       ) -> None:
    """Nobody comes back after the restart, yet the job's callback arrives."""
    from tests.fixtures import free_port
    from tests.webhook_receiver import Receiver

    ssh = {"known_hosts": str(sshd.known_hosts), "client_keys": [str(sshd.client_key)]}
    hooks = {"retry_schedule": [0.3, 0.5, 1.0], "poll_interval": 0.1}
    first = make_server(ssh=ssh, webhooks=hooks)
    sid = first.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                       "username": sshd.user}).json()["sid"]
    hook = Receiver(free_port()).start()
    try:
        vsid = start_job(first, sid, slow_frames, url_callback=hook.url)
        first.stop()
        second = LiveServer(make_config(Path(first.config.server.data_dir), ssh=ssh,
                                        webhooks=hooks, server={"token": first.token}))
        try:
            deadline = time.monotonic() + 120
            while not hook.received:
                assert time.monotonic() < deadline, "no callback after the restart"
                time.sleep(0.2)
            body = json.loads(hook.received[0].body)
            assert body["type"] == "job.succeeded" and body["data"]["sid"] == vsid
        finally:
            second.stop()
    finally:
        hook.stop()


def test_resuming_a_finished_stream_ends_and_deletion_is_an_event(server: LiveServer,
                                                                  remote: str,
                                                                  images: Path) -> None:
    vsid = start_job(server, remote, solid_frames(images, colours(2)))
    server.wait_video(remote, vsid)
    url = f"/remotes/{remote}/videos/{vsid}/events"
    ndjson = {"Accept": "application/x-ndjson"}
    with server.request("GET", url, stream=True, timeout=30, headers=ndjson) as response:
        events = [json.loads(line) for line in response.iter_lines()]
    last = events[-1]["id"]
    started = time.monotonic()
    with server.request("GET", url, stream=True, timeout=30,
                        headers={**ndjson, "Last-Event-ID": str(last)}) as response:
        assert [line for line in response.iter_lines()] == []
    assert time.monotonic() - started < 5, "a resumed stream of a finished job hung"
    assert server.request("DELETE", f"/remotes/{remote}/videos/{vsid}").status_code == 204
    with server.request("GET", url, stream=True, timeout=30,
                        headers={**ndjson, "Last-Event-ID": str(last)}) as response:
        after = [json.loads(line) for line in response.iter_lines()]
    assert [event["data"]["status"] for event in after] == ["expired"]
    nan = server.request("GET", f"/remotes/{remote}/videos/{vsid}/status",
                         params={"block": "true", "timeout": "nan"})
    assert nan.status_code == 400
