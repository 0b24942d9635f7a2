"""Users mode: the users file, the login page and cookie, XSRF, API tokens,
HTTP Basic for Slycat's client, a trusted proxy header, admins, failed-login
pauses; and the limits every user meets."""

from __future__ import annotations

import base64
import contextlib
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import requests

from server.store import JobRecord
from server.users import UserFile
from tests.fixtures import SSHD, LiveServer, solid_frames

USERS = {"mode": "users"}


def users_server(make_server: Callable[..., LiveServer], *accounts: tuple[str, str, str],
                 **sections: dict[str, Any]) -> LiveServer:
    server = make_server(auth={**USERS, **sections.pop("auth", {})}, **sections)
    users = UserFile(server.config.users_file)
    for name, password, role in accounts:
        users.add(name, password, role)
    return server


def browser(server: LiveServer) -> requests.Session:
    """A client with no credentials but the cookies a browser would keep."""
    session = requests.Session()
    page = session.get(server.url + "/login", timeout=30)
    assert page.status_code == 200
    return session


def log_in(server: LiveServer, name: str, password: str) -> requests.Session:
    session = browser(server)
    response = session.post(server.url + "/login", data={
        "username": name, "password": password, "_xsrf": session.cookies["_xsrf"]},
        allow_redirects=False, timeout=30)
    assert response.status_code == 303, response.text
    return session


def xsrf(session: requests.Session) -> dict[str, str]:
    return {"X-XSRFToken": session.cookies["_xsrf"]}


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()
                                                         ).decode()}


def test_login_page_cookie_and_xsrf(make_server: Callable[..., LiveServer]) -> None:
    server = users_server(make_server, ("alice", "correct horse", "user"))
    session = requests.Session()
    page = session.get(server.url + "/login?next=/videos", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'name="_xsrf"' in page.text and 'value="/videos"' in page.text
    token = session.cookies["_xsrf"]

    forged = requests.post(server.url + "/login", data={"username": "alice",
                                                        "password": "correct horse"},
                           allow_redirects=False, timeout=30)
    assert forged.status_code == 403 and forged.json()["errors"][0]["code"] == "xsrf"

    wrong = session.post(server.url + "/login", data={
        "username": "alice", "password": "wrong horse", "_xsrf": token}, timeout=30)
    assert wrong.status_code == 401 and "Wrong user name or password." in wrong.text
    assert "framewire_user" not in session.cookies

    right = session.post(server.url + "/login", data={
        "username": "alice", "password": "correct horse", "_xsrf": token,
        "next": "//evil.example/steal"}, allow_redirects=False, timeout=30)
    assert right.status_code == 303 and right.headers["Location"] == "/"
    cookie = right.headers["Set-Cookie"]
    assert "framewire_user=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = session.get(server.url + "/me", timeout=30)
    assert me.json() == {"user": "alice", "role": "user", "mode": "users", "via": "cookie"}

    # A state-changing request on the cookie needs the XSRF header.
    refused = session.post(server.url + "/tokens", json={"name": "laptop"}, timeout=30)
    assert refused.status_code == 403
    assert refused.headers["X-Slycat-Message"] == "The XSRF token is missing or wrong."
    assert session.get(server.url + "/tokens", timeout=30).json() == {"tokens": []}
    created = session.post(server.url + "/tokens", json={"name": "laptop"},
                           headers=xsrf(session), timeout=30)
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"

    # A new password ends every cookie of the old one.
    UserFile(server.config.users_file).set_password("alice", "battery staple")
    assert session.get(server.url + "/me", timeout=30).status_code == 401
    logout = log_in(server, "alice", "battery staple")
    assert logout.post(server.url + "/logout", headers=xsrf(logout),
                       timeout=30).status_code == 204
    assert logout.get(server.url + "/me", timeout=30).status_code == 401


def test_api_tokens_are_per_user_shown_once_and_stored_hashed(
        make_server: Callable[..., LiveServer]) -> None:
    server = users_server(make_server, ("alice", "alice-password", "user"),
                          ("bob", "bob-password", "user"))
    created = requests.post(server.url + "/tokens", json={"name": "ci"},
                            headers=basic("alice", "alice-password"), timeout=30).json()
    token = created["token"]
    assert re.fullmatch(r"fwt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", token)
    bearer = {"Authorization": f"Bearer {token}"}
    assert requests.get(server.url + "/me", headers=bearer, timeout=30).json()["user"] == \
        "alice"
    listed = requests.get(server.url + "/tokens", headers=bearer, timeout=30)
    assert [t["name"] for t in listed.json()["tokens"]] == ["ci"]
    assert token.split("_", 2)[2] not in listed.text
    stored = Path(server.config.database).read_bytes()
    assert token.encode() not in stored and token.split("_", 2)[2].encode() not in stored
    users_file = Path(server.config.users_file).read_text()
    assert "alice-password" not in users_file and "scrypt$" in users_file
    assert oct(Path(server.config.users_file).stat().st_mode & 0o777) == "0o600"

    # Bob can neither see nor revoke Alice's token: 404, as for anything not his.
    bob = basic("bob", "bob-password")
    assert requests.get(server.url + "/tokens", headers=bob, timeout=30).json() == {
        "tokens": []}
    assert requests.delete(server.url + f"/tokens/{created['id']}", headers=bob,
                           timeout=30).status_code == 404
    assert requests.delete(server.url + f"/tokens/{created['id']}", headers=bearer,
                           timeout=30).status_code == 204
    gone = requests.get(server.url + "/me", headers=bearer, timeout=30)
    assert gone.status_code == 401 and "framewire token create" in gone.headers[
        "X-Slycat-Hint"]
    with contextlib.closing(sqlite3.connect(server.config.database)) as db:
        assert db.execute("SELECT COUNT(*) FROM api_tokens").fetchone() == (0,)


def test_basic_auth_for_slycat_clients_and_its_xsrf_rule(
        make_server: Callable[..., LiveServer]) -> None:
    server = users_server(make_server, ("alice", "alice-password", "user"))
    good = basic("alice", "alice-password")
    assert requests.get(server.url + "/me", headers=good, timeout=30).json()["via"] == "basic"
    wrong = requests.get(server.url + "/me", headers=basic("alice", "nope"), timeout=30)
    # Never a Basic challenge: no browser is ever asked for (and keeps) credentials
    # it would lend a forged request, so Basic needs no XSRF token.
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    for content_type in ("application/json", "text/plain"):
        post = requests.post(server.url + "/remotes", data="{}", headers={
            **good, "Content-Type": content_type}, timeout=30)
        assert post.status_code == 400, content_type
        assert post.headers["X-Slycat-Message"] == "hostname is required."


def test_failed_logins_pause_the_name_they_claim(make_server: Callable[..., LiveServer]
                                                ) -> None:
    server = users_server(make_server, ("alice", "alice-password", "user"),
                          ("bob", "bob-password", "user"), auth={"max_failed_logins": 3})
    for _ in range(3):
        assert requests.get(server.url + "/me", headers=basic("alice", "guess"),
                            timeout=30).status_code == 401
    paused = requests.get(server.url + "/me", headers=basic("alice", "alice-password"),
                          timeout=30)
    assert paused.status_code == 429
    assert 1 <= int(paused.headers["Retry-After"]) <= 600
    assert paused.headers["X-Slycat-Message"] == (
        "Too many failed logins with these credentials from this address.")
    # Somebody else from the same address is not paused.
    assert requests.get(server.url + "/me", headers=basic("bob", "bob-password"),
                        timeout=30).json()["user"] == "bob"


def test_a_failing_token_behind_a_proxy_locks_out_itself_not_the_site(
        make_server: Callable[..., LiveServer]) -> None:
    # Behind a reverse proxy every request comes from its address (here 127.0.0.1).
    server = users_server(make_server, ("alice", "alice-password", "user"),
                          ("bob", "bob-password", "user"),
                          auth={"trusted_header": "Remote-User",
                                "trusted_proxies": ["127.0.0.1/32"]})
    token = requests.post(server.url + "/tokens", json={"name": "script"},
                          headers=basic("alice", "alice-password"), timeout=30).json()["token"]
    wrong = {"Authorization": "Bearer fwt_000000000000_not-a-real-token"}
    for _ in range(10):
        assert requests.get(server.url + "/me", headers=wrong, timeout=30).status_code == 401
    throttled = requests.get(server.url + "/me", headers=wrong, timeout=30)
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers
    # Everybody else behind the proxy goes on: a valid token, Basic, the proxy's header.
    good = requests.get(server.url + "/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=30)
    assert good.status_code == 200 and good.json()["user"] == "alice"
    assert requests.get(server.url + "/me", headers=basic("bob", "bob-password"),
                        timeout=30).json()["user"] == "bob"
    assert requests.get(server.url + "/me", headers={"Remote-User": "bob"},
                        timeout=30).json()["via"] == "header"
    assert requests.get(server.url + "/me", headers=wrong, timeout=30).status_code == 429


def test_a_failing_token_does_not_stop_the_server_token(server: LiveServer) -> None:
    wrong = {"Authorization": "Bearer not-the-token"}
    for _ in range(10):
        assert requests.get(server.url + "/videos", headers=wrong, timeout=30).status_code \
            == 401
    assert requests.get(server.url + "/videos", headers=wrong, timeout=30).status_code == 429
    right = requests.get(server.url + "/videos",
                         headers={"Authorization": f"Bearer {server.token}"}, timeout=30)
    assert right.status_code == 200


def test_trusted_proxy_header_is_off_by_default(make_server: Callable[..., LiveServer]
                                                ) -> None:
    plain = users_server(make_server, ("alice", "alice-password", "admin"))
    assert requests.get(plain.url + "/me", headers={"Remote-User": "alice"},
                        timeout=30).status_code == 401
    elsewhere = users_server(make_server, auth={"trusted_header": "Remote-User",
                                                "trusted_proxies": ["10.0.0.0/8"]})
    assert requests.get(elsewhere.url + "/me", headers={"Remote-User": "alice"},
                        timeout=30).status_code == 401, "only the proxy's address is trusted"

    proxied = users_server(make_server, ("alice", "alice-password", "admin"),
                           auth={"trusted_header": "Remote-User"})
    me = requests.get(proxied.url + "/me", headers={"Remote-User": "alice"}, timeout=30)
    assert me.json() == {"user": "alice", "role": "admin", "mode": "users", "via": "header"}
    sso = requests.get(proxied.url + "/me", headers={"Remote-User": "carol"}, timeout=30)
    assert sso.json()["user"] == "carol" and sso.json()["role"] == "user"
    bad = requests.get(proxied.url + "/me", headers={"Remote-User": "../root"}, timeout=30)
    assert bad.status_code == 401
    # Browsers behind the proxy send cookies by themselves: XSRF applies.
    session = requests.Session()
    session.headers["Remote-User"] = "carol"
    session.get(proxied.url + "/me", timeout=30)
    assert session.post(proxied.url + "/tokens", json={"name": "x"},
                        timeout=30).status_code == 403
    assert session.post(proxied.url + "/tokens", json={"name": "x"}, headers=xsrf(session),
                        timeout=30).status_code == 201


def test_admins_list_everything_others_may_not(make_server: Callable[..., LiveServer],
                                               sshd: SSHD, images: Path) -> None:
    server = users_server(make_server, ("root-admin", "admin-password", "admin"),
                          ("alice", "alice-password", "user"),
                          ssh={"known_hosts": str(sshd.known_hosts)})
    alice = basic("alice", "alice-password")
    opened = requests.post(server.url + "/remotes", json={
        "hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user,
        "password": sshd.password}, headers=alice, timeout=60)
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Message")
    sid = opened.json()["sid"]
    earlier, later = (requests.post(server.url + f"/remotes/{sid}/videos", json={
        "content-type": "video/mp4", "images": solid_frames(images, [(0, 0, 255)] * 2)},
        headers=alice, timeout=60) for _ in range(2))
    assert earlier.status_code == later.status_code == 202
    for path in ("/admin/videos", "/admin/sessions"):
        refused = requests.get(server.url + path, headers=alice, timeout=30)
        assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == \
            "admin-required"
    admin = basic("root-admin", "admin-password")
    videos = requests.get(server.url + "/admin/videos", headers=admin, timeout=30).json()
    made = [later.json()["sid"], earlier.json()["sid"]]  # newest first
    assert [(v["sid"], v["owner"]) for v in videos["videos"]] == [
        (made[0], "alice"), (made[1], "alice")]
    first = requests.get(server.url + "/admin/videos?user=alice&limit=1", headers=admin,
                         timeout=30).json()
    assert [v["sid"] for v in first["videos"]] == [made[0]]
    rest = requests.get(server.url + first["next"], headers=admin, timeout=30).json()
    assert [v["sid"] for v in rest["videos"]] == [made[1]] and rest["next"] is None
    only = requests.get(server.url + "/admin/videos?user=nobody", headers=admin, timeout=30)
    assert only.json() == {"videos": [], "next": None}
    sessions = requests.get(server.url + "/admin/sessions", headers=admin, timeout=30).json()
    assert [(s["owner"], s["username"]) for s in sessions["sessions"]] == [("alice", sshd.user)]
    assert sid not in str(sessions), "an admin sees sessions, never their ids"
    # The admin's role lists; it does not open other users' sessions.
    assert requests.get(server.url + f"/remotes/{sid}", headers=admin,
                        timeout=30).status_code == 404


def test_local_transport_is_off_in_users_mode(make_server: Callable[..., LiveServer],
                                              sshd: SSHD) -> None:
    server = users_server(make_server, ("alice", "alice-password", "user"),
                          ssh={"known_hosts": str(sshd.known_hosts)})
    alice = basic("alice", "alice-password")
    response = requests.post(server.url + "/remotes", json={
        "hostname": "localhost", "port": sshd.port, "username": sshd.user,
        "password": sshd.password}, headers=alice, timeout=60)
    # "localhost" went over SSH, as the test user, not to a local agent
    # running as the server's own account.
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    info = requests.get(server.url + f"/remotes/{response.json()['sid']}", headers=alice,
                        timeout=30).json()
    assert info["transport"] == "ssh" and info["username"] == sshd.user
    enabled = users_server(make_server, ("alice", "alice-password", "user"),
                           local={"enabled": True})
    opened = requests.post(enabled.url + "/remotes", json={"hostname": "localhost"},
                           headers=alice, timeout=60)
    assert opened.status_code == 200
    info = requests.get(enabled.url + f"/remotes/{opened.json()['sid']}", headers=alice,
                        timeout=30).json()
    assert info["transport"] == "local"


def test_limits(make_server: Callable[..., LiveServer], images: Path) -> None:
    server = make_server(limits={"max_body_bytes": 4096, "max_images": 2,
                                 "sessions_per_user": 1, "jobs_per_user": 1,
                                 "requests_per_minute": 1000})
    big = server.post_json("/remotes", {"hostname": "localhost", "pad": "x" * 5000})
    assert big.status_code == 413
    assert big.headers["X-Slycat-Message"] == \
        "The request body is over the limit of 4096 bytes."
    assert big.json()["errors"][0]["code"] == "payload-too-large"

    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    second = server.post_json("/remotes", {"hostname": "localhost"})
    assert second.status_code == 429 and second.json()["errors"][0]["code"] == \
        "too-many-sessions"

    frames = solid_frames(images, [(1, 1, 1)] * 3)
    many = server.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                       "images": frames})
    assert many.status_code == 400
    assert many.headers["X-Slycat-Message"].startswith(
        "images selects 3 images; this server allows at most 2 per job")
    pattern = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": {"directory": str(images), "pattern": "*.png"}})
    assert pattern.status_code == 400 and "at most 2" in pattern.headers["X-Slycat-Message"]
    sneaky = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": frames[:1], "max-images": 10})
    assert sneaky.status_code == 400
    assert sneaky.json()["errors"][0]["source"]["pointer"] == "/max-images"

    # One job queued or running at a time.
    now = time.time()
    server.call(server.services.store.add(JobRecord(
        vsid="f" * 32, sid=sid, owner="owner", hostname="localhost", port=22, username="x",
        content_type="video/mp4", frames=1, state="running", status={"status": "running"},
        created=now, updated=now)))
    busy = server.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                       "images": frames[:1]})
    assert busy.status_code == 429 and busy.json()["errors"][0]["code"] == "too-many-jobs"


def test_request_rate_per_user(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(limits={"requests_per_minute": 5})
    codes = [server.request("GET", "/videos").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    limited = server.request("GET", "/videos")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-Slycat-Message"] == \
        "Too many requests: the limit is 5 a minute."

