"""The page at the sizes its users have, in a real Chromium over a real sshd: a
folder of 10,000 frames (a virtual listing, thumbnails in batches, bad frames
marked), and a person who reloads, comes back from "Your videos", makes a video
again, mistypes a path. Screenshots of each step go to tests/artifacts/browser/.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import requests
from playwright.sync_api import Browser, Page, Request, expect

from tests.fixtures import SSHD, LiveServer, noise_frames, probe
from tests.web.pages import connect, images_listed, log_in, open_folder, shot

COUNT = 10_000


def tiny_png(colour: int) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 24), (colour % 256, (colour * 7) % 256, 90)).save(out, "PNG")
    return out.getvalue()


def corrupt_png() -> bytes:
    """A PNG whose signature, header and end are right but whose pixels are junk:
    only decoding it finds out."""
    good = tiny_png(1)
    start = good.index(b"IDAT") + 4
    end = good.index(b"IEND") - 8
    return good[:start] + bytes(end - start) + good[end:]


def make_folder(folder: Path) -> None:
    """f1.png … f10000.png (names that sort wrongly as text), f3 a text file named
    .png, f5 a corrupt PNG, f9999 empty."""
    blobs = [tiny_png(colour) for colour in range(16)]
    for index in range(1, COUNT + 1):
        (folder / f"f{index}.png").write_bytes(blobs[index % 16])
    (folder / "f3.png").write_text("These are notes, not a frame.\n")
    (folder / "f5.png").write_bytes(corrupt_png())
    (folder / "f9999.png").write_bytes(b"")
    os.system(f"chmod -R a+rX {folder}")


class Thumbs:
    """Counts the page's thumbnail requests (batches and single images)."""

    def __init__(self, page: Page) -> None:
        self.requests: list[Request] = []
        page.on("request", self.seen)

    def seen(self, request: Request) -> None:
        if re.search(r"/thumbnails$|/image/", request.url):
            self.requests.append(request)

    @property
    def count(self) -> int:
        return len(self.requests)


def settle(page: Page, seconds: float = 1.0) -> None:
    """Give the page time to send what it would send (it waits 120 ms after a change)."""
    page.wait_for_timeout(int(seconds * 1000))


def row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#listing li[data-path$='/{name}']")


def test_a_folder_of_ten_thousand_frames(browser: Browser, site: LiveServer, sshd: SSHD,
                                         images: Path) -> None:
    make_folder(images)
    page = log_in(browser, site)
    thumbs = Thumbs(page)
    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    started = time.monotonic()
    open_folder(page, images)
    expect(page.locator("#listing-summary")).to_have_text("0 folders · 10,000 images")
    listed = time.monotonic() - started
    # Only the rows in view (and a few beyond) exist; natural order.
    rendered = page.locator("#listing li").count()
    assert 5 < rendered < 40, rendered
    names = page.locator("#listing li.image .name").all_inner_texts()
    assert names[:4] == ["f1.png", "f2.png", "f3.png", "f4.png"]

    # The first screen's thumbnails arrive in a batch or two; the bad frames say why.
    expect(row(page, "f1.png").locator("img")).to_have_js_property("complete", True)
    page.wait_for_function("() => document.querySelector(\"#listing li[data-path$='/f1.png'] img\")"
                           ".naturalWidth > 0")
    expect(row(page, "f3.png")).to_have_class(re.compile(r"\bbad\b"))
    expect(row(page, "f3.png").locator(".reason")).to_have_text("Not a PNG or JPEG image: f3.png")
    expect(row(page, "f5.png")).to_have_class(re.compile(r"\bbad\b"))
    expect(row(page, "f5.png").locator(".reason")).to_contain_text("Cannot decode the image f5.png")
    expect(row(page, "f4.png")).not_to_have_class(re.compile(r"\bbad\b"))
    settle(page)
    first_screen = thumbs.count
    assert 1 <= first_screen <= 2, [r.url for r in thumbs.requests]
    assert all(r.method == "POST" for r in thumbs.requests), "thumbnails come in batches"
    shot(page, "20-ten-thousand")

    # Ticking a box and filtering reuse what is shown: no thumbnail asked again.
    page.get_by_label("Select f2.png", exact=True).check()
    expect(page.locator("#selection-text")).to_have_text(
        f"1 frame selected in {images}, from f2.png to f2.png, in natural order.")
    expect(page.locator("#strip img")).to_have_count(1)
    page.get_by_label("Filter this folder", exact=True).fill("f4.png")
    expect(page.locator("#listing li.image")).to_have_count(1)
    expect(page.locator("#listing-summary")).to_contain_text("1 of 10,000 match “f4.png”")
    page.get_by_label("Filter this folder", exact=True).fill("")
    expect(page.locator("#listing li.image").first).to_contain_text("f1.png")
    page.get_by_label("Select f2.png", exact=True).uncheck()
    settle(page)
    assert thumbs.count == first_screen, [r.url for r in thumbs.requests[first_screen:]]

    # Scrolling to the end works, and what shows there is loaded (and marked) there.
    page.locator("#listing-scroll").evaluate("box => { box.scrollTop = box.scrollHeight; }")
    expect(row(page, "f10000.png")).to_be_visible()
    expect(row(page, "f9999.png").locator(".reason")).to_have_text(
        re.compile(r"(Not a PNG or JPEG image|Incomplete image).*f9999\.png"))
    page.wait_for_function("() => document.querySelector("
                           "\"#listing li[data-path$='/f10000.png'] img\")?.naturalWidth > 0")
    settle(page)
    at_end = thumbs.count
    assert at_end - first_screen <= 2, "only the rows at the end were asked for"
    shot(page, "21-ten-thousand-end")

    # The order strip comes from one batch request, made at once.
    page.get_by_label("Pattern", exact=True).fill("f*.png")
    page.get_by_role("button", name="Select all matching").click()
    expect(page.locator("#selection-text")).to_have_text(
        f"10,000 frames matching f*.png in {images}, from f1.png to f10000.png, "
        "in natural order.")
    expect(page.locator("#strip li")).to_have_count(8)
    page.wait_for_function("() => [...document.querySelectorAll('#strip li')]"
                           ".every((li) => li.querySelector('img, svg'))")
    settle(page)
    strip = thumbs.requests[at_end:]
    assert len(strip) == 1, [r.url for r in strip]
    asked = strip[0].post_data_json["paths"]
    assert 1 <= len(asked) <= 8 and all(path.startswith(str(images)) for path in asked)
    # The frames the page found unusable are named before anything is encoded.
    warning = page.locator("#selection-warning")
    expect(warning).to_contain_text("3 of these frames cannot be used: f3.png, f5.png, f9999.png.")
    shot(page, "22-ten-thousand-strip")
    row(page, "f9999.png").locator("input").uncheck()  # one of the pattern's frames left out
    expect(page.locator("#selection-text")).to_have_text(
        f"9,999 frames selected in {images}, from f1.png to f10000.png, in natural order.")
    expect(warning).to_contain_text("2 of these frames cannot be used: f3.png, f5.png.")
    assert listed < 15, f"the listing took {listed:.1f} s (bench/browse.py measures it)"
    page.close()


def make_video(page: Page, pattern: str, crf: int = 5, preset: str = "veryslow") -> None:
    page.get_by_label("Pattern", exact=True).fill(pattern)
    page.get_by_role("button", name="Select all matching").click()
    page.locator("#crf").fill(str(crf))
    if not page.locator("#preset").is_visible():
        page.locator("summary").click()
    page.locator("#preset").select_option(preset)
    page.get_by_role("button", name="Make video").click()


def job_id(page: Page) -> str:
    match = re.search(r"[?&]job=([0-9a-f]{32})", page.url)
    assert match, page.url
    return match.group(1)


def frames_done(page: Page) -> int:
    return int(page.locator("#progress").get_attribute("data-frames") or "0")


def test_reload_your_videos_make_again_and_paths(browser: Browser, site: LiveServer,
                                                 sshd: SSHD, images: Path,
                                                 tmp_path: Path) -> None:
    noise_frames(images, 48, (320, 240))  # slow at CRF 5: time to reload mid-job
    page = log_in(browser, site)
    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)

    # A typed file path opens its folder with the file picked out.
    page.get_by_label("Folder", exact=True).fill(f"{images}/n0002.png")
    page.keyboard.press("Enter")
    expect(page.locator("#listing li.highlight")).to_contain_text("n0002.png")
    expect(page.get_by_label("Folder", exact=True)).to_have_value(str(images))
    assert images_listed(page) == 48
    expect(page).to_have_url(re.compile(r"[?&]file=n0002\.png"))
    shot(page, "30-file-path")

    # A bad path leaves the listing and the box as they were, and says why.
    page.get_by_label("Folder", exact=True).fill(f"{images}/no-such-folder")
    page.keyboard.press("Enter")
    error = page.locator("#browse-error")
    expect(error).to_contain_text(f"File not found: {images}/no-such-folder")
    expect(error).to_contain_text(f"Still showing {images}")
    expect(page.get_by_label("Folder", exact=True)).to_have_value(str(images))
    assert images_listed(page) == 48
    shot(page, "31-bad-path")

    # A reload while the job runs: the progress goes on.
    make_video(page, "n*.png")
    expect(page.locator("#progress")).to_have_attribute("data-status", "running",
                                                        timeout=60_000)
    vsid = job_id(page)
    page.reload()
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    expect(page.locator("#job-title-id")).to_have_text(vsid[:8])
    expect(page.get_by_label("Folder", exact=True)).to_have_value(str(images))
    progress = page.locator("#progress")
    expect(progress).to_be_visible()
    before = frames_done(page)
    page.wait_for_function(f"() => Number(document.querySelector('#progress').dataset.frames)"
                           f" > {before} || document.querySelector('#progress').dataset.status"
                           " === 'succeeded'", timeout=120_000)
    shot(page, "32-reloaded-running")

    # A reload after it ended: the result is back.
    expect(page.locator("#result")).to_be_visible(timeout=300_000)
    page.reload()
    expect(page.locator("#result")).to_be_visible(timeout=30_000)
    expect(page.locator("#result-text")).to_contain_text("320×240, 48 frames")
    expect(page.locator("#job-options")).to_contain_text("n*.png in " + str(images))
    shot(page, "33-reloaded-done")

    # A second tab, from "Your videos": the same session, the video, its options.
    # (A second tab: the same login cookie, nothing else of the first tab.)
    second = browser.new_context(storage_state=page.context.storage_state(),
                                 viewport={"width": 1280, "height": 800})
    other = second.new_page()
    other.set_default_timeout(30_000)
    other.goto(site.url + "/")
    link = other.locator(f"#job-rows tr[data-vsid='{vsid}'] a")
    expect(link).to_be_visible(timeout=30_000)
    link.click()
    expect(other.locator("#result")).to_be_visible(timeout=30_000)
    expect(other.locator("#job-title-id")).to_have_text(vsid[:8])
    expect(other.locator("#job-options")).to_contain_text("Quality (CRF)5")
    expect(other.locator("#job-options")).to_contain_text("veryslow")
    player = other.locator("#player")
    expect(player).to_be_visible()
    other.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    assert abs(player.evaluate("video => video.duration") - 48 / 25) < 0.1
    video_url = other.locator("#download").get_attribute("href")
    assert video_url and vsid in video_url
    shot(other, "34-from-your-videos")

    # Make again: its frames and options are back in the form, and it makes the same video.
    other.get_by_role("button", name="Make again").click()
    expect(other.locator("#selection-text")).to_contain_text("48 frames matching n*.png")
    expect(other.locator("#crf")).to_have_value("5")
    expect(other.locator("#preset")).to_have_value("veryslow")
    expect(other.locator("#again-note")).to_contain_text(f"Made again from video {vsid[:8]}")
    shot(other, "35-make-again")
    other.locator("#crf").fill("30")  # quicker this time (Advanced is open: it was set)
    other.locator("#preset").select_option("ultrafast")
    other.get_by_role("button", name="Make video").click()
    expect(other.locator("#result")).to_be_visible(timeout=120_000)
    again = job_id(other)
    assert again != vsid
    sid = other.locator("#download").get_attribute("href").split("/")[2]
    status = requests.get(f"{site.url}/remotes/{sid}/videos/{again}/status",
                          auth=("analyst", "analyst-password"), timeout=60).json()
    assert status["request"]["images"] == {"directory": str(images), "pattern": "n*.png",
                                           "sort": "natural"}
    assert (status["request"]["crf"], status["request"]["preset"]) == (30, "ultrafast")
    video = requests.get(f"{site.url}/remotes/{sid}/videos/{again}",
                         auth=("analyst", "analyst-password"), timeout=60)
    saved = tmp_path / "again.mp4"
    saved.write_bytes(video.content)
    assert probe(saved)["frames"] == 48

    # A request that fails clears the old result and says why where it was made.
    other.get_by_role("button", name="Clear").click()
    other.get_by_label("Select n0010.png", exact=True).check()
    other.get_by_label("Select n0011.png", exact=True).check()
    expect(other.locator("#selection-text")).to_contain_text("2 frames selected")
    (images / "n0010.png").unlink()
    other.get_by_role("button", name="Make video").click()
    expect(other.locator("#video-error")).to_contain_text("n0010.png")
    expect(other.locator("#result")).to_be_hidden()
    expect(other.locator("#progress")).to_be_hidden()
    assert "job=" not in other.url
    shot(other, "36-failed-request")
    second.close()
    page.close()


def test_watch_while_it_encodes(browser: Browser, site: LiveServer, sshd: SSHD,
                                images: Path) -> None:
    """The preview plays what is encoded while the job runs, and grows; the final
    video then takes its place."""
    noise_frames(images, 200, (320, 240))
    page = log_in(browser, site)
    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    open_folder(page, images)
    make_video(page, "n*.png", preset="slow")
    preview = page.locator("#preview")
    expect(preview).to_be_visible(timeout=120_000)
    looks = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(looks) < 40:
        look = preview.evaluate("""(video) => ({
            time: video.currentTime,
            buffered: video.buffered.length ? video.buffered.end(video.buffered.length - 1) : 0,
            status: document.querySelector('#progress').dataset.status,
            frames: Number(document.querySelector('#progress').dataset.frames)})""")
        if look["status"] != "running":
            break
        looks.append(look)
        page.wait_for_timeout(500)
    assert len(looks) >= 4, looks
    assert looks[-1]["time"] > looks[0]["time"], looks
    assert looks[-1]["buffered"] > looks[0]["buffered"], looks
    assert looks[-1]["frames"] > looks[0]["frames"], looks
    shot(page, "40-preview")
    expect(page.locator("#result")).to_be_visible(timeout=300_000)
    expect(preview).to_be_hidden()
    played = page.locator("#player").evaluate("""async (video) => {
        video.muted = true;
        await video.play();
        const start = performance.now();
        while (video.currentTime < 0.3 && performance.now() - start < 10000) {
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        video.pause();
        return {time: video.currentTime, duration: video.duration};
    }""")
    assert played["time"] >= 0.3 and abs(played["duration"] - 200 / 25) < 0.1, played
    shot(page, "41-preview-then-video")
    page.close()
