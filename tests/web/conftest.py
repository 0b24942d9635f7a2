"""Fixtures of the browser tests: a Chromium per test, a site with one account."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from server.users import UserFile
from tests.fixtures import SSHD, LiveServer
from tests.web.pages import ARTIFACTS, chromium


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A browser per test: what Playwright starts along the way (threads for a
    download, its sockets) ends with the test, as the leak check wants."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), headless=True,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def site(make_server: Callable[..., LiveServer], sshd: SSHD) -> LiveServer:
    server = make_server(auth={"mode": "users"}, ssh={"known_hosts": str(sshd.known_hosts)})
    UserFile(server.config.users_file).add("analyst", "analyst-password")
    return server
