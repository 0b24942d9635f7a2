from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests import leaks
from tests.fixtures import SSHD, LiveServer, make_config, shared_dir, start_sshd
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHD]:
    """A real OpenSSH server on 127.0.0.1 with a password and key login user."""
    daemon = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield daemon
    daemon.process.terminate()
    daemon.process.wait(10)


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
