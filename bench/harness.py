"""What every benchmark shares: a real sshd with the test user, the live server in a
process of its own, and small helpers (checked answers, medians)."""

from __future__ import annotations

import json
import os
import pwd
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests import fixtures  # noqa: E402

CHUNK = 1 << 20
FINAL = ("succeeded", "failed", "canceled", "expired")


class BenchError(Exception):
    """The benchmark could not measure something; the message says what."""


# -- the remote side: sshd and the test user ------------------------------------


def start_sshd(state: Path) -> fixtures.SSHD:
    """tests.fixtures.start_sshd, without disturbing a test run that shares fwtest.

    start_sshd resets fwtest's password and replaces its authorized_keys; a
    pytest session running at the same time logs in with the password and
    key it set.  Keep an existing password, and keep the keys already there.
    """
    original = fixtures.ensure_user

    def keep_password(name: str, password: str) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            return original(name, password)

    try:
        keys = Path(pwd.getpwnam(fixtures.TEST_USER).pw_dir) / ".ssh" / "authorized_keys"
        before = keys.read_text() if keys.exists() else ""
    except KeyError:
        before = ""
    fixtures.ensure_user = keep_password  # type: ignore[assignment]
    try:
        sshd = fixtures.start_sshd(state)
    finally:
        fixtures.ensure_user = original  # type: ignore[assignment]
    authorize(sshd, extra=before)
    return sshd


def _client_key_line(sshd: fixtures.SSHD) -> str:
    return Path(str(sshd.client_key) + ".pub").read_text().strip()


def authorize(sshd: fixtures.SSHD, extra: str = "") -> None:
    """Make sure the bench's client key is authorized (a test run may have replaced it)."""
    lines = _authorized_lines(sshd) + extra.splitlines()
    mine = _client_key_line(sshd)
    if mine not in lines or extra:
        _write_authorized(sshd, lines + [mine])


def unauthorize(sshd: fixtures.SSHD) -> None:
    """Remove only the bench's own key line again."""
    lines = _authorized_lines(sshd)
    mine = _client_key_line(sshd)
    if mine in lines:
        _write_authorized(sshd, [line for line in lines if line != mine])


def _authorized_lines(sshd: fixtures.SSHD) -> list[str]:
    keys = sshd.home / ".ssh" / "authorized_keys"
    text = keys.read_text() if keys.exists() else ""
    return [line for line in text.splitlines() if line.strip()]


def _write_authorized(sshd: fixtures.SSHD, lines: list[str]) -> None:
    """Replace authorized_keys atomically, so a concurrent login never sees it half written."""
    keys = sshd.home / ".ssh" / "authorized_keys"
    temp = keys.with_name(f"authorized_keys.bench-{os.getpid()}")
    temp.write_text("".join(line + "\n" for line in dict.fromkeys(lines)))
    user = pwd.getpwnam(sshd.user)
    os.chown(temp, user.pw_uid, user.pw_gid)
    os.chmod(temp, 0o600)
    os.replace(temp, keys)


def shut_down(server: ServerProcess | None, sshd: fixtures.SSHD | None) -> None:
    """Stop the benchmark's server and sshd (either may not have started), and take the
    benchmark's key back out of the test user's authorized keys."""
    if server is not None:
        server.stop()
    if sshd is not None:
        unauthorize(sshd)
        sshd.process.terminate()
        try:
            sshd.process.wait(10)
        except subprocess.TimeoutExpired:
            sshd.process.kill()
            sshd.process.wait(10)


# -- the framewire side: the live server in a child process ---------------------


class ServerProcess:
    """bench/live_server.py: LiveServer in its own process, so no GIL is shared."""

    def __init__(self, data_dir: Path, sshd: fixtures.SSHD, *extra: str) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir / "server.log"
        self._stderr = open(data_dir / "server.stderr", "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "live_server.py"), "--data-dir", str(data_dir),
             "--known-hosts", str(sshd.known_hosts), "--client-key", str(sshd.client_key),
             *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            cwd=str(ROOT))
        hello = self._read(timeout=60)
        self.url: str = hello["url"]
        self.token: str = hello["token"]
        self.pid: int = hello["pid"]
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {hello['token']}"

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise BenchError("the framewire server process did not answer; see "
                             f"{self.log} and {self._stderr.name}")
        return json.loads(line)

    def command(self, text: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()
        return self._read(timeout=15)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", (10, 120))
        return self.http.request(method, self.url + path, **kwargs)

    def stop(self) -> None:
        self.http.close()
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._stderr.close()


def expect(response: requests.Response, status: int, what: str) -> requests.Response:
    if response.status_code != status:
        raise BenchError(f"{what}: HTTP {response.status_code} "
                         f"{response.headers.get('X-Slycat-Message', '')} "
                         f"{response.headers.get('X-Slycat-Hint', '')}".rstrip())
    return response


def open_session(server: ServerProcess, sshd: fixtures.SSHD) -> str:
    """POST /remotes with the fixture's client key (no password): the agent is uploaded."""
    response = server.request("POST", "/remotes", json={
        "hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user, "agent": None})
    return str(expect(response, 200, "POST /remotes").json()["sid"])


def stream_to(response: requests.Response, sink: Any, deadline: float) -> tuple[int, float]:
    """Copy a streamed body into ``sink`` (or only count it if None).

    Returns the bytes copied and the perf_counter time the first of them arrived.
    """
    total = 0
    first = 0.0
    for chunk in response.iter_content(chunk_size=CHUNK):
        if not first:
            first = time.perf_counter()
        if sink is not None:
            sink.write(chunk)
        total += len(chunk)
        if time.monotonic() > deadline:
            raise BenchError("download exceeded the time limit")
    return total, first or time.perf_counter()


def median(runs: list[dict[str, Any]], key: str = "seconds") -> float:
    return statistics.median(run[key] for run in runs)


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def wait_status(server: ServerProcess, sid: str, vsid: str, deadline: float,
                until: tuple[str, ...] = FINAL) -> dict[str, Any]:
    """Poll a job's status until its state is one of ``until`` (or the deadline)."""
    while True:
        status = expect(server.request("GET", f"/remotes/{sid}/videos/{vsid}/status"),
                        200, "GET video status").json()
        if status["status"] in until:
            return dict(status)
        if time.monotonic() > deadline:
            raise BenchError(f"video {vsid[:8]} still {status['status']} at the time limit")
        time.sleep(0.02)
