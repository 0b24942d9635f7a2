"""Retention: expiration per user, the sweeper, storage listing and deletion."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.fixtures import SSHD, LiveServer, connect, solid_frames


def finished_job(server: LiveServer, sid: str, images: Path, name: str) -> dict[str, Any]:
    paths = solid_frames(images, [(40, 80, 120)] * 3, names=[f"{name}{i}.png" for i in range(3)])
    vsid = server.post_json(f"/remotes/{sid}/videos",
                            {"content-type": "video/mp4", "images": paths}).json()["sid"]
    status = server.wait_video(sid, vsid)
    assert status["status"] == "succeeded"
    return status


def job_dir(sshd: SSHD, vsid: str) -> Path:
    return sshd.home / ".cache" / "framewire" / "jobs" / vsid


def test_expiration_setting(server: LiveServer) -> None:
    assert server.request("GET", "/storage/expiration").json() == {"days": 30.0}
    assert server.post_json("/storage/expiration", {"days": 7}).json() == {"days": 7.0}
    assert server.request("GET", "/storage/expiration").json() == {"days": 7.0}
    bad = server.post_json("/storage/expiration", {"days": -1})
    assert bad.status_code == 400
    assert bad.headers["X-Slycat-Message"] == (
        "days must be a number from 0 (never expire) to 3650.")


def test_expired_outputs_are_swept_when_a_session_reaches_the_host(
        server: LiveServer, remote: str, sshd: SSHD, images: Path) -> None:
    keep = finished_job(server, remote, images, "keep")
    server.post_json("/storage/expiration", {"days": 0})  # never: nothing is swept
    connect(server, sshd)
    time.sleep(0.5)
    assert job_dir(sshd, keep["sid"]).exists()
    server.post_json("/storage/expiration", {"days": 1 / 86400})  # one second
    time.sleep(1.5)
    fresh = connect(server, sshd)
    deadline = time.monotonic() + 10
    while job_dir(sshd, keep["sid"]).exists():
        assert time.monotonic() < deadline, "the sweeper did not delete the expired outputs"
        time.sleep(0.1)
    status = server.request("GET", f"/remotes/{fresh}/videos/{keep['sid']}/status").json()
    assert status["status"] == "expired" and status["ready"] is False
    listing = server.request("GET", "/storage").json()
    entry = next(v for v in listing["videos"] if v["sid"] == keep["sid"])
    assert entry["status"] == "expired" and entry["size"] == 0


def test_storage_listing_and_deletion(server: LiveServer, remote: str, sshd: SSHD,
                                      images: Path) -> None:
    first = finished_job(server, remote, images, "one")
    second = finished_job(server, remote, images, "two")
    listing = server.request("GET", "/storage").json()
    sizes = {v["sid"]: v["size"] for v in listing["videos"]}
    assert sizes[first["sid"]] == first["outputs"][0]["size"] > 0
    assert listing["usage"]["bytes"] >= sizes[first["sid"]] + sizes[second["sid"]]
    assert listing["videos"][0]["expires"] is not None
    dry = server.post_json("/storage/delete", {"videos": [first["sid"]], "dry_run": True})
    assert dry.json()["matched"] == [first["sid"]] and dry.json()["deleted"] == []
    assert job_dir(sshd, first["sid"]).exists()
    done = server.post_json("/storage/delete", {"videos": [first["sid"]]}).json()
    assert done["deleted"] == [first["sid"]]
    assert not job_dir(sshd, first["sid"]).exists()
    # No live session: the deletion waits for the next one.
    server.request("DELETE", f"/remotes/{remote}")
    later = server.post_json("/storage/delete", {"max_age": 0}).json()
    assert second["sid"] in later["deferred"]
    assert job_dir(sshd, second["sid"]).exists()
    connect(server, sshd)
    deadline = time.monotonic() + 10
    while job_dir(sshd, second["sid"]).exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    bad = server.post_json("/storage/delete", {"from": "yesterday"})
    assert bad.status_code == 400
    assert bad.headers["X-Slycat-Message"] == (
        "from must be a UTC date such as \"2026-11-23\" or \"2026-11-23T18:00:00Z\".")
    nothing = server.post_json("/storage/delete", {})
    assert nothing.status_code == 400
