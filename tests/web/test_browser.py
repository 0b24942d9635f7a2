"""The web UI in a real headless Chromium (Debian's), against the real server and
a real sshd: log in, connect, browse, choose frames, make a video, watch it play
and seek, download it; and the errors a person meets, shown with their hints.

Screenshots of every step are written to tests/artifacts/browser/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import requests
from playwright.sync_api import Browser, expect

from server.users import UserFile
from tests.fixtures import SSHD, LiveServer, probe, solid_frames
from tests.hosts import HostileSSHD
from tests.web.pages import connect, frames_chosen, images_listed, log_in, open_folder, shot

FRAMES = 50
SIZE = (160, 120)


def test_the_whole_flow(browser: Browser, site: LiveServer, sshd: SSHD, images: Path,
                        tmp_path: Path) -> None:
    colours = [(5 * i, 255 - 5 * i, (97 * i) % 256) for i in range(FRAMES)]
    solid_frames(images, colours, names=[f"f{i + 1}.png" for i in range(FRAMES)], size=SIZE)
    (images / "notes.txt").write_text("not a frame")
    page = log_in(browser, site)
    shot(page, "01-logged-in")

    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_contain_text(f"Connected to {sshd.user}@127.0.0.1",
                                                       timeout=30_000)
    shot(page, "02-connected")

    page.get_by_label("Folder", exact=True).fill(str(images))
    page.get_by_role("button", name="Open").click()
    listing = page.locator("#listing")
    expect(page.locator("#listing-summary")).to_have_text(
        "0 folders · 50 images · 1 other file")
    names = listing.locator("li.image .name").all_inner_texts()
    # Natural order, the order the video takes them in: f2 before f10.
    assert names[:3] == ["f1.png", "f2.png", "f3.png"], "the listing is in natural order"
    assert names[9] == "f10.png"
    page.wait_for_function(
        "() => [...document.querySelectorAll('#listing img')].slice(0, 5)"
        ".every((img) => img.complete && img.naturalWidth > 0)")
    page.get_by_label("Filter this folder", exact=True).fill("f4")
    expect(listing.locator("li.image")).to_have_count(11)  # f4, f40..f49
    page.get_by_label("Filter this folder", exact=True).fill("")
    page.locator("#listing-scroll").evaluate("box => { box.scrollTop = box.scrollHeight; }")
    expect(listing.locator("li.file")).to_contain_text("notes.txt")
    page.locator("#listing-scroll").evaluate("box => { box.scrollTop = 0; }")
    shot(page, "03-browse")

    page.get_by_label("Pattern", exact=True).fill("f*.png")
    page.get_by_role("button", name="Select all matching").click()
    expect(page.locator("#selection-text")).to_have_text(
        f"{FRAMES} frames matching f*.png in {images}, from f1.png to f{FRAMES}.png, "
        "in natural order.")
    strip = page.locator("#strip li")
    expect(strip).to_have_count(8)
    assert strip.first.inner_text() == "#1" and strip.last.inner_text() == f"#{FRAMES}"
    page.wait_for_function("() => [...document.querySelectorAll('#strip img')]"
                           ".every((img) => img.complete && img.naturalWidth > 0)")
    shot(page, "04-frames-chosen")

    page.get_by_label("Frames per second", exact=True).fill("25")
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#progress")).to_be_visible()
    shot(page, "05-progress")
    expect(page.locator("#result")).to_be_visible(timeout=120_000)
    assert page.locator("#bar").evaluate("bar => bar.value") == 100
    expect(page.locator("#progress-text")).to_contain_text(f"{FRAMES} of {FRAMES} frames")
    expect(page.locator("#result-text")).to_contain_text(
        f"{SIZE[0]}×{SIZE[1]}, {FRAMES} frames at 25 fps")

    player = page.locator("#player")
    played = player.evaluate("""async (video) => {
        video.muted = true;
        await video.play();
        const start = performance.now();
        while (video.currentTime < 0.3 && performance.now() - start < 10000) {
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        video.pause();
        return {time: video.currentTime, width: video.videoWidth, height: video.videoHeight,
                duration: video.duration};
    }""")
    assert played["time"] >= 0.3, played
    assert (played["width"], played["height"]) == SIZE
    assert abs(played["duration"] - FRAMES / 25) < 0.1, played
    seeked = player.evaluate("""(video) => new Promise((resolve) => {
        video.addEventListener("seeked", () => resolve(video.currentTime), {once: true});
        video.currentTime = video.duration / 2;
    })""")
    assert abs(seeked - FRAMES / 50) < 0.1, seeked
    shot(page, "06-playing")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    downloaded = Path(info.value.path()).read_bytes()
    vsid = info.value.url.rstrip("/").split("/")[-3]
    sid = info.value.url.rstrip("/").split("/")[-5]
    api = requests.get(f"{site.url}/remotes/{sid}/videos/{vsid}",
                       auth=("analyst", "analyst-password"), timeout=60)
    assert api.status_code == 200 and downloaded == api.content
    saved = tmp_path / "downloaded.mp4"
    saved.write_bytes(downloaded)
    assert probe(saved)["frames"] == FRAMES
    expect(page.locator("#job-rows")).to_contain_text("succeeded")
    shot(page, "07-downloaded")

    # A narrow window still works: the result and the list are there.
    page.set_viewport_size({"width": 390, "height": 800})
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    shot(page, "08-narrow")
    page.close()


def test_errors_are_shown_with_their_hints(browser: Browser, site: LiveServer, sshd: SSHD,
                                           images: Path) -> None:
    paths = solid_frames(images, [(200, 0, 0), (0, 200, 0), (0, 0, 200)], size=SIZE)
    page = log_in(browser, site)
    connect(page, sshd, "not-the-password")
    error = page.locator("#connect-error")
    expect(error).to_contain_text("Remote authentication failed.")
    expect(error).to_contain_text("Check the username and password")
    expect(page.get_by_label("Host", exact=True)).to_have_value("127.0.0.1")
    shot(page, "09-wrong-password")

    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    open_folder(page, images)
    expect(page.locator("#listing li.image")).to_have_count(3)
    for name in ("frame0000.png", "frame0001.png"):
        page.get_by_label(f"Select {name}", exact=True).check()
    expect(page.locator("#selection-text")).to_contain_text("2 frames selected")
    Path(paths[1]).unlink()  # gone before the job starts
    page.get_by_role("button", name="Make video").click()
    problem = page.locator("#video-error")
    expect(problem).to_contain_text(f"File not found: {paths[1]}")
    shot(page, "10-missing-frame")
    page.close()


def test_keyboard_only(browser: Browser, site: LiveServer, sshd: SSHD) -> None:
    page = log_in(browser, site)
    page.get_by_label("Host", exact=True).focus()
    page.keyboard.type("127.0.0.1")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type(str(sshd.port))
    page.keyboard.press("Tab")
    page.keyboard.type(sshd.user)
    page.keyboard.press("Tab")
    page.keyboard.type(sshd.password)
    page.keyboard.press("Enter")
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    for field in ("Folder", "Filter this folder", "Pattern"):
        assert page.get_by_label(field, exact=True).count() == 1, f"{field} has a label"
    # A screen reader says the field's name alone, not the value chosen in it.
    for name in ("Format", "Fit", "Pixel format", "Preset"):
        assert page.get_by_role("combobox", name=name, exact=True,
                                include_hidden=True).count() == 1, name
    assert page.get_by_role("slider", name="Quality", exact=True,
                            include_hidden=True).count() == 1
    # Every form control on the page has a label (hidden steps included).
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select')]
        .filter((el) => el.type !== 'hidden' && el.type !== 'checkbox' && !el.labels.length
                && !el.getAttribute('aria-label')).map((el) => el.id)""")
    assert unlabelled == []
    page.close()



def test_cancel_and_an_unknown_host_key(browser: Browser, make_server: Callable[..., LiveServer],
                                        sshd: SSHD, images: Path, tmp_path: Path) -> None:
    import os

    from PIL import Image

    stranger = make_server(auth={"mode": "users"},
                           ssh={"known_hosts": str(tmp_path / "empty_known_hosts")})
    UserFile(stranger.config.users_file).add("analyst", "analyst-password")
    page = log_in(browser, stranger)
    connect(page, sshd, sshd.password)
    error = page.locator("#connect-error")
    expect(error).to_contain_text(f"Unknown host key for 127.0.0.1:{sshd.port}: "
                                  f"{sshd.host_fingerprint}")
    expect(error).to_contain_text("ssh-keyscan")
    shot(page, "11-unknown-host-key")
    page.close()

    for index in range(120):  # noise encodes slowly: time to press Cancel
        name = images / f"noise{index:03d}.png"
        Image.frombytes("RGB", (640, 480), os.urandom(640 * 480 * 3)).save(name,
                                                                           compress_level=1)
        os.chmod(name, 0o644)
    server = make_server(auth={"mode": "users"}, ssh={"known_hosts": str(sshd.known_hosts)})
    UserFile(server.config.users_file).add("analyst", "analyst-password")
    page = log_in(browser, server)
    connect(page, sshd, sshd.password)
    expect(page.locator("#connected")).to_be_visible(timeout=30_000)
    open_folder(page, images)
    assert images_listed(page) == 120
    page.get_by_label("Pattern", exact=True).fill("noise*.png")
    page.get_by_role("button", name="Select all matching").click()
    page.locator("#crf").fill("0")
    page.locator("summary").click()
    page.locator("#preset").select_option("veryslow")
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#progress")).to_have_attribute("data-status", "running",
                                                        timeout=60_000)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#progress-error")).to_contain_text("Canceled.", timeout=60_000)
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#job-rows")).to_contain_text("canceled")
    shot(page, "12-canceled")
    page.close()


def test_a_slurm_job_from_the_page(browser: Browser, site: LiveServer, sshd: SSHD,
                                   images: Path, tmp_path: Path,
                                   drained: Callable[[], None]) -> None:
    """On a host with Slurm the page offers the compute nodes and the partitions; a
    job that waits says why, with its Slurm job id, then runs on a node."""
    solid_frames(images, [(9 * i, 40, 200) for i in range(30)],
                 names=[f"s{i:02d}.png" for i in range(30)], size=SIZE)
    page = frames_chosen(browser, site, sshd, images, "s*.png")
    placement = page.locator("#placement")
    expect(placement).to_be_visible()
    run_on = page.get_by_label("Run on")  # a select's name also holds its chosen option
    expect(run_on).to_have_value("local")  # the host's profile says nothing
    partition = page.get_by_label("Partition")
    expect(partition).to_be_disabled()
    run_on.select_option("slurm")
    expect(partition).to_be_enabled()
    assert partition.locator("option").all_inner_texts() == [
        "debug (default) · no time limit", "short · up to 00:30:00"]
    expect(partition).to_have_value("debug")
    partition.select_option("short")
    page.get_by_label("Time limit", exact=True).fill("00:10:00")
    shot(page, "13-slurm-options")
    page.get_by_role("button", name="Make video").click()
    waiting = page.locator("#scheduler-text")
    expect(waiting).to_contain_text("partition short", timeout=60_000)
    expect(waiting).to_contain_text("the nodes it needs are not available (down or drained)",
                                    timeout=60_000)
    expect(waiting).to_have_text(re.compile(r"^Slurm job \d+ · partition short · "))
    expect(page.locator("#progress-text")).to_contain_text("Waiting in the Slurm queue")
    shot(page, "14-slurm-waiting")
    drained()
    expect(page.locator("#result")).to_be_visible(timeout=120_000)
    expect(waiting).to_contain_text(re.compile(r"on n[12]"))
    expect(page.locator("#result-text")).to_contain_text(f"{SIZE[0]}×{SIZE[1]}, 30 frames")
    shot(page, "15-slurm-done")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").click()
    saved = tmp_path / "slurm.mp4"
    saved.write_bytes(Path(info.value.path()).read_bytes())
    assert probe(saved)["frames"] == 30
    page.close()



def test_a_chunked_job_from_the_page_says_how_it_was_split(
        browser: Browser, site: LiveServer, sshd: SSHD, images: Path, slurm: str) -> None:
    """A WebM of 60 frames asked for in 5 chunks on Slurm is made in 2 (VP9's
    keyframes are 50 frames apart at 25 fps), and the page says so by the chunks."""
    solid_frames(images, [(4 * i, 60, 160) for i in range(60)],
                 names=[f"c{i:02d}.png" for i in range(60)], size=SIZE)
    page = frames_chosen(browser, site, sshd, images, "c*.png")
    quality = page.locator("#crf")
    expect(quality).to_have_value("23")  # MP4's scale and default
    page.locator("#format").select_option("video/webm")
    expect(quality).to_have_value("32")  # VP9's, as the API's default
    expect(quality).to_have_attribute("max", "63")
    page.get_by_label("Run on").select_option("slurm")
    page.get_by_label("Chunks", exact=True).fill("5")
    page.get_by_role("button", name="Make video").click()
    expect(page.locator("#result")).to_be_visible(timeout=180_000)
    expect(page.locator("#result-text")).to_contain_text(f"{SIZE[0]}×{SIZE[1]}, 60 frames")
    told = page.locator("#scheduler-text")
    expect(told).to_contain_text("2 chunks: 2 done")
    expect(told).to_contain_text("Split into 2 chunks rather than 5: VP9 chunks start on the "
                                 "video's keyframes, every 50 frames (gop), and the video has "
                                 "60; a smaller gop allows more.")
    expect(page.locator("#job-info")).to_contain_text(re.compile(r"Quality \(CRF\)\s*32"))
    shot(page, "16-chunks-split")
    page.close()


def test_a_host_without_slurm_shows_no_placement(browser: Browser,
                                                 make_server: Callable[..., LiveServer],
                                                 no_slurm: HostileSSHD) -> None:
    server = make_server(auth={"mode": "users"}, ssh={"known_hosts": str(no_slurm.known_hosts)})
    UserFile(server.config.users_file).add("analyst", "analyst-password")
    account = no_slurm.accounts["fwnoslurm"]
    page = log_in(browser, server)
    page.get_by_label("Host", exact=True).fill("127.0.0.1")
    page.get_by_label("Port", exact=True).fill(str(no_slurm.port))
    page.get_by_label("User name", exact=True).fill(account.name)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#browse")).to_be_visible(timeout=30_000)
    page.get_by_label("Folder", exact=True).fill("/etc")
    page.keyboard.press("Enter")
    expect(page.locator("#placement")).to_be_hidden()
    assert page.locator("#executor").is_hidden()
    page.close()
