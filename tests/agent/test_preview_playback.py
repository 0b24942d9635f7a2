"""A growing preview plays in a real Chromium (Debian's, headless) through MediaSource:
the mime the agent reads from the file is one ``addSourceBuffer`` takes, and the
pieces a player fetches (up to each reported ``size``) append and decode, every
frame the preview counted."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import Page, sync_playwright

from agent import preview
from agent.spec import VideoOutput

RATE = 10
FRAMES = 45
ENCODERS = {"h264": ["-c:v", "libx264", "-preset", "ultrafast"],
            "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
            "av1": ["-c:v", "libsvtav1", "-preset", "12"]}

PLAYER = """
async ([mime, pieces]) => {
  const result = {supported: MediaSource.isTypeSupported(mime), ends: []};
  if (!result.supported) return result;
  const video = document.createElement("video");
  video.muted = true;
  document.body.append(video);
  const source = new MediaSource();
  video.src = URL.createObjectURL(source);
  await new Promise((done) => source.addEventListener("sourceopen", done, {once: true}));
  const buffer = source.addSourceBuffer(mime);
  for (const piece of pieces) {
    const bytes = Uint8Array.from(atob(piece), (c) => c.charCodeAt(0));
    await new Promise((done, fail) => {
      buffer.addEventListener("updateend", done, {once: true});
      buffer.addEventListener("error", () => fail(new Error("append failed")), {once: true});
      buffer.appendBuffer(bytes);
    });
    result.ends.push(buffer.buffered.length ? buffer.buffered.end(0) : 0);
  }
  source.endOfStream();
  await video.play();
  await new Promise((done) => video.addEventListener("ended", done, {once: true}));
  result.decoded = video.getVideoPlaybackQuality().totalVideoFrames;
  result.error = video.error && video.error.message;
  return result;
}
"""


@pytest.fixture
def page() -> Iterator[Page]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise RuntimeError("Chromium is not installed: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        opened = browser.new_page()
        opened.set_content("<!doctype html><title>preview</title>")
        yield opened
        browser.close()


def made_preview(directory: Path, content_type: str, codec: str) -> Path:
    extension = "mp4" if content_type == "video/mp4" else "webm"
    output = VideoOutput("video", content_type, extension, 160, 96, "contain", "black", codec,
                         ENCODERS[codec][1], 30, None, None, None, "yuv420p", None)
    path = directory / preview.file_name(output)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=s=160x96:r={RATE}", "-frames:v", str(FRAMES), "-map", "0:v",
                    *ENCODERS[codec], "-pix_fmt", "yuv420p",
                    *preview.tee_args(output, str(directory / f"final.{extension}"),
                                      str(path))], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("content_type,codec", [("video/mp4", "h264"), ("video/mp4", "av1"),
                                                ("video/webm", "vp9"), ("video/webm", "av1")])
def test_chromium_plays_the_preview_piece_by_piece(page: Page, tmp_path: Path,
                                                    content_type: str, codec: str) -> None:
    path = made_preview(tmp_path, content_type, codec)
    data = path.read_bytes()
    # The file as a player met it: a look halfway through, and one at the end.
    growing = tmp_path / f"growing{path.suffix}"
    growing.write_bytes(data[:len(data) // 2])
    reader = preview.PreviewReader(str(growing), content_type)
    first = reader.look()
    growing.write_bytes(data)
    last = reader.look()
    assert first is not None and last is not None and first["size"] < last["size"]
    assert first["mime"] == last["mime"]
    pieces = [data[:first["size"]], data[first["size"]:last["size"]]]
    played: dict[str, Any] = page.evaluate(
        PLAYER, [last["mime"], [base64.b64encode(piece).decode() for piece in pieces]])
    assert played["supported"], f"Chromium does not take {last['mime']}"
    # Each piece ends on a whole fragment: what was appended plays to its last frame.
    assert played["ends"][0] == pytest.approx(first["frames"] / RATE, abs=1.5 / RATE)
    assert played["ends"][1] == pytest.approx(last["frames"] / RATE, abs=1.5 / RATE)
    assert played["error"] is None
    assert played["decoded"] >= last["frames"] == FRAMES
