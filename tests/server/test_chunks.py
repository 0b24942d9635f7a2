"""Chunked encoding, locally (the local transport) and on the real two-node Slurm
(over the real sshd): the joined video against the unchunked one, frame by frame;
retries of a chunk that dies; a chunk that keeps failing; cancel."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from tests.fixtures import SSHD, LiveServer, noise_frames, probe, shared_dir

FINAL = ("succeeded", "failed", "canceled", "expired")
FRAMES = 60
SIZE = (160, 96)
RATE = 25
PSNR_SLACK = 0.5  # dB a chunked frame may lose against the unchunked video's
GOP = 12  # VP9's keyframe interval in these tests: chunks of 12 frames start on keyframes


def grey_frames(directory: Path, count: int = FRAMES, size: tuple[int, int] = SIZE,
                noise: int = 4) -> list[str]:
    """Frame i: a smooth diagonal gradient, a disc that moves, light noise of its own
    (so PSNR is finite and the frames look like frames), the whole raised by 3 grey
    levels a frame, so that each frame's mean luma says which frame it is."""
    rng = random.Random(7)
    width, height = size
    base = [(x + y) * 40 // (width + height) for y in range(height) for x in range(width)]
    paths = []
    for index in range(count):
        cx, cy = (index * 3) % width, height // 2
        pixels = bytearray(width * height)
        for position, value in enumerate(base):
            x, y = position % width, position // width
            disc = 30 if (x - cx) ** 2 + (y - cy) ** 2 < 144 else 0
            level = 20 + 3 * index + value - 20 + disc + rng.randrange(-noise, noise + 1)
            pixels[position] = max(0, min(255, level))
        path = directory / f"g{index:04d}.png"
        Image.frombytes("L", size, bytes(pixels)).convert("RGB").save(path)
        os.chmod(path, 0o644)
        paths.append(str(path))
    return paths


def timestamps(path: Path) -> tuple[list[int], list[int], Fraction]:
    """Every packet's pts and dts (in the stream's time base), and the time base."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=time_base:packet=pts,dts", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    base = Fraction(data["streams"][0]["time_base"])
    packets = data["packets"]
    return ([int(item["pts"]) for item in packets],
            [int(item["dts"]) for item in packets if item.get("dts") is not None], base)


def lumas(path: Path) -> list[float]:
    """The mean luma (0-255) of each decoded frame."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", "scale=16:16",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True,
                         check=True).stdout
    return [sum(raw[offset:offset + 256]) / 256 for offset in range(0, len(raw), 256)]


def psnr(path: Path, frames_dir: Path) -> list[float]:
    """Per-frame PSNR (dB, Y) of the video against the source frames."""
    graph = ("[0:v]format=yuv420p[a];[1:v]scale=out_color_matrix=bt709:out_range=tv,"
             "format=yuv420p[b];[a][b]psnr=stats_file=-")
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "image2",
                          "-framerate", str(RATE), "-i", str(frames_dir / "g%04d.png"),
                          "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True,
                         check=True).stdout
    values = re.findall(r"psnr_y:(\S+)", out)
    return [100.0 if value == "inf" else float(value) for value in values]


def compare_quality(chunked: list[float], whole: list[float]) -> None:
    """The chunked video's quality against the unchunked one's, per frame (PSNR against
    the source frames): no frame more than 0.5 dB below the same frame unchunked, and
    the mean no more than 0.2 dB lower."""
    assert len(chunked) == len(whole) == FRAMES
    worst = min(a - b for a, b in zip(chunked, whole, strict=True))
    frame = [a - b for a, b in zip(chunked, whole, strict=True)].index(worst)
    assert worst >= -PSNR_SLACK, f"frame {frame} is {-worst:.2f} dB below the unchunked video's"
    assert sum(chunked) / FRAMES >= sum(whole) / FRAMES - 0.2


def keyframes(path: Path) -> list[int]:
    """The frames (in presentation order) that are keyframes."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts,flags", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    packets = sorted((int(pts), "K" in flags) for pts, flags in
                     (line.split(",", 1) for line in out.splitlines() if line))
    return [index for index, (_, key) in enumerate(packets) if key]


def check_keyframes(codec: str, paths: dict[int, Path], ranges: dict[int, list[tuple[int, int]]]
                    ) -> None:
    """Every chunk starts on a keyframe; a VP9 chunked video has exactly the unchunked
    video's keyframes (every GOP frames: its chunks start on them)."""
    whole = keyframes(paths[1])
    for count in (2, 5):
        found = keyframes(paths[count])
        assert {start for start, _ in ranges[count]} <= set(found), (ranges[count], found)
        if codec == "vp9":
            assert found == whole == list(range(0, FRAMES, GOP)), (found, whole)


def check_video(path: Path, codec: str, count: int = FRAMES) -> None:
    """What a user would check: codec, size, frame count, timestamps exactly one frame
    apart from 0, decode order monotonic, duration frames ÷ rate."""
    info = probe(path)
    assert (info["codec"], info["width"], info["height"], info["frames"]) == \
        (codec, SIZE[0], SIZE[1], count), info
    pts, dts, base = timestamps(path)
    assert len(pts) == count
    ordered = sorted(pts)
    step = Fraction(1, RATE) / base
    assert ordered[0] == 0 and all(Fraction(b - a) == step
                                   for a, b in zip(ordered, ordered[1:], strict=False)), \
        f"timestamps not {step} ticks apart: {ordered[:12]}..."
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False)), \
        "decode timestamps not increasing"
    assert info["duration"] == pytest.approx(count / RATE, abs=0.5 / RATE)


def check_boundaries(path: Path, ranges: list[tuple[int, int]]) -> None:
    """Frame i is 3 grey levels above frame i - 1: no frame repeated or missing at any
    chunk boundary (or anywhere)."""
    seen = lumas(path)
    assert len(seen) == FRAMES
    for index in range(1, FRAMES):
        assert 1.5 < seen[index] - seen[index - 1] < 4.5, (index, seen[max(0, index - 2):
                                                                       index + 3])
    for _, end in ranges[:-1]:
        before, after = seen[end - 1], seen[end]
        assert 1.5 < after - before < 4.5, f"boundary at {end}: {before} -> {after}"


def chunk_ranges(status: dict[str, Any]) -> list[tuple[int, int]]:
    chunks = [item for item in status["chunks"] if item["index"] is not None]
    return [(item["first_frame"], item["first_frame"] + item["frames"]) for item in chunks]


# -- locally ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grey() -> Path:
    directory = shared_dir("framewire-grey-")
    grey_frames(directory)
    return directory


def make(server: LiveServer, sid: str, body: dict[str, Any], timeout: float = 240
         ) -> dict[str, Any]:
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 202, (response.headers.get("X-Slycat-Message"),
                                         response.headers.get("X-Slycat-Hint"))
    return server.wait_video(sid, response.json()["sid"], timeout)


def fetch(server: LiveServer, sid: str, status: dict[str, Any], path: Path,
          name: str | None = None) -> Path:
    output = next(item for item in status["outputs"] if name in (None, item["name"]))
    response = server.request("GET", f"/remotes/{sid}/videos/{status['sid']}/outputs/"
                                     f"{output['name']}")
    assert response.status_code == 200
    path.write_bytes(response.content)
    return path


CODECS = [("video/mp4", "h264", "mp4"), ("video/webm", "vp9", "webm")]


@pytest.mark.parametrize("content_type,codec,extension", CODECS, ids=["h264", "vp9"])
def test_chunks_join_without_a_seam_locally(local: tuple[LiveServer, str], grey: Path,
                                            tmp_path: Path, content_type: str, codec: str,
                                            extension: str) -> None:
    server, sid = local
    images = [str(grey / f"g{index:04d}.png") for index in range(FRAMES)]
    results, paths, cuts = {}, {}, {}
    for count in (1, 2, 5):
        status = make(server, sid, {"content-type": content_type, "images": images,
                                    "frame-rate": RATE, "chunks": count,
                                    **({"gop": GOP} if codec == "vp9" else {})})
        assert status["status"] == "succeeded", (status["message"], status.get("stderr"))
        assert status["chunking"]["chunks"] == count
        assert len([item for item in status["chunks"] if item["index"] is not None]) == \
            (count if count > 1 else 0)
        if count > 1:
            assert all(item["state"] == "succeeded" and item["attempts"] == 1
                       for item in status["chunks"])
            ranges = chunk_ranges(status)
            assert ranges[0][0] == 0 and ranges[-1][1] == FRAMES
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
        else:
            ranges = [(0, FRAMES)]
        path = fetch(server, sid, status, tmp_path / f"k{count}.{extension}")
        check_video(path, codec)
        check_boundaries(path, ranges)
        results[count], paths[count], cuts[count] = psnr(path, grey), path, ranges
    check_keyframes(codec, paths, cuts)
    for count in (2, 5):
        compare_quality(results[count], results[1])


def test_an_av1_job_in_chunks(local: tuple[LiveServer, str], grey: Path,
                              tmp_path: Path) -> None:
    server, sid = local
    images = [str(grey / f"g{index:04d}.png") for index in range(FRAMES)]
    whole = make(server, sid, {"content-type": "video/mp4", "codec": "av1", "images": images,
                               "frame-rate": RATE})
    status = make(server, sid, {"content-type": "video/mp4", "codec": "av1",
                                "images": images, "frame-rate": RATE, "chunks": 3})
    assert status["status"] == "succeeded", (status["message"], status.get("stderr"))
    path = fetch(server, sid, status, tmp_path / "av1.mp4")
    check_video(path, "av1")
    check_boundaries(path, chunk_ranges(status))
    reference = psnr(fetch(server, sid, whole, tmp_path / "av1-whole.mp4"), grey)
    compare_quality(psnr(path, grey), reference)


def test_a_vp9_video_keeps_its_keyframe_grid_across_a_scene_cut(
        local: tuple[LiveServer, str], grey: Path, tmp_path: Path) -> None:
    """Grey frames, then noise from frame 21: a scene cut between keyframes. The VP9
    video, chunked or not, has keyframes every gop frames and none at the cut, so
    its chunks (cut on that grid) start on keyframes the unchunked video has too."""
    server, sid = local
    images = [str(grey / f"g{index:04d}.png") for index in range(21)] + \
        noise_frames(shared_dir("framewire-cut-"), 19, SIZE)
    found = {}
    for count in (1, 2):
        status = make(server, sid, {"content-type": "video/webm", "images": images,
                                    "frame-rate": RATE, "gop": 8, "chunks": count})
        assert status["status"] == "succeeded", (status["message"], status.get("stderr"))
        if count == 2:
            assert chunk_ranges(status) == [(0, 24), (24, 40)]
        found[count] = keyframes(fetch(server, sid, status, tmp_path / f"cut{count}.webm"))
    assert found[1] == found[2] == [0, 8, 16, 24, 32]


def test_every_output_and_option_works_chunked(local: tuple[LiveServer, str], grey: Path,
                                               tmp_path: Path) -> None:
    """Two videos, a poster and a GIF from one chunked job, with durations and burnt-in
    frame numbers: the videos chunked and joined, the stills made once."""
    server, sid = local
    images = [str(grey / f"g{index:04d}.png") for index in range(40)]
    durations = [2 if index % 10 == 0 else 1 for index in range(40)]  # 44 output frames
    status = make(server, sid, {
        "images": images, "frame-rate": RATE, "durations": [d / RATE for d in durations],
        "chunks": 4, "burn-in": {"frame-number": True},
        "outputs": [{"name": "video", "content-type": "video/mp4"},
                    {"name": "web", "content-type": "video/webm", "gop": 10},
                    {"name": "poster", "kind": "poster", "at": 10},
                    {"name": "preview", "kind": "gif", "width": 80}]})
    assert status["status"] == "succeeded", (status["message"], status.get("stderr"))
    assert status["frames_total"] == 44
    names = [item["name"] for item in status["chunks"]]
    assert names.count("stills") == 1 and len(names) == 5
    # Both videos are cut on the VP9 one's keyframes (every 10 frames), not at 11, 22, 33.
    assert chunk_ranges(status) == [(0, 10), (10, 20), (20, 30), (30, 44)]
    for name, codec in (("video", "h264"), ("web", "vp9")):
        path = fetch(server, sid, status, tmp_path / f"{name}.out", name)
        info = probe(path)
        assert (info["codec"], info["frames"]) == (codec, 44)
        pts, _, base = timestamps(path)
        ordered = sorted(pts)
        assert all(Fraction(b - a) * base == Fraction(1, RATE)
                   for a, b in zip(ordered, ordered[1:], strict=False))
        if codec == "vp9":
            assert keyframes(path) == [0, 10, 20, 30, 40]
    unchunked = make(server, sid, {
        "images": images, "frame-rate": RATE, "durations": [d / RATE for d in durations],
        "burn-in": {"frame-number": True}, "content-type": "video/mp4"})
    whole = fetch(server, sid, unchunked, tmp_path / "whole.mp4")
    joined = fetch(server, sid, status, tmp_path / "joined.mp4", "video")
    # The burnt-in numbers go on counting across chunks: the frames match.
    for a, b in zip(lumas(whole), lumas(joined), strict=True):
        assert abs(a - b) < 1.5
    gif = fetch(server, sid, status, tmp_path / "preview.gif", "preview")
    assert probe(gif)["frames"] == 44
    poster = fetch(server, sid, status, tmp_path / "poster.png", "poster")
    assert Image.open(poster).size == SIZE


def test_a_request_says_when_it_cannot_be_chunked(local: tuple[LiveServer, str],
                                                  grey: Path) -> None:
    server, sid = local
    images = [str(grey / f"g{index:04d}.png") for index in range(12)]
    status = make(server, sid, {"content-type": "video/mp4", "images": images,
                                "frame-rate": RATE, "chunks": 5})
    assert status["status"] == "succeeded"
    assert status["chunking"]["chunks"] == 1
    assert "at least 8 frames" in status["chunking"]["note"]
    assert status["chunking"]["note"] in status["notes"]
    stills = make(server, sid, {"images": images, "frame-rate": RATE, "chunks": 3,
                                "outputs": [{"name": "sheet", "kind": "contact-sheet"}]})
    assert stills["status"] == "succeeded" and stills["chunking"]["chunks"] == 1
    assert "makes no video" in stills["chunking"]["note"]
    for bad in (0, 257, "many", 2.5, True):
        response = server.post_json(f"/remotes/{sid}/videos", {
            "content-type": "video/mp4", "images": images, "chunks": bad})
        assert response.status_code == 400, bad
        assert "chunks must be a whole number from 1 to 256" in \
            response.headers["X-Slycat-Message"]
    # VP9 chunks start on its keyframes, every 2 s by default: 50 frames at 25 fps.
    every = [str(grey / f"g{index:04d}.png") for index in range(FRAMES)]
    coarse = make(server, sid, {"content-type": "video/webm", "images": every,
                                "frame-rate": RATE, "chunks": 5})
    assert coarse["status"] == "succeeded"
    assert chunk_ranges(coarse) == [(0, 50), (50, 60)]
    assert coarse["chunking"]["note"] == (
        "Split into 2 chunks rather than 5: VP9 chunks start on the video's keyframes, "
        "every 50 frames (gop), and the video has 60; a smaller gop allows more.")
    auto = make(server, sid, {"content-type": "video/webm", "images": images, "chunks": "auto"})
    # Two cores here: "auto" stays unchunked locally.
    assert auto["status"] == "succeeded" and auto["chunking"]["chunks"] == 1


def job_processes(job_id: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", job_id], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def until(server: LiveServer, sid: str, vsid: str, check: Callable[[dict[str, Any]], bool],
          timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status").json()
        if check(current):
            return current
        assert current["status"] not in FINAL, current
        assert time.monotonic() < deadline, f"not reached in {timeout} s: {current}"
        time.sleep(0.2)


def agent_pid(server: LiveServer, sid: str) -> int:
    return int(server.request("GET", f"/remotes/{sid}").json()["agent"]["pid"])


def reconnect(server: LiveServer, body: dict[str, Any]) -> str:
    response = server.post_json("/remotes", body)
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return str(response.json()["sid"])


def chunk_pid(job_dir: Path, name: str) -> int:
    return int(json.loads((job_dir / "chunks" / name / "status.json").read_text())["pid"])


def test_a_killed_chunk_is_retried_and_cancel_leaves_nothing(
        local: tuple[LiveServer, str], tmp_path: Path) -> None:
    server, sid = local
    directory = shared_dir("framewire-noise-")
    images = noise_frames(directory, 90)
    body = {"content-type": "video/mp4", "images": images, "frame-rate": RATE, "chunks": 3,
            "preset": "slow"}
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 202
    vsid = response.json()["sid"]
    # x264's look-ahead holds the frame count at 0 for a while: wait for the state.
    until(server, sid, vsid, lambda s: any(item["state"] == "running" for item in s["chunks"]))
    # The agent killed: a new session finds the half-done job going on, not started over.
    os.kill(agent_pid(server, sid), signal.SIGKILL)
    sid = reconnect(server, {"hostname": "localhost"})
    running = until(server, sid, vsid, lambda s: any(
        item["state"] == "running" for item in s["chunks"]))
    assert all(item["attempts"] <= 1 for item in running["chunks"])
    victim = next(item for item in running["chunks"] if item["state"] == "running")
    time.sleep(1.0)
    job_dir = next(Path(server.config.local.work_dir).glob(f"jobs/*/chunks/{victim['name']}"))
    job_dir = job_dir.parent.parent
    os.kill(chunk_pid(job_dir, victim["name"]), signal.SIGKILL)
    final = server.wait_video(sid, vsid, 300)
    assert final["status"] == "succeeded", final["message"]
    again = next(item for item in final["chunks"] if item["name"] == victim["name"])
    assert again["attempts"] == 2 and again["state"] == "succeeded"
    assert all(item["attempts"] == 1 for item in final["chunks"]
               if item["name"] != victim["name"])
    path = fetch(server, sid, final, tmp_path / "retried.mp4")
    assert probe(path)["frames"] == 90
    # Cancel while the chunks run: no process of the job is left.
    response = server.post_json(f"/remotes/{sid}/videos", body)
    vsid = response.json()["sid"]
    until(server, sid, vsid, lambda s: sum(item["state"] == "running"
                                           for item in s["chunks"]) >= 2)
    job_id = next(path.parent.parent.name for path in Path(server.config.local.work_dir).glob(
        "jobs/*/chunks/000") if path.parent.parent.name != job_dir.name)
    assert job_processes(job_id)
    canceled = server.request("POST", f"/remotes/{sid}/videos/{vsid}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    deadline = time.monotonic() + 10
    while job_processes(job_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job_processes(job_id) == []
    assert not list((Path(server.config.local.work_dir) / "jobs" / job_id).glob("partial.*"))


def test_a_chunk_that_keeps_failing_fails_the_job_naming_it(
        local: tuple[LiveServer, str], grey: Path, tmp_path: Path) -> None:
    server, sid = local
    directory = shared_dir("framewire-broken-")
    images = []
    for index in range(40):
        path = directory / f"b{index:04d}.png"
        data = bytearray((grey / f"g{index:04d}.png").read_bytes())
        if index == 32:  # frame 33, in the last of 4 chunks: whole, but garbage pixels
            start = data.index(b"IDAT") + 4
            data[start:start + 20] = b"\xff" * 20
        path.write_bytes(bytes(data))
        os.chmod(path, 0o644)
        images.append(str(path))
    status = make(server, sid, {"content-type": "video/mp4", "images": images,
                                "frame-rate": RATE, "chunks": 4})
    assert status["status"] == "failed"
    assert status["message"].startswith("Chunk 3 (frames 31-40) failed 3 times"), \
        status["message"]
    # The image is named by its place in the whole job, not in its chunk.
    assert f"the last time: Image 33 of 40 could not be decoded: {images[32]} (" in \
        status["message"], status["message"]
    broken = next(item for item in status["chunks"] if item["index"] == 3)
    assert broken["attempts"] == 3 and broken["state"] == "failed"
    assert status["outputs"] == []


# -- on Slurm -----------------------------------------------------------------------

@pytest.fixture
def cluster(make_server: Callable[..., LiveServer], sshd: SSHD, slurm: str
            ) -> tuple[LiveServer, str]:
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts),
                              "client_keys": [str(sshd.client_key)]})
    response = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                             "username": sshd.user})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return server, response.json()["sid"]


def slurm_jobs(user: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-u", user, "-o", "%i|%j|%T"], capture_output=True,
                         text=True, check=False).stdout
    return [line for line in out.splitlines() if "framewire-" in line]


@pytest.mark.parametrize("content_type,codec,extension", CODECS, ids=["h264", "vp9"])
def test_chunks_on_slurm_run_as_an_array_on_both_nodes(
        cluster: tuple[LiveServer, str], grey: Path, tmp_path: Path, sshd: SSHD,
        content_type: str, codec: str, extension: str) -> None:
    server, sid = cluster
    images = [str(grey / f"g{index:04d}.png") for index in range(FRAMES)]
    results, paths, cuts = {}, {}, {}
    for count in (1, 2, 5):
        status = make(server, sid, {"content-type": content_type, "images": images,
                                    "frame-rate": RATE, "chunks": count, "executor": "slurm",
                                    "slurm": {"cpus": 1},
                                    **({"gop": GOP} if codec == "vp9" else {})}, timeout=300)
        assert status["status"] == "succeeded", (status["message"], status.get("stderr"))
        path = fetch(server, sid, status, tmp_path / f"slurm{count}.{extension}")
        check_video(path, codec)
        ranges = chunk_ranges(status) if count > 1 else [(0, FRAMES)]
        assert len(ranges) == count
        check_boundaries(path, ranges)
        results[count], paths[count], cuts[count] = psnr(path, grey), path, ranges
        if count > 1:
            ids = status["scheduler"]["job_ids"]
            assert len(ids) == 2 and all(item.isdigit() for item in ids)  # array, join
            assert all(item["state"] == "succeeded" for item in status["chunks"])
        if count == 5:
            nodes = {item["node"] for item in status["chunks"]}
            assert nodes == {"n1", "n2"}, status["chunks"]
    check_keyframes(codec, paths, cuts)
    for count in (2, 5):
        compare_quality(results[count], results[1])
    assert slurm_jobs(sshd.user) == []


def test_a_scancelled_task_is_retried_and_cancel_leaves_no_slurm_job(
        cluster: tuple[LiveServer, str], sshd: SSHD, tmp_path: Path) -> None:
    server, sid = cluster
    directory = shared_dir("framewire-noise-")
    images = noise_frames(directory, 60)
    # veryslow: a task runs for seconds, time enough to find it running and scancel it.
    body = {"content-type": "video/mp4", "images": images, "frame-rate": RATE, "chunks": 2,
            "preset": "veryslow", "executor": "slurm", "slurm": {"cpus": 1}}
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    vsid = response.json()["sid"]
    until(server, sid, vsid, lambda s: any(item["state"] == "running" for item in s["chunks"]),
          timeout=180)
    # The agent killed mid-array: a new agent follows the same array, nothing restarts.
    os.kill(agent_pid(server, sid), signal.SIGKILL)
    sid = reconnect(server, {"hostname": "127.0.0.1", "port": sshd.port,
                             "username": sshd.user})
    running = until(server, sid, vsid, lambda s: any(
        item["state"] == "running" for item in s["chunks"]), timeout=60)
    assert all(item["attempts"] <= 1 for item in running["chunks"])
    array = running["scheduler"]["job_ids"][0]
    task, deadline = None, time.monotonic() + 60
    while task is None and time.monotonic() < deadline:  # as Slurm itself says it
        rows = subprocess.run(["squeue", "-h", "-j", array, "-o", "%i|%K|%T"],
                              capture_output=True, text=True, check=True).stdout.split()
        task = next((row.split("|")[0] for row in rows if row.split("|")[2] == "RUNNING"),
                    None)
        time.sleep(0.2)
    assert task is not None, "no task of the array ran"
    subprocess.run(["scancel", task], check=True)
    final = server.wait_video(sid, vsid, 400)
    assert final["status"] == "succeeded", final["message"]
    assert sorted(item["attempts"] for item in final["chunks"]) == [1, 2], final["chunks"]
    path = fetch(server, sid, final, tmp_path / "retried.mp4")
    assert probe(path)["frames"] == 60
    assert slurm_jobs(sshd.user) == []
    # Cancel while the array runs: no Slurm job and no process of it is left.
    response = server.post_json(f"/remotes/{sid}/videos", body)
    vsid = response.json()["sid"]
    until(server, sid, vsid, lambda s: any(item["state"] == "running"
                                           for item in s["chunks"]), timeout=180)
    assert slurm_jobs(sshd.user)
    canceled = server.request("POST", f"/remotes/{sid}/videos/{vsid}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    deadline = time.monotonic() + 30
    while slurm_jobs(sshd.user) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert slurm_jobs(sshd.user) == []
    assert subprocess.run(["pgrep", "-u", sshd.user, "ffmpeg"], capture_output=True
                          ).returncode == 1
