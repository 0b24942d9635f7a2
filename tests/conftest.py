from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests import leaks
from tests.fixtures import SSHD, LiveServer, make_config, shared_dir, start_sshd
from tests.hosts import HostileSSHD, make_account, start_hostile_sshd
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHD]:
    """A real OpenSSH server on 127.0.0.1 with a password and key login user."""
    daemon = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield daemon
    daemon.process.terminate()
    daemon.process.wait(10)


@pytest.fixture(scope="session")
def slurm() -> str:
    """A real Slurm on this host, two slurmd "nodes" (.ci/slurm-up.sh; CI starts it
    first, a developer's run starts it here).  Its version."""
    script = Path(__file__).resolve().parent.parent / ".ci" / "slurm-up.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError("Slurm did not start (.ci/slurm-up.sh): " + done.stderr[-2000:])
    return subprocess.run(["sinfo", "--version"], capture_output=True, text=True,
                          check=True).stdout.split()[-1]


@pytest.fixture
def drained(slurm: str) -> Iterator[Callable[[], None]]:
    """Both Slurm nodes drained (nothing starts); the callable resumes them; resumed
    after the test whatever happened."""
    def resume() -> None:
        subprocess.run(["scontrol", "update", "nodename=n1,n2", "state=resume"],
                       capture_output=True, check=False)

    subprocess.run(["scontrol", "update", "nodename=n1,n2", "state=drain",
                    "reason=framewire test"], check=True, capture_output=True)
    yield resume
    resume()


@pytest.fixture
def no_slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSSHD]:
    """An sshd whose users see no Slurm: sbatch is hidden from them (a mount
    namespace), as on a host where Slurm was never installed."""
    account = make_account("fwnoslurm", "plain")
    hidden = [path for path in (shutil.which("sbatch"),) if path]
    daemon = start_hostile_sshd(tmp_path_factory.mktemp("noslurm"), [account], hide=hidden)
    yield daemon
    daemon.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    started: list[LiveServer] = []

    def start(**sections: dict[str, Any]) -> LiveServer:
        server = LiveServer(make_config(tmp_path / f"state{len(started)}", **sections))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer], sshd: SSHD) -> LiveServer:
    """A live server that trusts the test sshd's host key."""
    return make_server(ssh={"known_hosts": str(sshd.known_hosts),
                            "client_keys": [str(sshd.client_key)]})


@pytest.fixture
def local(make_server: Callable[..., LiveServer]) -> tuple[LiveServer, str]:
    """A server and a session on the local transport (the embedded default)."""
    server = make_server()
    response = server.post_json("/remotes", {"hostname": "localhost"})
    assert response.status_code == 200
    return server, response.json()["sid"]


@pytest.fixture
def images() -> Iterator[Path]:
    path = shared_dir("framewire-images-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def remote(server: LiveServer, sshd: SSHD) -> str:
    """A session logged in to the test sshd with the test user's password."""
    response = server.post_json("/remotes", {
        "hostname": "127.0.0.1", "port": sshd.port, "username": sshd.user,
        "password": sshd.password, "agent": None})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return response.json()["sid"]


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Loopback HTTP receivers a test starts; all stopped after it."""
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.stop()


# -- no test leaks child processes, threads or file descriptors -------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield
    item.stash[_BASELINE] = leaks.Snapshot.take()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    before = item.stash.get(_BASELINE, None)
    if before is None:
        return
    found = leaks.leaks(before)
    if found:
        raise AssertionError(f"{item.nodeid} left behind: " + "; ".join(found[:10]))


_BASELINE = pytest.StashKey[leaks.Snapshot]()
