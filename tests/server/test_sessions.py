"""Sessions: agent upload on first connect, reuse, key login, the local transport."""

from __future__ import annotations

import asyncio
import getpass
import shutil
from pathlib import Path
from typing import Callable

import pytest

from server.remote import bundle
from server.remote.local import LocalTransport
from tests.fixtures import SSHD, LiveServer, probe, solid_frames


def connect(server: LiveServer, sshd: SSHD, **fields: object) -> dict:
    body = {"hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user,
            "password": sshd.password, **fields}
    response = server.post_json("/remotes", body)
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    sid = response.json()["sid"]
    assert response.headers["Location"] == f"/remotes/{sid}"
    return server.request("GET", f"/remotes/{sid}").json()


def test_agent_is_uploaded_once_then_reused(server: LiveServer, sshd: SSHD) -> None:
    cache = sshd.home / ".cache" / "framewire"
    shutil.rmtree(cache, ignore_errors=True)
    first = connect(server, sshd)
    agent_file = cache / bundle.build().filename
    assert first["agent"]["uploaded"] is True
    assert first["agent"]["state"] == "running"
    assert agent_file.is_file()
    assert agent_file.read_bytes() == bundle.build().data
    assert str(agent_file.stat().st_uid) == sshd.as_user("id", "-u").stdout.strip()
    stamp = (agent_file.stat().st_ino, agent_file.stat().st_mtime_ns)
    second = connect(server, sshd)
    assert second["agent"]["uploaded"] is False
    assert second["agent"]["state"] == "running"
    assert (agent_file.stat().st_ino, agent_file.stat().st_mtime_ns) == stamp
    assert [p.name for p in cache.glob("agent-*")] == [agent_file.name]


def test_bundle_is_content_hashed_and_reproducible() -> None:
    built = bundle.build()
    bundle.build.cache_clear()
    again = bundle.build()
    assert again.data == built.data
    assert again.filename == f"agent-{again.digest[:20]}.pyz"


def test_key_login_with_server_configured_key(server: LiveServer, sshd: SSHD) -> None:
    response = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                             "username": sshd.user, "agent": None})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    info = server.request("GET", f"/remotes/{response.json()['sid']}").json()
    assert info["agent"]["state"] == "running" and info["username"] == sshd.user


def test_key_login_without_configured_key_is_403(make_server: Callable[..., LiveServer],
                                                 sshd: SSHD) -> None:
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts)})
    response = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                             "username": sshd.user})
    assert response.status_code == 403
    assert response.headers["X-Slycat-Message"] == "Remote authentication failed."


def test_local_transport_for_localhost(make_server: Callable[..., LiveServer],
                                       images: Path, tmp_path: Path) -> None:
    server = make_server()
    response = server.post_json("/remotes", {"hostname": "localhost"})
    assert response.status_code == 200
    sid = response.json()["sid"]
    info = server.request("GET", f"/remotes/{sid}").json()
    assert info["transport"] == "local" and info["agent"]["state"] == "running"
    paths = solid_frames(images, [(255, 0, 0), (0, 255, 0), (0, 0, 255)] * 4)
    vsid = server.post_json(f"/remotes/{sid}/videos",
                            {"content-type": "video/webm", "images": paths}).json()["sid"]
    assert server.wait_video(sid, vsid)["status"] == "succeeded"
    out = tmp_path / "local.webm"
    out.write_bytes(server.request("GET", f"/remotes/{sid}/videos/{vsid}").content)
    info = probe(out)
    assert info["codec"] == "vp9" and info["frames"] == 12


def test_local_transport_can_be_turned_off(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(local={"enabled": False})
    response = server.post_json("/remotes", {"hostname": "localhost", "username": "x",
                                             "password": "y", "port": 1})
    assert response.status_code == 502  # it is then an ordinary SSH host: nothing listens


def test_the_local_transport_is_the_servers_own_account(
        make_server: Callable[..., LiveServer]) -> None:
    server = make_server()
    own = getpass.getuser()
    refused = server.post_json("/remotes", {"hostname": "localhost", "username": "fred"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["source"]["pointer"] == "/username"
    assert refused.headers["X-Slycat-Message"] == (
        "localhost is this machine through the local transport, which reads files as the "
        f"server's own account ({own}), not as fred.")
    assert "connect over SSH" in refused.headers["X-Slycat-Hint"]
    same = server.post_json("/remotes", {"hostname": "localhost", "username": own})
    assert same.status_code == 200
    info = server.request("GET", f"/remotes/{same.json()['sid']}").json()
    assert (info["transport"], info["username"]) == ("local", own)


def test_local_processes_end_without_a_reaping_race(tmp_path: Path, images: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # Signalling a local process that had just exited made Python reap it before
    # asyncio's child watcher did: "Unknown child process pid …" (the demo's warning).
    path = Path(solid_frames(images, [(9, 9, 9)], size=(32, 32))[0])
    size = path.stat().st_size

    async def streams() -> None:
        transport = LocalTransport(str(tmp_path / "agent"), None, str(tmp_path / "work"))
        for _ in range(150):
            channel = await transport.open_stream(str(path), 0, size)
            received = b""
            while chunk := await channel.read(1 << 16):
                received += chunk
            assert received == path.read_bytes()
            channel.close()  # the stream process has exited: nothing to signal
        await transport.close()

    asyncio.run(streams())
    unknown = [r.getMessage() for r in caplog.records if "Unknown child process" in
               r.getMessage()]
    assert unknown == []


def test_the_callers_open_sessions_are_listed(make_server: Callable[..., LiveServer],
                                              sshd: SSHD) -> None:
    """GET /remotes: what a reloaded page or a second tab goes on with."""
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts)})
    assert server.request("GET", "/remotes").json() == {"remotes": []}
    first = connect(server, sshd)
    local = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    listed = server.request("GET", "/remotes").json()["remotes"]
    assert [item["sid"] for item in listed] == [local, first["sid"]]  # newest first
    assert (listed[1]["hostname"], listed[1]["port"], listed[1]["username"]) == (
        "127.0.0.1", sshd.port, sshd.user)
    assert listed[1]["agent"]["state"] == "running" and listed[0]["transport"] == "local"
    assert "password" not in str(listed) and sshd.password not in str(listed)
    assert server.request("DELETE", f"/remotes/{local}").status_code == 204
    assert [item["sid"] for item in server.request("GET", "/remotes").json()["remotes"]] == [
        first["sid"]]
    assert server.request("GET", "/api/remotes").json()["remotes"][0]["sid"] == first["sid"]


def test_a_job_keeps_the_options_it_was_made_with(make_server: Callable[..., LiveServer],
                                                  images: Path) -> None:
    """The status names the request (for "make again"), without its webhooks."""
    server = make_server()
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    solid_frames(images, [(255, 0, 0), (0, 255, 0), (0, 0, 255)] * 2)
    body = {"content-type": "video/mp4", "crf": 30, "preset": "ultrafast", "frame-rate": 12,
            "images": {"directory": str(images), "pattern": "frame*.png"},
            "url_callback": "http://127.0.0.1:9/done?token=hook-secret"}
    vsid = server.post_json(f"/remotes/{sid}/videos", body).json()["sid"]
    status = server.wait_video(sid, vsid)
    assert status["status"] == "succeeded"
    made = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status").json()["request"]
    assert made == {key: value for key, value in body.items() if key != "url_callback"}
    assert "hook-secret" not in str(made)
    listed = server.request("GET", "/storage").json()["videos"][0]
    assert (listed["sid"], listed["port"], listed["hostname"]) == (vsid, 22, "localhost")
    assert "request" not in server.request("GET", f"/remotes/{sid}/videos").json()["videos"][0]
