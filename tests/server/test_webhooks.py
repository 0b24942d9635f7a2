"""Webhooks signed the Standard Webhooks way, retried until a 2xx, never lost; idempotency."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from tests.fixtures import LiveServer, free_port, make_config, solid_frames
from tests.webhook_receiver import Receiver

FAST_RETRIES = {"retry_schedule": [0.3, 0.3, 0.5, 0.5, 1.0], "poll_interval": 0.1}


@pytest.fixture
def hooked(make_server: Callable[..., LiveServer]) -> tuple[LiveServer, str]:
    server = make_server(webhooks=FAST_RETRIES)
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    return server, sid


def receiver(receivers: list[Receiver], plan: list[int] | None = None,
             started: bool = True, default: int = 200) -> Receiver:
    made = Receiver(free_port(), plan=list(plan or []), default=default)
    receivers.append(made)
    return made.start() if started else made


def verify(secret: str, received: Any) -> None:
    """Check a delivery exactly as a Standard Webhooks receiver would."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}."
              .encode() + received.body)
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert received.headers["webhook-signature"] == f"v1,{expected}"
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def job(hooked: tuple[LiveServer, str], paths: list[str], **fields: Any) -> str:
    server, sid = hooked
    response = server.post_json(f"/remotes/{sid}/videos",
                                {"content-type": "video/mp4", "images": paths, **fields})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    return response.json()["sid"]


def test_callback_is_signed_and_carries_the_final_status(hooked, receivers,
                                                         images: Path) -> None:
    server, sid = hooked
    hook = receiver(receivers)
    vsid = job(hooked, solid_frames(images, [(255, 0, 0)] * 3), url_callback=hook.url)
    wait_for(lambda: len(hook.received) == 1)
    got = hook.received[0]
    secret = server.request("GET", "/webhooks/secret").json()["secret"]
    assert secret.startswith("whsec_")
    verify(secret, got)
    body = json.loads(got.body)
    assert body["type"] == "job.succeeded"
    assert body["data"]["sid"] == vsid and body["data"]["status"] == "succeeded"
    assert body["data"]["outputs"][0]["url"] == f"/remotes/{sid}/videos/{vsid}/outputs/video"
    time.sleep(1)
    assert len(hook.received) == 1, "a delivered webhook was sent again"


def test_receiver_down_then_back_gets_exactly_one_delivery(hooked, receivers,
                                                           images: Path) -> None:
    server, sid = hooked
    hook = receiver(receivers, started=False)  # nothing listens yet: connection refused
    vsid = job(hooked, solid_frames(images, [(0, 255, 0)] * 3), url_callback=hook.url)
    def attempts() -> int:
        log = server.request("GET", f"/remotes/{sid}/videos/{vsid}/webhooks").json()
        return len(log["deliveries"][0]["attempts"]) if log["deliveries"] else 0

    wait_for(lambda: attempts() >= 2)
    hook.plan = [503]  # back, but still unwell once
    hook.start()
    wait_for(lambda: any(r.answered == 200 for r in hook.received))
    time.sleep(1.5)
    assert [r.answered for r in hook.received] == [503, 200]
    assert len({r.headers["webhook-id"] for r in hook.received}) == 1
    secret = server.request("GET", "/webhooks/secret").json()["secret"]
    for got in hook.received:
        verify(secret, got)
    log = server.request("GET", f"/remotes/{sid}/videos/{vsid}/webhooks").json()
    delivery = log["deliveries"][0]
    assert delivery["state"] == "delivered" and delivery["kind"] == "callback"
    assert [a.get("status") for a in delivery["attempts"]][-2:] == [503, 200]
    assert all("error" in a for a in delivery["attempts"][:-2])  # refused while down


def test_a_slow_receiver_does_not_hold_up_other_jobs(hooked, receivers,
                                                     images: Path) -> None:
    slow, fast = receiver(receivers), receiver(receivers)
    slow.hold = threading.Event()
    try:
        stuck = job(hooked, solid_frames(images, [(9, 9, 9)] * 2, names=["s0.png", "s1.png"]),
                    url_callback=slow.url, webhook_timeout_secs=30)
        wait_for(lambda: slow.arrived == 1)  # its answer is held back
        other = job(hooked, solid_frames(images, [(7, 7, 7)] * 2), url_callback=fast.url)
        wait_for(lambda: len(fast.received) == 1)
        assert slow.received == [], "the slow receiver answered first"
        assert json.loads(fast.received[0].body)["data"]["sid"] == other
    finally:
        slow.hold.set()
    wait_for(lambda: len(slow.received) == 1)
    assert json.loads(slow.received[0].body)["data"]["sid"] == stuck


def test_event_url_fails_over_and_errback_reports_failure(hooked, receivers,
                                                          images: Path) -> None:
    primary = receiver(receivers, default=500)
    failover = receiver(receivers)
    errback = receiver(receivers)
    paths = solid_frames(images, [(0, 0, 255)] * 3, size=(64, 48))
    broken = Path(paths[1])
    data = bytearray(broken.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start:start + 20] = b"\xff" * 20
    broken.write_bytes(bytes(data))
    job(hooked, paths, webhook_event_url=primary.url,
        webhook_event_failover_url=failover.url, url_errback=errback.url,
        webhook_timeout_secs=5)
    wait_for(lambda: len(errback.received) == 1)
    assert json.loads(errback.received[0].body)["data"]["status"] == "failed"
    wait_for(lambda: any(json.loads(r.body)["type"] == "job.failed"
                         for r in failover.received))
    types = [json.loads(r.body)["type"] for r in failover.received]
    assert types[0] == "job.queued" and "job.failed" in types
    assert all(r.answered == 500 for r in primary.received)
    # each event went to the primary first, then to the failover, with the same id
    first_ids = [r.headers["webhook-id"] for r in primary.received]
    assert set(r.headers["webhook-id"] for r in failover.received) <= set(first_ids)


def test_replay_sends_the_same_message_again(hooked, receivers, images: Path) -> None:
    server, sid = hooked
    hook = receiver(receivers)
    vsid = job(hooked, solid_frames(images, [(9, 9, 9)] * 2), url_callback=hook.url)
    wait_for(lambda: len(hook.received) == 1)
    delivery = server.request("GET", f"/remotes/{sid}/videos/{vsid}/webhooks").json()[
        "deliveries"][0]
    replay = server.request("POST", f"/remotes/{sid}/videos/{vsid}/webhooks/"
                                    f"{delivery['id']}/replay")
    assert replay.status_code == 202
    wait_for(lambda: len(hook.received) == 2)
    assert hook.received[1].headers["webhook-id"] == hook.received[0].headers["webhook-id"]
    assert hook.received[1].body == hook.received[0].body
    missing = server.request("POST", f"/remotes/{sid}/videos/{vsid}/webhooks/nope/replay")
    assert missing.status_code == 404


def test_a_replay_during_an_attempt_is_not_lost(hooked, receivers, images: Path) -> None:
    server, sid = hooked
    hook = receiver(receivers)
    hook.hold = threading.Event()
    try:
        vsid = job(hooked, solid_frames(images, [(8, 8, 8)] * 2), url_callback=hook.url,
                   webhook_timeout_secs=30)
        wait_for(lambda: hook.arrived == 1)  # the first attempt waits for its answer
        replay = server.request("POST", f"/remotes/{sid}/videos/{vsid}/webhooks/"
                                        f"msg_{vsid}_callback/replay")
        assert replay.status_code == 202 and replay.json()["state"] == "pending"
    finally:
        hook.hold.set()
    wait_for(lambda: len(hook.received) == 2)
    assert [r.answered for r in hook.received] == [200, 200]
    wait_for(lambda: server.request("GET", f"/remotes/{sid}/videos/{vsid}/webhooks").json()[
        "deliveries"][0]["state"] == "delivered")


def test_pending_deliveries_survive_a_server_restart(make_server, receivers,
                                                     images: Path) -> None:
    first = make_server(webhooks={**FAST_RETRIES, "retry_schedule": [2.0] * 10})
    sid = first.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    hook = receiver(receivers, started=False)
    vsid = job((first, sid), solid_frames(images, [(1, 2, 3)] * 2), url_callback=hook.url)
    first.wait_video(sid, vsid)
    first.stop()
    hook.start()
    second = LiveServer(make_config(Path(first.config.server.data_dir),
                                    webhooks={**FAST_RETRIES, "retry_schedule": [2.0] * 10},
                                    server={"token": first.token}))
    try:
        wait_for(lambda: len(hook.received) == 1)
        assert json.loads(hook.received[0].body)["data"]["sid"] == vsid
    finally:
        second.stop()


def test_webhook_fields_are_validated(hooked, images: Path) -> None:
    server, sid = hooked
    paths = solid_frames(images, [(0, 0, 0)])
    for extra, pointer, message in [
        ({"url_callback": "ftp://example.org/x"}, "/url_callback",
         "url_callback must be an http or https URL."),
        ({"url_callback": "https://[bad/done"}, "/url_callback",  # urlsplit raises on it
         "url_callback must be an http or https URL."),
        ({"webhook_event_url": "http://127.0.0.1:9/x", "webhook_timeout_secs": 60},
         "/webhook_timeout_secs",
         "webhook_timeout_secs must be a number of seconds above 0 and at most 30."),
        ({"webhook_event_failover_url": "http://127.0.0.1:9/x"},
         "/webhook_event_failover_url", "webhook_event_failover_url needs webhook_event_url."),
    ]:
        response = server.post_json(f"/remotes/{sid}/videos",
                                    {"content-type": "video/mp4", "images": paths, **extra})
        assert response.status_code == 400
        assert response.headers["X-Slycat-Message"] == message
        assert response.json()["errors"][0]["source"]["pointer"] == pointer


def test_idempotency_key_returns_the_first_job(hooked, images: Path) -> None:
    server, sid = hooked
    paths = solid_frames(images, [(5, 5, 5)] * 2)
    body = {"content-type": "video/mp4", "images": paths}

    def post(payload: dict[str, Any], key: str | None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        return server.request("POST", f"/remotes/{sid}/videos", data=json.dumps(payload),
                              headers={"Content-Type": "application/json", **headers})

    first = post(body, "key-1")
    again = post(body, "key-1")
    assert first.status_code == again.status_code == 202
    assert first.json()["sid"] == again.json()["sid"]
    listed = server.request("GET", f"/remotes/{sid}/videos").json()["videos"]
    assert len(listed) == 1
    other = post({**body, "frame-rate": 10}, "key-1")
    assert other.status_code == 409
    assert other.headers["X-Slycat-Message"] == (
        "Idempotency-Key was already used with a different request.")
    assert post(body, "key-2").json()["sid"] != first.json()["sid"]
    assert post(body, None).json()["sid"] != first.json()["sid"]
    failed = post({"content-type": "video/avi", "images": paths}, "key-3")
    assert failed.status_code == 400
    retried = post(body, "key-3")  # a refused request does not use up its key
    assert retried.status_code == 202


def test_a_running_job_keeps_its_idle_session_open_until_it_ends(
        make_server: Callable[..., LiveServer], receivers, images: Path) -> None:
    noise = []
    for index in range(120):
        path = images / f"noise{index:03d}.png"
        Image.frombytes("RGB", (480, 360), os.urandom(480 * 360 * 3)).save(path,
                                                                            compress_level=1)
        noise.append(str(path))
    server = make_server(webhooks=FAST_RETRIES, server={"session_idle_timeout": 2.0})
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    hook = receiver(receivers)
    created = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/webm", "images": noise, "url_callback": hook.url})
    assert created.status_code == 202
    vsid = created.json()["sid"]
    touched = time.monotonic()
    # Nobody touches the session while the job runs, beyond its idle timeout
    # and the reaper's round (1 s).
    wait_for(lambda: len(hook.received) == 1, timeout=180)
    idle = time.monotonic() - touched
    assert idle > 3.5, f"the job must outlast the idle timeout to prove this ({idle:.1f} s)"
    data = json.loads(hook.received[0].body)["data"]
    assert data["status"] == "succeeded", data.get("message")
    # The callback's URL goes through the job's own session, still open.
    video = server.request("GET", data["outputs"][0]["url"])
    assert video.status_code == 200 and video.content[:4] == b"\x1aE\xdf\xa3"
    info = server.request("GET", f"/remotes/{sid}").json()
    assert info["running_jobs"] == 0 and info["expires"] is not None
    # With its job over, it expires as any idle session.
    time.sleep(2.5)
    gone = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status")
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "unknown-session"
