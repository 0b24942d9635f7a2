"""What the browser tests do on the page again and again: log in, connect, open a
folder, take a screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import Browser, Page, expect

from tests.fixtures import SSHD, LiveServer

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("Chromium is not installed: apt-get install chromium (.ci/run does)")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(browser: Browser, site: LiveServer, width: int = 1280, height: int = 800,
           path: str = "/") -> Page:
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.set_default_timeout(30_000)
    page.goto(site.url + path)
    expect(page).to_have_url(site.url + "/login?next=" + quote(path, safe=""))
    page.get_by_label("User name", exact=True).fill("analyst")
    page.get_by_label("Password", exact=True).fill("analyst-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#who")).to_have_text("Logged in as analyst")
    return page


def connect(page: Page, sshd: SSHD, password: str) -> None:
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill(str(sshd.port))
    page.get_by_label("User name", exact=True).fill(sshd.user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Connect").click()


def open_folder(page: Page, folder: Path | str) -> None:
    """Type a folder's path and open it; wait until its listing is on the page."""
    page.get_by_label("Folder", exact=True).fill(str(folder))
    page.keyboard.press("Enter")
    expect(page.locator("#crumbs [aria-current=location]")).to_have_text(
        Path(folder).name or "/")
    expect(page.locator("#listing-scroll")).not_to_have_attribute("aria-busy", "true")


def frames_chosen(browser: Browser, site: LiveServer, sshd: SSHD, folder: Path,
                  pattern: str) -> Page:
    """Log in, connect with the test user's password, open ``folder`` and select every
    image matching ``pattern``: the page at "Make the video"."""
    page = log_in(browser, site)
    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    open_folder(page, folder)
    page.get_by_label("Pattern", exact=True).fill(pattern)
    page.get_by_role("button", name="Select all matching").click()
    return page


def images_listed(page: Page) -> int:
    """How many images the listing says the folder holds (rows exist only in view)."""
    return int(page.locator("#listing-summary").get_attribute("data-images") or "-1")
