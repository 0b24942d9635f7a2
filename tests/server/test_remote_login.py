"""Remote login: host key policies against the real sshd, server keys per host
and user, and the keyboard-interactive relay against an in-process asyncssh
server that asks for a password and then a one-time code."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import asyncssh
import pytest
import requests

from server.config import HostConfig
from server.users import UserFile
from tests.fixtures import SSHD, LiveServer, free_port, probe, solid_frames

PASSWORD = "kbd-password-1"
CODE = "314159"


def login(server: LiveServer, sshd: SSHD, **extra: Any) -> requests.Response:
    return server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                         "username": sshd.user, "password": sshd.password,
                                         **extra})


def other_key(tmp_path: Path) -> tuple[str, str]:
    """A host key line that is not the sshd's, and its fingerprint."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    kind, data = key.export_public_key("openssh").decode().split()[:2]
    return f"{kind} {data}", key.get_fingerprint()


def test_unknown_host_key_is_refused_under_strict(make_server: Callable[..., LiveServer],
                                                   sshd: SSHD, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    server = make_server(ssh={"known_hosts": str(known_hosts)})
    response = login(server, sshd)
    assert response.status_code == 400
    body = response.json()["errors"][0]
    assert body["code"] == "unknown-host-key"
    message = response.headers["X-Slycat-Message"]
    assert message == f"Unknown host key for 127.0.0.1:{sshd.port}: {sshd.host_fingerprint}"
    hint = response.headers["X-Slycat-Hint"]
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known_hosts}" in hint
    assert 'host_key_policy = "accept-new"' in hint
    assert not known_hosts.exists(), "strict never writes known_hosts"


@pytest.mark.parametrize("policy", ["strict", "accept-new"])
def test_a_changed_host_key_is_refused_with_both_fingerprints(
        make_server: Callable[..., LiveServer], sshd: SSHD, tmp_path: Path,
        policy: str) -> None:
    known_hosts = tmp_path / "known_hosts"
    line, old_fingerprint = other_key(tmp_path)
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {line}\n")
    server = make_server(ssh={"known_hosts": str(known_hosts), "host_key_policy": policy})
    response = login(server, sshd)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "host-key-changed"
    assert response.headers["X-Slycat-Message"] == (
        f"The host key of 127.0.0.1:{sshd.port} has changed: it offered "
        f"{sshd.host_fingerprint}, known_hosts has {old_fingerprint}.")
    assert "ssh-keygen -R" in response.headers["X-Slycat-Hint"]
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} {line}\n", "left as it was"


def test_accept_new_records_the_first_key(make_server: Callable[..., LiveServer],
                                          sshd: SSHD, tmp_path: Path) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"
    server = make_server(ssh={"known_hosts": str(known_hosts)})
    server.config.hosts["127.0.0.1"] = HostConfig(host_key_policy="accept-new")
    response = login(server, sshd)
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    public = (Path(sshd.known_hosts).read_text().split()[1:3])
    assert known_hosts.read_text() == f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n"
    assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"
    # Once recorded, the key is simply known: strict accepts it, and it is
    # written only once.
    strict = make_server(ssh={"known_hosts": str(known_hosts)})
    assert login(strict, sshd).status_code == 200
    assert login(server, sshd).status_code == 200
    assert len(known_hosts.read_text().splitlines()) == 1


def test_server_keys_per_host_serve_only_their_users(make_server: Callable[..., LiveServer],
                                                     sshd: SSHD) -> None:
    server = make_server(auth={"mode": "users"}, ssh={"known_hosts": str(sshd.known_hosts),
                                                      "client_keys": [str(sshd.client_key)]})
    users = UserFile(server.config.users_file)
    users.add("alice", "alice-password")
    users.add("bob", "bob-password")

    def open_as(name: str) -> requests.Response:
        auth = base64.b64encode(f"{name}:{name}-password".encode()).decode()
        return requests.post(server.url + "/remotes", json={
            "hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user},
            headers={"Authorization": f"Basic {auth}"}, timeout=60)

    # Users mode ignores [ssh] client_keys: they would let anyone in.
    assert open_as("alice").status_code == 403
    server.config.hosts["127.0.0.1"] = HostConfig(client_keys=[str(sshd.client_key)],
                                                  key_users=["alice"])
    opened = open_as("alice")
    assert opened.status_code == 200, opened.headers.get("X-Slycat-Message")
    refused = open_as("bob")
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "remote-auth-failed"


# -- keyboard-interactive ------------------------------------------------------


class TwoFactorServer(asyncssh.SSHServer):
    """Asks for a password, then a one-time code; nothing else is accepted."""

    def begin_auth(self, username: str) -> bool:
        self.stage = 0
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return True

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> Any:
        self.stage = 0
        return "", "", "", [("Password: ", False)]

    def validate_kbdint_response(self, username: str, responses: Any) -> Any:
        if self.stage == 0:
            if list(responses) != [PASSWORD]:
                return False
            self.stage = 1
            return ("Two-factor", "Enter the code your token shows.", "",
                    [("One-time code: ", True)])
        return list(responses) == [CODE]


class HomeSFTP(asyncssh.SFTPServer):
    """SFTP whose relative paths start at ``root``, like a login's home directory."""

    def __init__(self, channel: Any, root: Path) -> None:
        super().__init__(channel)
        self.root = os.fsencode(root)

    def map_path(self, path: bytes) -> bytes:
        return path if path.startswith(b"/") else os.path.join(self.root, path)

    def reverse_map_path(self, path: bytes) -> bytes:
        return path


class InProcessSSH:
    """An asyncssh server in a thread of its own: SFTP with ``root`` as home, and
    exec requests run as local processes there (so the real agent starts)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.loop = asyncio.new_event_loop()
        self.processes: list[Any] = []
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncssh.create_server(
            TwoFactorServer, "127.0.0.1", self.port, server_host_keys=[self.key],
            process_factory=self._exec,
            sftp_factory=lambda channel: HomeSFTP(channel, self.root),
            encoding=None))
        ready.set()
        self.loop.run_forever()

    async def _exec(self, process: Any) -> None:
        child = await asyncio.create_subprocess_shell(
            process.command, cwd=self.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "HOME": str(self.root)},
            start_new_session=True)
        self.processes.append(child)
        await process.redirect(stdin=child.stdin, stdout=child.stdout, stderr=child.stderr)
        process.exit(await child.wait())
        await process.wait_closed()  # asyncssh awaits the redirect's clean-up here

    def known_hosts_line(self) -> str:
        kind, data = self.key.export_public_key("openssh").decode().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {data}\n"

    def stop(self) -> None:
        async def shut() -> None:
            for child in self.processes:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), 5)
            except asyncio.TimeoutError:
                pass
        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def two_factor(tmp_path: Path) -> Iterator[InProcessSSH]:
    root = tmp_path / "home"
    root.mkdir()
    server = InProcessSSH(root)
    yield server
    server.stop()


def test_keyboard_interactive_relay_with_a_one_time_code(
        make_server: Callable[..., LiveServer], two_factor: InProcessSSH,
        tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(two_factor.known_hosts_line())
    server = make_server(ssh={"known_hosts": str(known_hosts)})
    target = {"hostname": "127.0.0.1", "port": two_factor.port, "username": "analyst"}

    # The password answers the password prompt; the code is asked for.
    first = server.post_json("/remotes", {**target, "password": PASSWORD})
    assert first.status_code == 401, first.text
    assert first.headers["X-Slycat-Message"] == "The remote host asks for more answers."
    challenge = first.json()["challenge"]
    assert challenge["prompts"] == [{"prompt": "One-time code: ", "echo": True}]
    assert challenge["name"] == "Two-factor"
    assert challenge["instructions"] == "Enter the code your token shows."
    assert 0 < challenge["expires_in"] <= 600
    assert first.json()["errors"][0]["code"] == "remote-challenge"

    miscounted = server.post_json("/remotes", {"challenge": challenge["id"],
                                               "responses": [CODE, "extra"]})
    assert miscounted.status_code == 400
    assert miscounted.json()["errors"][0]["source"]["pointer"] == "/responses"
    answered = server.post_json("/remotes", {"challenge": challenge["id"],
                                             "responses": [CODE]})
    assert answered.status_code == 200, answered.headers.get("X-Slycat-Message")
    sid = answered.json()["sid"]
    info = server.request("GET", f"/remotes/{sid}").json()
    assert info["transport"] == "ssh" and info["agent"]["state"] == "running"
    listing = server.post_json(f"/remotes/{sid}/browse{two_factor.root}", {})
    assert listing.status_code == 200 and ".cache" in listing.json()["names"]

    # A challenge answers once.
    again = server.post_json("/remotes", {"challenge": challenge["id"], "responses": [CODE]})
    assert again.status_code == 404
    assert again.json()["errors"][0]["code"] == "unknown-challenge"
    server.stop()  # its SSH connection ends before the SSH server does


def test_keyboard_interactive_without_a_password_and_with_a_wrong_code(
        make_server: Callable[..., LiveServer], two_factor: InProcessSSH,
        tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(two_factor.known_hosts_line())
    server = make_server(ssh={"known_hosts": str(known_hosts)})
    first = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": two_factor.port,
                                          "username": "analyst"})
    assert first.status_code == 401
    challenge = first.json()["challenge"]
    assert challenge["prompts"] == [{"prompt": "Password: ", "echo": False}]
    second = server.post_json("/remotes", {"challenge": challenge["id"],
                                           "responses": [PASSWORD]})
    assert second.status_code == 401
    code_challenge = second.json()["challenge"]
    assert code_challenge["id"] != challenge["id"]
    assert code_challenge["prompts"] == [{"prompt": "One-time code: ", "echo": True}]
    # A wrong code: the host starts over, as ssh would prompt again.
    wrong = server.post_json("/remotes", {"challenge": code_challenge["id"],
                                          "responses": ["000000"]})
    assert wrong.status_code == 401
    retry = wrong.json()["challenge"]
    assert retry["prompts"] == [{"prompt": "Password: ", "echo": False}]
    third = server.post_json("/remotes", {"challenge": retry["id"], "responses": [PASSWORD]})
    done = server.post_json("/remotes", {"challenge": third.json()["challenge"]["id"],
                                         "responses": [CODE]})
    assert done.status_code == 200, done.headers.get("X-Slycat-Message")
    server.stop()


def test_the_command_line_asks_for_the_one_time_code(
        make_server: Callable[..., LiveServer], two_factor: InProcessSSH,
        tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(two_factor.known_hosts_line())
    server = make_server(ssh={"known_hosts": str(known_hosts)})
    frames = two_factor.root / "frames"
    frames.mkdir()
    solid_frames(frames, [(200, 0, 0)] * 5, size=(64, 48))
    out = tmp_path / "coded.mp4"
    framewire = shutil.which("framewire")
    argv = [framewire] if framewire else [sys.executable, "-m", "server.cli"]
    # A new session has no terminal: the answers come from standard input, the
    # password through --password-stdin and the code through the prompt.
    done = subprocess.run(
        [*argv, "video", "--server", server.url, "create",
         f"analyst@127.0.0.1:{two_factor.port}:{frames}/frame*.png", "-o", str(out),
         "--password-stdin"], input=f"{PASSWORD}\n{CODE}\n", capture_output=True, text=True,
        timeout=180, env={**os.environ, "FRAMEWIRE_TOKEN": server.token},
        start_new_session=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "Enter the code your token shows." in done.stderr
    assert "One-time code: " in done.stdout
    assert CODE not in done.stdout + done.stderr, "the code is not echoed back in output"
    info = probe(out)
    assert (info["codec"], info["width"], info["height"], info["frames"]) == ("h264", 64, 48, 5)
    server.stop()
