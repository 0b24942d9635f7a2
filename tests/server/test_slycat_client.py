"""Slycat's own Python client (``slycat-web-client`` from PyPI), unchanged, against a
live server and the real sshd; and the shapes of Slycat's HTTP conventions it relies on."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import slycat.web.client

from server.config import HostConfig
from tests.fixtures import SSHD, LiveServer, probe, solid_frames

OPEN: list[slycat.web.client.Connection] = []


@pytest.fixture(autouse=True)
def close_connections() -> Iterator[None]:
    """The client's connections a test made, closed after it (the client never does)."""
    yield
    while OPEN:
        OPEN.pop().session.close()


def connect(server: LiveServer, password: str,
            user: str = "analyst") -> slycat.web.client.Connection:
    """``slycat.web.client.connect`` as Slycat's own scripts call it."""
    arguments = slycat.web.client.ArgumentParser().parse_args([
        "--host", "http://127.0.0.1", "--port", str(server.port), "--user", user,
        f"--password={password}", "--no-verify"])
    connection = slycat.web.client.connect(arguments)
    OPEN.append(connection)
    return connection


@pytest.fixture
def slycat_server(server: LiveServer, sshd: SSHD) -> LiveServer:
    # Slycat's post_remotes has no port: this host's profile supplies the sshd's.
    server.config.hosts["127.0.0.1"] = HostConfig(port=sshd.port)
    return server


def test_the_real_slycat_client_end_to_end(slycat_server: LiveServer, sshd: SSHD,
                                           images: Path, tmp_path: Path) -> None:
    server = slycat_server
    connection = connect(server, server.token)
    assert "framewire_user" in connection.session.cookies.keys()
    sid = connection.post_remotes("127.0.0.1", sshd.user, sshd.password)
    assert len(sid) == 32

    colours = [(10 * i, 200 - 10 * i, 90) for i in range(12)]
    paths = solid_frames(images, colours, size=(80, 60))
    (images / "notes.txt").write_text("not a frame\n")
    listing = connection.post_remote_browse(sid, str(images), file_reject=r"\.txt$")
    assert listing["path"] == str(images)
    assert listing["names"] == sorted(Path(path).name for path in paths)
    assert set(listing["types"]) == {"f"}

    assert connection.get_remote_file(sid, paths[3]) == Path(paths[3]).read_bytes()
    image = connection.get_remote_image(sid, paths[0])
    assert image == Path(paths[0]).read_bytes()

    created = connection.request("POST", "/api/remotes/%s/videos" % sid,
                                 headers={"content-type": "application/json"},
                                 data=json.dumps({"content-type": "video/mp4",
                                                  "images": paths}))
    vsid = created["sid"]
    deadline = time.monotonic() + 120
    while True:
        status = connection.request("GET", "/api/remotes/%s/videos/%s/status" % (sid, vsid))
        assert status["ok"] is True, status
        if status["ready"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    video = connection.request("GET", "/api/remotes/%s/videos/%s" % (sid, vsid))
    (tmp_path / "slycat.mp4").write_bytes(video)
    info = probe(tmp_path / "slycat.mp4")
    assert (info["codec"], info["width"], info["height"], info["frames"]) == (
        "h264", 80, 60, len(paths))

    assert connection.delete_remote(sid) is None  # a 204 with a Content-Type, as Slycat's
    with pytest.raises(requests.HTTPError) as gone:
        connection.request("GET", "/api/remotes/%s" % sid)
    assert gone.value.response.status_code == 404


def test_the_real_slycat_client_refused(slycat_server: LiveServer, sshd: SSHD) -> None:
    with pytest.raises(NameError):
        connect(slycat_server, "not-the-token")
    connection = connect(slycat_server, slycat_server.token)
    with pytest.raises(requests.HTTPError) as refused:
        connection.post_remotes("127.0.0.1", sshd.user, "wrong-" + sshd.password)
    assert refused.value.response.status_code == 403
    assert refused.value.response.reason == "Remote authentication failed."


def slycat_login(url: str, user: str, password: str) -> requests.Response:
    return requests.post(url + "/api/login", json={
        "user_name": base64.b64encode(user.encode()).decode(),
        "password": base64.b64encode(password.encode()).decode()}, timeout=30)


def test_api_login_in_token_mode(server: LiveServer) -> None:
    good = slycat_login(server.url, "anyone", server.token)
    assert good.status_code == 200 and good.json() == {"success": True, "target": "/"}
    cookie = good.cookies["framewire_user"]
    me = requests.get(server.url + "/api/me", cookies={"framewire_user": cookie}, timeout=30)
    assert me.status_code == 200 and me.json()["via"] == "cookie"
    bad = slycat_login(server.url, "anyone", "wrong")
    assert bad.status_code == 404
    assert "Set-Cookie" not in bad.headers, "the client takes any cookie as success"
    assert bad.reason == "Wrong server token."
    junk = requests.post(server.url + "/api/login", json={"user_name": "%%%", "password": 1},
                         timeout=30)
    assert junk.status_code == 404 and "Set-Cookie" not in junk.headers


def test_api_login_in_users_mode_is_rate_limited_and_audited(
        make_server: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture) -> None:
    from tests.server.test_accounts import users_server

    caplog.set_level(logging.INFO)
    server = users_server(make_server, ("alice", "alice-password", "user"),
                          auth={"max_failed_logins": 3})
    assert slycat_login(server.url, "alice", "alice-password").status_code == 200
    for _ in range(3):
        assert slycat_login(server.url, "alice", "guess").status_code == 404
    paused = slycat_login(server.url, "alice", "alice-password")
    assert paused.status_code == 429 and "Retry-After" in paused.headers
    assert "Set-Cookie" not in paused.headers
    audit = [record.getMessage() for record in caplog.records
             if record.name == "framewire.audit"]
    assert any("login-failed" in line and "slycat-login" in line for line in audit), audit
    assert not any("guess" in record.getMessage() or "alice-password" in record.getMessage()
                   for record in caplog.records)


def test_basic_json_needs_no_xsrf_token_but_the_cookie_alone_does(
        server: LiveServer) -> None:
    basic = base64.b64encode(f"slycat:{server.token}".encode()).decode()
    # Slycat's older client: HTTP Basic, a JSON body, no XSRF token, any content type.
    for content_type in ("application/json", "text/plain"):
        response = requests.post(server.url + "/remotes", data=json.dumps({}), headers={
            "Authorization": f"Basic {basic}", "Content-Type": content_type}, timeout=30)
        assert response.status_code == 400, content_type
        assert response.headers["X-Slycat-Message"] == "hostname is required."
    browser = requests.Session()
    assert browser.get(f"{server.url}/?token={server.token}", timeout=30).status_code == 200
    refused = browser.post(server.url + "/remotes", json={}, timeout=30)
    assert refused.status_code == 403
    assert refused.headers["X-Slycat-Message"] == "The XSRF token is missing or wrong."
    assert refused.reason == "The XSRF token is missing or wrong."
    allowed = browser.post(server.url + "/remotes", json={}, timeout=30,
                           headers={"X-XSRFToken": browser.cookies["_xsrf"]})
    assert allowed.status_code == 400


def test_no_basic_challenge_ever(server: LiveServer) -> None:
    for headers in ({}, {"Sec-Fetch-Mode": "navigate"}):
        response = requests.get(server.url + "/api/remotes/x", headers=headers, timeout=30)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="framewire"'


def test_every_route_answers_under_api(server: LiveServer) -> None:
    bearer = {"Authorization": f"Bearer {server.token}"}
    for path in ("/videos", "/me", "/storage", "/webhooks/secret"):
        plain = requests.get(server.url + path, headers=bearer, timeout=30)
        under = requests.get(server.url + "/api" + path, headers=bearer, timeout=30)
        assert plain.status_code == under.status_code == 200, path
        assert plain.json().keys() == under.json().keys()
    unknown = requests.get(server.url + "/api/no-such-thing", headers=bearer, timeout=30)
    assert unknown.status_code == 404


def test_bodiless_successes_carry_a_content_type(server: LiveServer) -> None:
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    deleted = server.request("DELETE", f"/api/remotes/{sid}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert deleted.headers["Content-Type"].startswith("text/plain")
