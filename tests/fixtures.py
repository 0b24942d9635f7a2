"""Real parts for the tests: an OpenSSH sshd on loopback, a live server, frames."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import tornado.netutil

from server import config as config_module
from server.http.app import make_app
from server.http.door import make_server
from server.services import Services

SSHD_BINARY = shutil.which("sshd") or "/usr/sbin/sshd"
TEST_USER = "fwtest"
LOGIN_BANNER = "Welcome to the framewire test cluster"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def ensure_user(name: str, password: str) -> pwd.struct_passwd:
    """A real local account with a password (the tests run as root, as CI does)."""
    if os.geteuid() != 0:
        raise RuntimeError("the SSH tests create a local test user and need root "
                           "(CI runs as root); run them as root")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/bash", name])
        entry = pwd.getpwnam(name)
    run(["chpasswd"], input=f"{name}:{password}\n")
    return entry


@dataclass
class SSHD:
    port: int
    user: str
    password: str
    home: Path
    known_hosts: Path
    client_key: Path
    host_fingerprint: str
    process: subprocess.Popen[bytes]

    def as_user(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return run(["runuser", "-u", self.user, "--", *argv])


def sshd_config(address: str, port: int, host_key: Path, pid_file: Path,
                users: list[str]) -> str:
    """The configuration every test sshd runs with: passwords and keys, no root."""
    return f"""
Port {port}
ListenAddress {address}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
UsePAM yes
AllowUsers {' '.join(users)}
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxSessions 64
MaxStartups 64
"""


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until a just-started sshd accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError("sshd exited: " + log.read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not start listening") from None
            time.sleep(0.05)


def start_sshd(state: Path) -> SSHD:
    if not os.path.exists(SSHD_BINARY):
        raise RuntimeError("OpenSSH sshd is not installed (apt-get install openssh-server)")
    password = secrets.token_urlsafe(12)
    user = ensure_user(TEST_USER, password)
    home = Path(user.pw_dir)
    state.mkdir(parents=True, exist_ok=True)
    host_key = state / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
    client_key = state / "client_ed25519"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)])

    # The login script prints to stdout, as many clusters' do: the agent must cope.
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(
        (state / "client_ed25519.pub").read_text())
    bashrc = home / ".bashrc"
    bashrc.write_text(f'echo "{LOGIN_BANNER}"\n')
    for path in (ssh_dir, ssh_dir / "authorized_keys", bashrc):
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(ssh_dir / "authorized_keys", 0o600)

    port = free_port()
    config = state / "sshd_config"
    config.write_text(sshd_config("127.0.0.1", port, host_key, state / "sshd.pid", [TEST_USER]))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open(state / "sshd.log", "wb")
    process = subprocess.Popen([SSHD_BINARY, "-D", "-e", "-f", str(config)], stdout=log,
                               stderr=subprocess.STDOUT)
    wait_listening(process, port, state / "sshd.log")
    public = (state / "ssh_host_ed25519_key.pub").read_text().split()
    known_hosts = state / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    fingerprint = run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                       str(state / "ssh_host_ed25519_key.pub")]).stdout.split()[1]
    return SSHD(port, TEST_USER, password, home, known_hosts, client_key, fingerprint, process)


class LiveServer:
    """The real application on a loopback port, its loop in a thread of its own."""

    def __init__(self, config: config_module.Config) -> None:
        self.config = config
        self.token = config.server.token
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._sockets = sockets
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread.start()
        self._ready.wait(10)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.services = Services.build(self.config)
            self.app = make_app(self.config, self.services)
            self.server = make_server(self.app, self.config)
            self.server.add_sockets(self._sockets)
            self.services.start()

        self.loop.run_until_complete(start())
        self._ready.set()
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return  # stopped already

        async def shutdown() -> None:
            self.server.stop()
            await self.server.close_all_connections()
            await self.services.close()
            await self.loop.shutdown_default_executor()  # getaddrinfo's threads
        try:
            self.call(shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.http.close()
            self.loop.close()

    # -- conveniences for tests -------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 120)
        return self.http.request(method, self.url + path, **kwargs)

    def post_json(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, data=json.dumps(body),
                            headers={"Content-Type": "application/json"}, **kwargs)

    def wait_video(self, sid: str, vsid: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = self.request("GET", f"/remotes/{sid}/videos/{vsid}/status")
            assert response.status_code == 200, response.headers.get("X-Slycat-Message")
            status = response.json()
            if status["status"] in ("succeeded", "failed", "canceled", "expired"):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"video not finished after {timeout} s: {status}")
            time.sleep(0.2)


def connect(server: LiveServer, sshd: SSHD) -> str:
    """A session to the test sshd with the test user's password: its sid."""
    response = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                             "username": sshd.user,
                                             "password": sshd.password})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return str(response.json()["sid"])


def make_config(data_dir: Path, **sections: dict[str, Any]) -> config_module.Config:
    config = config_module.load(environ={})
    config.server.token = secrets.token_urlsafe(16)
    config.server.data_dir = str(data_dir)
    config.local.work_dir = str(data_dir / "local-work")
    config.ssh.ssh_config = ""  # the test machine's own ~/.ssh/config stays out
    # Test receivers listen on loopback, which the default policy refuses.
    config.outgoing.allow_networks = ["127.0.0.0/8", "::1/128"]
    for section, values in sections.items():
        for key, value in values.items():
            setattr(getattr(config, section), key, value)
    return config


def shared_dir(prefix: str) -> Path:
    """A directory every local user may read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def solid_frames(directory: Path, colours: list[tuple[int, int, int]],
                 names: list[str] | None = None, size: tuple[int, int] = (64, 48),
                 kinds: list[str] | None = None) -> list[str]:
    """One solid-colour frame per colour, so a decoded video can be checked in order."""
    from PIL import Image

    paths = []
    for index, colour in enumerate(colours):
        kind = (kinds or ["png"])[index % len(kinds or ["png"])]
        name = names[index] if names else f"frame{index:04d}.{'png' if kind == 'png' else 'jpg'}"
        path = directory / name
        Image.new("RGB", size, colour).save(path, "PNG" if kind == "png" else "JPEG",
                                            **({"quality": 95} if kind != "png" else {}))
        os.chmod(path, 0o644)
        paths.append(str(path))
    return paths


def noise_frames(directory: Path, count: int, size: tuple[int, int] = (640, 360),
                 prefix: str = "n") -> list[str]:
    """Random pixels (PREFIX0000.png …): slow to encode, so a job runs while a test looks."""
    from PIL import Image

    paths = []
    for index in range(count):
        path = directory / f"{prefix}{index:04d}.png"
        Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(
            path, compress_level=1)
        os.chmod(path, 0o644)
        paths.append(str(path))
    return paths


def probe(path: Path | str) -> dict[str, Any]:
    """What ffprobe says of a video (or image): codec, format, size, frames, timing, colour."""
    out = run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
               "-show_entries",
               "stream=codec_name,profile,pix_fmt,width,height,nb_read_frames,r_frame_rate,"
               "color_space,color_transfer,color_primaries,color_range"
               ":format=duration,format_name",
               "-of", "json", str(path)]).stdout
    data = json.loads(out)
    stream = data["streams"][0]
    duration = data["format"].get("duration")
    return {
        "codec": stream["codec_name"],
        "profile": stream.get("profile"),
        "pix_fmt": stream.get("pix_fmt"),
        "width": int(stream["width"]),
        "height": int(stream["height"]),
        "frames": int(stream.get("nb_read_frames", 0)),
        "frame_rate": stream.get("r_frame_rate"),
        "duration": float(duration) if duration is not None else None,
        "format": data["format"]["format_name"],
        "color_space": stream.get("color_space"),
        "color_transfer": stream.get("color_transfer"),
        "color_primaries": stream.get("color_primaries"),
        "color_range": stream.get("color_range"),
    }


def frame_colours(path: Path | str, centre: bool = False) -> list[tuple[int, int, int]]:
    """The mean RGB colour of each decoded frame (or of its centre), in order."""
    scale = "crop=iw/4:ih/4,scale=8:8" if centre else "scale=8:8"
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", scale,
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    frames = []
    for offset in range(0, len(raw), 8 * 8 * 3):
        block = raw[offset:offset + 192]
        frames.append(tuple(sum(block[channel::3]) // 64 for channel in range(3)))
    return frames  # type: ignore[return-value]


@dataclass
class Remote:
    """A live server with a logged-in SSH session to the test sshd."""
    server: LiveServer
    sid: str
    sshd: SSHD
    images: Path = field(default_factory=lambda: shared_dir("framewire-images-"))


