"""The outgoing policy: webhooks and uploads never reach loopback, private or
link-local addresses unless configured, and no redirect leads to one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from tests.fixtures import LiveServer, free_port, solid_frames
from tests.server.test_webhooks import FAST_RETRIES, wait_for
from tests.webhook_receiver import Receiver


def start(receivers: list[Receiver], host: str = "127.0.0.1", plan: list[int] | None = None,
          location: str | None = None) -> Receiver:
    made = Receiver(free_port(), plan=list(plan or []), host=host, location=location)
    receivers.append(made)
    return made.start()


def session(server: LiveServer) -> str:
    response = server.post_json("/remotes", {"hostname": "localhost"})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return str(response.json()["sid"])


def attempts(server: LiveServer, sid: str, vsid: str) -> list[dict[str, object]]:
    log = server.request("GET", f"/remotes/{sid}/videos/{vsid}/webhooks").json()
    return log["deliveries"][0]["attempts"] if log["deliveries"] else []


def test_default_policy_refuses_loopback_and_private_urls(
        make_server: Callable[..., LiveServer], images: Path) -> None:
    server = make_server(outgoing={"allow_networks": []})
    sid = session(server)
    frames = solid_frames(images, [(9, 9, 9)])
    for field, url, kind in (
            ("url_callback", "http://127.0.0.1:9/hook", "loopback"),
            ("webhook_event_url", "http://[::1]:9/hook", "loopback"),
            ("url_errback", "http://10.1.2.3/hook", "private"),
            ("url_callback", "http://169.254.169.254/latest/meta-data", "link-local"),
            ("url_callback", "http://[::ffff:127.0.0.1]:9/", "loopback")):
        response = server.post_json(f"/remotes/{sid}/videos", {
            "content-type": "video/mp4", "images": frames, field: url})
        assert response.status_code == 400, url
        message = response.headers["X-Slycat-Message"]
        assert message.startswith(f"{field} may not be used") and kind in message, message
        assert response.json()["errors"][0]["source"]["pointer"] == f"/{field}"
    response = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": frames,
        "deliver": [{"url": "http://192.168.1.10/upload"}]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["source"]["pointer"] == "/deliver/0/url"
    assert server.request("GET", "/videos").json()["videos"] == [], "nothing was started"


def test_a_name_that_resolves_to_loopback_is_refused_when_sent(
        make_server: Callable[..., LiveServer], receivers: list[Receiver],
        images: Path) -> None:
    server = make_server(outgoing={"allow_networks": []}, webhooks=FAST_RETRIES)
    hook = start(receivers)
    sid = session(server)
    url = f"http://localhost:{hook.port}/hook"  # a name: checked when resolved
    response = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": solid_frames(images, [(1, 2, 3)] * 2),
        "url_callback": url})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    vsid = response.json()["sid"]
    wait_for(lambda: len(attempts(server, sid, vsid)) >= 2)
    first = attempts(server, sid, vsid)[0]
    assert "refused by the outgoing policy" in str(first["error"]), first
    assert "loopback" in str(first["error"])
    assert hook.received == [], "the loopback receiver must never be reached"


def test_redirects_are_followed_only_to_allowed_addresses(
        make_server: Callable[..., LiveServer], receivers: list[Receiver],
        images: Path) -> None:
    server = make_server(outgoing={"allow_networks": ["127.0.0.0/8"],
                                   "deny_networks": ["127.0.0.2/32"]},
                         webhooks=FAST_RETRIES)
    denied = start(receivers, host="127.0.0.2")
    bouncer = start(receivers, plan=[307] * 10, location=denied.url)
    final = start(receivers)
    good_bouncer = start(receivers, plan=[308], location=final.url)
    sid = session(server)
    frames = solid_frames(images, [(4, 5, 6)] * 2)
    refused = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": frames, "url_callback": bouncer.url})
    followed = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": frames, "url_callback": good_bouncer.url})
    assert refused.status_code == followed.status_code == 202
    vsid = refused.json()["sid"]
    wait_for(lambda: len(attempts(server, sid, vsid)) >= 2)
    wait_for(lambda: len(final.received) == 1)
    assert denied.received == [], "a redirect led to a denied address"
    error = str(attempts(server, sid, vsid)[0]["error"])
    assert "redirect to http://127.0.0.2" in error and "deny_networks" in error, error
    assert json.loads(final.received[0].body)["data"]["sid"] == followed.json()["sid"]
    assert final.received[0].headers["webhook-id"] == good_bouncer.received[0].headers[
        "webhook-id"]
