"""Nobody reaches what is not theirs; hostile input executes nothing; secrets
never reach a log line or a file of the server."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import asyncssh
import pytest
import requests

from server.users import UserFile
from tests.fixtures import SSHD, LiveServer, free_port, shared_dir, solid_frames
from tests.webhook_receiver import Receiver


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()
                                                         ).decode()}


class Client:
    def __init__(self, server: LiveServer, headers: dict[str, str]) -> None:
        self.server, self.headers = server, headers

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        extra = {"json": body} if body is not None else {}
        return requests.request(method, self.server.url + path, headers=self.headers,
                                timeout=60, **extra)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(free_port()).start()
    yield made
    made.stop()


def open_session(client: Client, sshd: SSHD) -> str:
    response = client.call("POST", "/remotes", {
        "hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user,
        "password": sshd.password})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return str(response.json()["sid"])


def wait_done(client: Client, sid: str, vsid: str) -> dict[str, Any]:
    response = client.call("GET", f"/remotes/{sid}/videos/{vsid}/status?block=true&timeout=60")
    assert response.status_code == 200
    return dict(response.json())


def test_another_user_gets_404_everywhere_and_changes_nothing(
        make_server: Callable[..., LiveServer], sshd: SSHD, images: Path,
        receiver: Receiver) -> None:
    server = make_server(auth={"mode": "users"}, ssh={"known_hosts": str(sshd.known_hosts)})
    users = UserFile(server.config.users_file)
    users.add("alice", "alice-password")
    users.add("bob", "bob-password")
    alice = Client(server, basic("alice", "alice-password"))
    bob = Client(server, basic("bob", "bob-password"))

    frames = solid_frames(images, [(200, 30, 30)] * 3)
    a_sid = open_session(alice, sshd)
    created = alice.call("POST", f"/remotes/{a_sid}/videos", {
        "content-type": "video/mp4", "images": frames, "url_callback": receiver.url})
    assert created.status_code == 202
    video = created.json()["sid"]
    assert wait_done(alice, a_sid, video)["status"] == "succeeded"
    deadline = time.monotonic() + 30
    while not receiver.received:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    log = alice.call("GET", f"/remotes/{a_sid}/videos/{video}/webhooks").json()
    delivery = log["deliveries"][0]["id"]
    before = {
        "status": alice.call("GET", f"/remotes/{a_sid}/videos/{video}/status").json(),
        "video": alice.call("GET", f"/remotes/{a_sid}/videos/{video}").content,
        "log": log,
        "storage": alice.call("GET", "/storage").json(),
        "session": alice.call("GET", f"/remotes/{a_sid}").json()["sid"],
    }

    # Bob, on the same remote account, with a session of his own.
    b_sid = open_session(bob, sshd)
    unknown = secrets.token_hex(16)
    frame = quote(frames[0])
    calls: list[tuple[str, str, Any]] = [
        ("GET", f"/remotes/{a_sid}", None),
        ("DELETE", f"/remotes/{a_sid}", None),
        ("POST", f"/remotes/{a_sid}/browse/tmp", {}),
        ("GET", f"/remotes/{a_sid}/file{frame}", None),
        ("HEAD", f"/remotes/{a_sid}/file{frame}", None),
        ("GET", f"/remotes/{a_sid}/image{frame}", None),
        ("POST", f"/remotes/{a_sid}/videos", {"content-type": "video/mp4", "images": frames}),
        ("GET", f"/remotes/{a_sid}/videos", None),
    ]
    for sid in (a_sid, b_sid):
        base = f"/remotes/{sid}/videos/{video}"
        calls += [
            ("GET", f"{base}/status", None),
            ("GET", f"{base}/status?block=true&timeout=1", None),
            ("GET", f"{base}/events", None),
            ("GET", f"{base}/webhooks", None),
            ("POST", f"{base}/webhooks/{delivery}/replay", {}),
            ("POST", f"{base}/cancel", {}),
            ("GET", f"{base}/outputs/video", None),
            ("HEAD", f"{base}/outputs/video", None),
            ("GET", f"{base}/preview", None),
            ("HEAD", f"{base}/preview", None),
            ("GET", base, None),
            ("HEAD", base, None),
            ("DELETE", base, None),
        ]
    for method, path, body in calls:
        got = bob.call(method, path, body)
        assert got.status_code == 404, (method, path, got.status_code)
        # Exactly what an id that never existed gets: nothing leaks.
        twin = bob.call(method, path.replace(a_sid, unknown).replace(video, unknown), body)
        assert twin.status_code == 404
        assert got.headers.get("X-Slycat-Message") == twin.headers.get("X-Slycat-Message"), \
            (method, path)

    assert bob.call("GET", f"/remotes/{b_sid}/videos?ids={video}").json() == {
        "videos": [], "next": None}
    assert bob.call("GET", f"/videos?ids={video}").json() == {"videos": [], "next": None}
    assert bob.call("GET", "/videos").json() == {"videos": [], "next": None}
    # Paging from alice's job answers as from an id that never existed.
    for listing in ("/videos", f"/remotes/{b_sid}/videos"):
        got = bob.call("GET", f"{listing}?before={video}")
        twin = bob.call("GET", f"{listing}?before={unknown}")
        assert got.status_code == twin.status_code == 400
        assert got.headers["X-Slycat-Message"] == twin.headers["X-Slycat-Message"]
    assert video not in bob.call("GET", "/storage").text
    for dry_run in (True, False):
        deleted = bob.call("POST", "/storage/delete", {"videos": [video], "dry_run": dry_run})
        assert deleted.status_code == 200 and deleted.json()["matched"] == []
    assert bob.call("GET", "/admin/videos").status_code == 403

    # Alice sees everything as it was.
    assert alice.call("GET", f"/remotes/{a_sid}/videos/{video}/status").json() == \
        before["status"]
    assert alice.call("GET", f"/remotes/{a_sid}/videos/{video}").content == before["video"]
    assert alice.call("GET", f"/remotes/{a_sid}/videos/{video}/webhooks").json() == \
        before["log"]
    assert alice.call("GET", "/storage").json() == before["storage"]
    assert alice.call("GET", f"/remotes/{a_sid}").json()["sid"] == before["session"]
    assert len(receiver.received) == 1, "Bob's replay must not have sent anything"


HOSTILE = [
    "; touch {canary}",
    "$(touch {canary})",
    "`touch {canary}`",
    "' ; touch {canary} ; '",
    '" ; touch {canary} ; "',
    "x\ntouch {canary}",
    "x\rtouch {canary}",
    "../../../../../etc/passwd",
    "x\x00touch {canary}",
    "|touch {canary}",
    "%{{eif\\:system(touch {canary})}}",
    "x" * 20000,
]


@pytest.fixture
def canary() -> Iterator[Path]:
    place = shared_dir("framewire-canary-")
    yield place / "pwned"
    assert not (place / "pwned").exists(), "a hostile value was executed"
    for child in place.iterdir():
        child.unlink()
    place.rmdir()


def test_hostile_values_are_refused_and_execute_nothing(
        server: LiveServer, remote: str, sshd: SSHD, images: Path, canary: Path) -> None:
    frames = solid_frames(images, [(10, 200, 10)] * 2)
    values = [text.format(canary=canary) for text in HOSTILE]

    def refused(response: requests.Response, pointer: str | None = None) -> None:
        assert response.status_code == 400, (response.status_code, response.text[:300])
        assert response.headers["X-Slycat-Message"]
        if pointer is not None:
            assert response.json()["errors"][0]["source"]["pointer"] == pointer, \
                response.json()

    for value in values:
        refused(server.post_json("/remotes", {"hostname": value, "username": sshd.user}),
                "/hostname")
        refused(server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                              "username": value, "password": "x"}),
                "/username")
        refused(server.post_json("/remotes", {"hostname": "127.0.0.1", "port": value,
                                              "username": sshd.user}), "/port")
        video = {"content-type": "video/mp4", "images": frames}
        refused(server.post_json(f"/remotes/{remote}/videos",
                                 {"content-type": "video/mp4", "images": [value]}))
        if "/" not in value and "\x00" not in value:
            refused(server.post_json(f"/remotes/{remote}/videos", {
                "content-type": "video/mp4",
                "images": {"directory": str(images), "pattern": value}}),
                "/images/pattern")
        for option in ("preset", "pixel-format", "codec", "background", "frame-rate", "fit"):
            refused(server.post_json(f"/remotes/{remote}/videos", {**video, option: value}),
                    f"/{option}")
        refused(server.post_json(f"/remotes/{remote}/videos", {**video, "url_callback": value}),
                "/url_callback")
        refused(server.post_json(f"/remotes/{remote}/videos",
                                 {**video, "outputs": [{"name": value,
                                                        "content-type": "video/mp4"}]}),
                "/outputs/0/name")
        browsed = server.post_json(f"/remotes/{remote}/browse/{quote(value, safe='')}", {})
        if value.startswith("../"):
            # The remote account's own files are its to browse: ../ is no escape
            # from anything (framewire is that account, not a sandbox).
            assert browsed.status_code == 200 and browsed.json()["names"] == ["passwd"]
        else:
            refused(browsed)
    # As text to draw, the same values are only text: drawn, never run.
    drawn = server.post_json(f"/remotes/{remote}/videos", {
        "content-type": "video/mp4",
        "layout": {"type": "grid", "sources": [
            {"images": frames, "label": values[1]}, {"images": frames, "label": values[5]}]}})
    assert drawn.status_code == 202, drawn.headers.get("X-Slycat-Message")
    status = server.wait_video(remote, drawn.json()["sid"])
    assert status["status"] == "succeeded", status.get("message")
    for place in (sshd.home, images, Path.cwd()):
        assert not (place / "pwned").exists()


def test_secrets_reach_no_log_line_and_no_file(make_server: Callable[..., LiveServer],
                                               sshd: SSHD, tmp_path: Path,
                                               images: Path) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    keeper = Keep(logging.DEBUG)
    keeper.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(keeper)
    root.setLevel(logging.DEBUG)
    asyncssh.set_debug_level(2)
    try:
        data_dir = tmp_path / "state"
        audit_file = data_dir / "audit.log"
        server = make_server(auth={"mode": "users"},
                             ssh={"known_hosts": str(sshd.known_hosts)},
                             server={"data_dir": str(data_dir), "audit_log": str(audit_file)})
        from server import audit
        audit.attach_file(str(audit_file))
        login_password = "alice-" + secrets.token_urlsafe(12)
        wrong_remote = "wrong-" + secrets.token_urlsafe(12)
        UserFile(server.config.users_file).add("alice", login_password)

        browser = requests.Session()
        browser.get(server.url + "/login", timeout=30)
        assert browser.post(server.url + "/login", data={
            "username": "alice", "password": login_password,
            "_xsrf": browser.cookies["_xsrf"]}, timeout=30).status_code == 200
        alice = Client(server, basic("alice", login_password))
        token = alice.call("POST", "/tokens", {"name": "t"}).json()["token"]
        bearer = Client(server, {"Authorization": f"Bearer {token}"})
        refused = bearer.call("POST", "/remotes", {
            "hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user,
            "password": wrong_remote})
        assert refused.status_code == 403
        sid = open_session(bearer, sshd)
        frames = solid_frames(images, [(1, 2, 3)] * 2)
        job = bearer.call("POST", f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                             "images": frames})
        vsid = job.json()["sid"]
        wait_done(bearer, sid, vsid)
        assert bearer.call("POST", f"/remotes/{sid}/videos/{vsid}/cancel", {}).status_code \
            in (200, 409)
        assert bearer.call("DELETE", f"/remotes/{sid}/videos/{vsid}").status_code == 204
        assert bearer.call("DELETE", f"/remotes/{sid}").status_code == 204
        server.stop()
    finally:
        root.removeHandler(keeper)
        root.setLevel(old_level)
        asyncssh.set_debug_level(1)
        for handler in list(logging.getLogger("framewire.audit").handlers):
            logging.getLogger("framewire.audit").removeHandler(handler)
            handler.close()

    secrets_ = {"remote password": sshd.password, "wrong remote password": wrong_remote,
                "login password": login_password, "API token": token,
                "token secret": token.split("_", 2)[2]}
    text = "\n".join(lines)
    assert any("asyncssh" in line for line in lines), "asyncssh's debug lines were kept"
    for name, value in secrets_.items():
        assert value not in text, f"the {name} was logged"
    checked = 0
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            checked += 1
            for name, value in secrets_.items():
                assert value.encode() not in content, f"the {name} is in {path}"
    assert checked >= 3  # the database, the users file, the audit log, the agent cache
    server_lines = "\n".join(line for line in lines if not line.startswith("urllib3"))
    assert sid not in server_lines and vsid not in server_lines, "ids are shortened in logs"

    audit_lines = audit_file.read_text().splitlines()
    events = [line.split(" audit ")[1].split()[0] for line in audit_lines]
    for event in ("login", "token-create", "session-refused", "session-create", "job-create",
                  "job-delete", "session-delete"):
        assert event in events, (event, events)
    assert all("user=alice" in line for line in audit_lines)
    assert json.dumps(audit_lines)  # plain text lines
    assert os.stat(data_dir).st_mode & 0o077 == 0
