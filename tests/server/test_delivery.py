"""Delivery: a finished job's output uploaded to a loopback receiver, whole or in chunks."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from PIL import Image

from tests.fixtures import LiveServer, free_port, solid_frames
from tests.webhook_receiver import Receiver

FAST_RETRIES = {"retry_schedule": [0.2, 0.2, 0.5], "poll_interval": 0.1}


@pytest.fixture
def hooked(make_server: Callable[..., LiveServer]) -> tuple[LiveServer, str]:
    server = make_server(webhooks=FAST_RETRIES)
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    return server, sid


@pytest.fixture
def target() -> Iterator[Receiver]:
    receiver = Receiver(free_port()).start()
    yield receiver
    receiver.stop()


def deliver(hooked: tuple[LiveServer, str], images: Path, targets: list[dict[str, Any]]
            ) -> tuple[str, bytes]:
    server, sid = hooked
    paths = []
    for index in range(10):  # noise, so the video is tens of kilobytes
        path = images / f"noise{index}.png"
        Image.frombytes("RGB", (160, 120), os.urandom(160 * 120 * 3)).save(path)
        paths.append(str(path))
    response = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": paths, "crf": 10, "deliver": targets})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    vsid = response.json()["sid"]
    assert server.wait_video(sid, vsid)["status"] == "succeeded"
    video = server.request("GET", f"/remotes/{sid}/videos/{vsid}").content
    return vsid, video


def delivered(server: LiveServer, sid: str, vsid: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        status = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status").json()
        if all(entry["state"] != "pending" for entry in status["deliveries"]):
            return status["deliveries"]
        assert time.monotonic() < deadline, status["deliveries"]
        time.sleep(0.1)


def test_chunked_put_reassembles_byte_identical(hooked, target: Receiver,
                                                images: Path) -> None:
    server, sid = hooked
    vsid, video = deliver(hooked, images, [{"url": target.url, "chunk_size": 4096}])
    results = delivered(server, sid, vsid)
    assert results[0]["state"] == "delivered" and results[0]["bytes_sent"] == len(video)
    assert len(target.received) == -(-len(video) // 4096) > 2
    offset = 0
    for request in target.received:
        assert request.method == "PUT"
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers["content-range"])
        assert match, request.headers
        first, last, total = map(int, match.groups())
        assert (first, total) == (offset, len(video)) and last == first + len(request.body) - 1
        offset = last + 1
    assert b"".join(r.body for r in target.received) == video


def test_whole_post_with_headers_that_are_never_stored(hooked, target: Receiver,
                                                       images: Path) -> None:
    server, sid = hooked
    secret = "Bearer upload-secret-4242"
    vsid, video = deliver(hooked, images, [{"url": target.url, "method": "POST",
                                            "headers": {"Authorization": secret}}])
    assert delivered(server, sid, vsid)[0]["state"] == "delivered"
    [request] = target.received
    assert request.method == "POST" and request.body == video
    assert request.headers["authorization"] == secret
    assert request.headers["content-type"] == "video/mp4"
    assert "content-range" not in request.headers
    database = Path(server.config.database).read_bytes()
    assert b"upload-secret-4242" not in database


def test_a_failed_chunk_is_retried_and_the_upload_resumes(hooked, target: Receiver,
                                                          images: Path) -> None:
    server, sid = hooked
    target.plan = [200, 503]  # the second chunk fails once
    vsid, video = deliver(hooked, images, [{"url": target.url, "chunk_size": 8192}])
    result = delivered(server, sid, vsid)[0]
    assert result["state"] == "delivered"
    assert [a.get("status") for a in result["attempts"]] == [503, 200]
    accepted = [r for r in target.received if r.answered == 200]
    assert b"".join(r.body for r in accepted) == video
    ranges = [r.headers["content-range"] for r in target.received]
    assert ranges[1] == ranges[2], "the retry did not resume at the failed chunk"


def test_delivery_fields_are_validated(hooked, images: Path) -> None:
    server, sid = hooked
    paths = solid_frames(images, [(0, 0, 0)])
    for targets, pointer, message in [
        ([{"url": "file:///etc/passwd"}], "/deliver/0/url",
         "deliver.0.url must be an http or https URL."),
        ([{"url": "http://127.0.0.1:9/x", "method": "PATCH"}], "/deliver/0/method",
         "deliver.0.method must be PUT or POST."),
        ([{"url": "http://127.0.0.1:9/x", "chunk_size": 10}], "/deliver/0/chunk_size",
         "deliver.0.chunk_size must be a number of bytes from 1024 to 1073741824."),
        ([{"url": "http://127.0.0.1:9/x", "headers": {"Host": "evil"}}], "/deliver/0/headers",
         "deliver.0.headers must map header names to one-line values (not Host, "
         "Content-Length, Content-Range or Transfer-Encoding)."),
        ([], "/deliver",
         "deliver must list 1 to 10 targets such as {\"url\": \"https://...\"}."),
    ]:
        response = server.post_json(f"/remotes/{sid}/videos", {
            "content-type": "video/mp4", "images": paths, "deliver": targets})
        assert response.status_code == 400, targets
        assert response.headers["X-Slycat-Message"] == message
        assert response.json()["errors"][0]["source"]["pointer"] == pointer
