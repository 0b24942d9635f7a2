"""Watching a video while it encodes: the status's growing ``preview`` and the byte
ranges of ``GET …/preview``, with real ffmpeg over the local transport and the
real sshd; the final video stays as it would be without a preview."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable

from server.jobs.service import NO_PREVIEW
from tests.fixtures import SSHD, LiveServer, noise_frames, probe, run, solid_frames

FINAL = ("succeeded", "failed", "canceled", "expired")


NOISE = (480, 270)  # frames of random pixels, this size unless a test says


def start(server: LiveServer, sid: str, body: dict[str, Any]) -> str:
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    return str(response.json()["sid"])


def status_of(server: LiveServer, sid: str, vsid: str) -> dict[str, Any]:
    response = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status")
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    return dict(response.json())


def watch(server: LiveServer, sid: str, vsid: str, target: Path) -> dict[str, Any]:
    """Follow a job to its end, fetching each new part of its preview as a player
    would (``bytes=0-``, then ``bytes=N-``) into ``target``; what was seen."""
    looks: list[dict[str, Any]] = []
    ranges: list[tuple[int, int, int]] = []
    fetched = 0
    deadline = time.monotonic() + 240
    with open(target, "wb") as out:
        while True:
            status = status_of(server, sid, vsid)
            if status["status"] in FINAL:
                break
            preview = status["preview"]
            if preview is not None:
                assert status["status"] == "running"
                looks.append(preview)
                if preview["size"] > fetched:
                    response = server.request("GET", preview["url"],
                                              headers={"Range": f"bytes={fetched}-"})
                    if response.status_code == 404:
                        # The job ended between the two requests: said in words.
                        assert response.json()["errors"][0]["code"] == "no-preview"
                        assert "just ended" in response.headers["X-Slycat-Hint"] or \
                            "done" in response.headers["X-Slycat-Hint"]
                        continue
                    assert response.status_code == 206, response.headers.get(
                        "X-Slycat-Message")
                    assert response.headers["Cache-Control"] == "no-store"
                    assert response.headers["Content-Type"] == preview["content_type"]
                    first, last, size = (int(part) for part in re.fullmatch(
                        r"bytes (\d+)-(\d+)/(\d+)", response.headers["Content-Range"]).groups())
                    # Up to the whole fragments known when it was asked: no fewer than
                    # the status said a moment before.
                    assert (first, last) == (fetched, size - 1) and size >= preview["size"]
                    assert len(response.content) == size - fetched
                    out.write(response.content)
                    ranges.append((first, last, size))
                    fetched = size
            assert time.monotonic() < deadline, f"still {status['status']}: {status}"
            time.sleep(0.3)
    return {"final": status, "looks": looks, "ranges": ranges, "fetched": fetched}


def check_growth(seen: dict[str, Any]) -> None:
    looks = seen["looks"]
    frames = [look["frames"] for look in looks]
    sizes = [look["size"] for look in looks]
    assert len(set(frames)) >= 3, f"the preview did not grow steadily: {frames}"
    assert frames == sorted(frames) and sizes == sorted(sizes)
    assert all(frame > 0 for frame in frames)
    assert len(seen["ranges"]) >= 2 and seen["ranges"][0][0] == 0


def moov_before_mdat(path: Path) -> bool:
    data = path.read_bytes()
    return 0 <= data.find(b"moov") < data.find(b"mdat")


def check_gone(server: LiveServer, sid: str, vsid: str, work_dir: Path | None) -> None:
    """Once the job ended: no preview in the status, the route says so, no file."""
    assert status_of(server, sid, vsid)["preview"] is None
    response = server.request("GET", f"/remotes/{sid}/videos/{vsid}/preview")
    assert response.status_code == 404
    assert response.headers["X-Slycat-Message"] == NO_PREVIEW
    assert response.json()["errors"][0]["code"] == "no-preview"
    if work_dir is not None:
        job_dir = work_dir / "jobs" / vsid
        assert job_dir.is_dir() and not list(job_dir.glob("partial.*"))


def test_an_mp4_job_plays_what_is_encoded_while_it_grows(local: tuple[LiveServer, str],
                                                         images: Path, tmp_path: Path) -> None:
    server, sid = local
    paths = noise_frames(images, 150, NOISE, "noise")
    vsid = start(server, sid, {"content-type": "video/mp4", "images": paths, "frame-rate": 10,
                               "crf": 20, "preset": "slow"})
    before = server.request("GET", f"/remotes/{sid}/videos/{vsid}/preview")
    assert before.status_code == 404  # nothing whole yet: the encoder is just starting
    assert "first fragment" in before.headers["X-Slycat-Hint"]
    seen = watch(server, sid, vsid, tmp_path / "preview.mp4")
    final = seen["final"]
    assert final["status"] == "succeeded", (final["message"], final.get("stderr"))
    check_growth(seen)
    last = seen["looks"][-1]
    assert last["url"] == f"/remotes/{sid}/videos/{vsid}/preview"
    assert last["content_type"] == "video/mp4"
    match = re.fullmatch(r'video/mp4; codecs="avc1\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})"',
                         last["mime"])
    assert match and match.group(1) == "64", last["mime"]  # High (yuv420p)
    # The bytes fetched piece by piece are one stream ffmpeg reads, every frame the
    # status counted in it.
    played = probe(tmp_path / "preview.mp4")
    assert played["codec"] == "h264" and (played["width"], played["height"]) == (480, 270)
    counted = max(look["frames"] for look in seen["looks"] if look["size"] <= seen["fetched"])
    assert played["frames"] >= counted
    # The final video is as ever: faststart, every frame.
    video = server.request("GET", f"/remotes/{sid}/videos/{vsid}")
    (tmp_path / "final.mp4").write_bytes(video.content)
    assert moov_before_mdat(tmp_path / "final.mp4")
    info = probe(tmp_path / "final.mp4")
    assert (info["codec"], info["profile"], info["frames"]) == ("h264", "High", 150)
    check_gone(server, sid, vsid, Path(server.config.local.work_dir))
    gone = server.request("GET", f"/remotes/{sid}/videos/{vsid}/preview")
    assert f"GET /remotes/{sid}/videos/{vsid}" in gone.headers["X-Slycat-Hint"]
    # The progress stream carried the preview too, growing, and null at the end.
    with server.request("GET", f"/remotes/{sid}/videos/{vsid}/events", stream=True,
                        headers={"Accept": "application/x-ndjson"}) as stream:
        events = [json.loads(line)["data"] for line in stream.iter_lines()]
    streamed = [event["preview"]["frames"] for event in events if event["preview"]]
    # (throttled as progress is: at most two events a second)
    assert len(set(streamed)) >= 2 and streamed == sorted(streamed)
    assert events[-1]["status"] == "succeeded" and events[-1]["preview"] is None


def test_a_webm_job_previews_as_live_webm(local: tuple[LiveServer, str], images: Path,
                                          tmp_path: Path) -> None:
    server, sid = local
    paths = noise_frames(images, 160, (320, 180), "noise")
    vsid = start(server, sid, {"content-type": "video/webm", "images": paths,
                               "frame-rate": 10, "speed": 5})
    seen = watch(server, sid, vsid, tmp_path / "preview.webm")
    assert seen["final"]["status"] == "succeeded", seen["final"]["message"]
    check_growth(seen)
    assert seen["looks"][-1]["mime"] == 'video/webm; codecs="vp9"'
    played = probe(tmp_path / "preview.webm")
    assert played["codec"] == "vp9" and played["format"].startswith("matroska")
    counted = max(look["frames"] for look in seen["looks"] if look["size"] <= seen["fetched"])
    assert played["frames"] >= counted
    video = server.request("GET", f"/remotes/{sid}/videos/{vsid}")
    (tmp_path / "final.webm").write_bytes(video.content)
    assert probe(tmp_path / "final.webm")["frames"] == 160
    check_gone(server, sid, vsid, Path(server.config.local.work_dir))


def test_preview_ranges_over_ssh_and_a_cancel_removes_it(server: LiveServer, remote: str,
                                                        images: Path) -> None:
    paths = noise_frames(images, 150, NOISE, "noise")
    vsid = start(server, remote, {"content-type": "video/mp4", "images": paths,
                                  "frame-rate": 10, "crf": 20, "preset": "slow"})
    deadline = time.monotonic() + 120
    while (preview := status_of(server, remote, vsid)["preview"]) is None:
        assert time.monotonic() < deadline, "no preview"
        time.sleep(0.2)
    url = f"/remotes/{remote}/videos/{vsid}/preview"
    head = server.request("HEAD", url, headers={"Range": "bytes=0-99"})
    assert head.status_code == 206
    size = int(head.headers["Content-Range"].rpartition("/")[2])
    assert size >= preview["size"]
    assert head.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert head.headers["Content-Length"] == "100" and head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Cache-Control"] == "no-store"
    assert head.content == b""
    whole = server.request("GET", url)
    assert whole.status_code == 200
    assert whole.content[4:8] == b"ftyp" and len(whole.content) >= preview["size"]
    middle = server.request("GET", url, headers={"Range": "bytes=8-15"})
    assert middle.status_code == 206 and middle.content == whole.content[8:16]
    assert server.request("GET", f"/api{url}", headers={"Range": "bytes=0-7"}).content == \
        whole.content[:8]
    beyond = server.request("GET", url, headers={"Range": f"bytes={1 << 40}-"})
    assert beyond.status_code == 416
    assert server.request("POST", f"/remotes/{remote}/videos/{vsid}/cancel").status_code == 200
    assert status_of(server, remote, vsid)["status"] == "canceled"
    check_gone(server, remote, vsid, None)
    leftovers = run(["runuser", "-u", "fwtest", "--", "sh", "-c",
                     f"ls ~/.cache/framewire/jobs/{vsid}"]).stdout.split()
    assert not [name for name in leftovers if name.startswith("partial.")], leftovers


def test_a_preview_that_vanishes_is_a_404_in_words(local: tuple[LiveServer, str],
                                                   images: Path, tmp_path: Path) -> None:
    """The file goes as the job ends, maybe between a status and the fetch that
    follows it: the answer is an error, not a cut connection."""
    server, sid = local
    paths = noise_frames(images, 150, NOISE, "noise")
    vsid = start(server, sid, {"content-type": "video/mp4", "images": paths, "frame-rate": 10,
                               "crf": 20, "preset": "slow"})
    deadline = time.monotonic() + 120
    while (status := status_of(server, sid, vsid))["preview"] is None:
        assert time.monotonic() < deadline and status["status"] not in FINAL, status
        time.sleep(0.2)
    job_dir = Path(server.config.local.work_dir) / "jobs" / vsid
    (job_dir / "partial.preview.mp4").unlink()
    response = server.request("GET", f"/remotes/{sid}/videos/{vsid}/preview")
    assert response.status_code == 404
    assert response.headers["X-Slycat-Message"] == NO_PREVIEW
    assert response.headers["X-Slycat-Hint"] == (
        "The job has just ended and its preview with it: fetch the video itself, "
        f"GET /remotes/{sid}/videos/{vsid}, once its status is final.")
    final = server.wait_video(sid, vsid)
    assert final["status"] == "succeeded" and final["preview"] is None
    video = server.request("GET", f"/remotes/{sid}/videos/{vsid}")
    (tmp_path / "final.mp4").write_bytes(video.content)
    assert probe(tmp_path / "final.mp4")["frames"] == 150


def test_the_preview_changes_nothing_in_the_video_and_can_be_turned_off(
        local: tuple[LiveServer, str], images: Path, tmp_path: Path) -> None:
    server, sid = local
    paths = solid_frames(images, [(i * 9 % 256, 80, 160) for i in range(40)], size=(160, 96))
    made = {}
    for preview in (True, False):
        vsid = start(server, sid, {"content-type": "video/mp4", "images": paths,
                                   "preview": preview})
        seen = []
        while (status := status_of(server, sid, vsid))["status"] not in FINAL:
            seen.append(status["preview"])
            time.sleep(0.1)
        assert status["status"] == "succeeded", status["message"]
        if not preview:
            assert seen == [None] * len(seen)
        made[preview] = server.request("GET", f"/remotes/{sid}/videos/{vsid}").content
    assert made[True] == made[False]  # byte for byte: one encode, the same muxing
    wrong = server.post_json(f"/remotes/{sid}/videos", {"content-type": "video/mp4",
                                                        "images": paths, "preview": "yes"})
    assert wrong.status_code == 400
    assert wrong.headers["X-Slycat-Message"] == "preview must be true or false, got 'yes'."
    assert wrong.json()["errors"][0]["source"]["pointer"] == "/preview"


def test_a_chunked_job_has_no_preview(local: tuple[LiveServer, str], images: Path) -> None:
    server, sid = local
    paths = noise_frames(images, 100, (320, 180), "noise")
    vsid = start(server, sid, {"content-type": "video/mp4", "images": paths, "chunks": 2,
                               "frame-rate": 10, "preset": "medium"})
    looked = False
    while (status := status_of(server, sid, vsid))["status"] not in FINAL:
        assert status["preview"] is None
        if status["status"] == "running" and not looked:
            response = server.request("GET", f"/remotes/{sid}/videos/{vsid}/preview")
            assert response.status_code == 404
            assert "chunks has no preview" in response.headers["X-Slycat-Hint"]
            looked = True
        time.sleep(0.2)
    assert status["status"] == "succeeded" and status["chunking"]["chunks"] == 2
    assert looked
    check_gone(server, sid, vsid, Path(server.config.local.work_dir))


def test_a_slurm_job_previews_from_its_node(make_server: Callable[..., LiveServer], sshd: SSHD,
                                            slurm: str, images: Path, tmp_path: Path) -> None:
    server = make_server(ssh={"known_hosts": str(sshd.known_hosts),
                              "client_keys": [str(sshd.client_key)]})
    login = server.post_json("/remotes", {"hostname": "127.0.0.1", "port": sshd.port,
                                          "username": sshd.user})
    assert login.status_code == 200, login.headers.get("X-Slycat-Message")
    sid = login.json()["sid"]
    paths = noise_frames(images, 200, NOISE, "noise")  # at the node's nice 0: long enough to watch
    vsid = start(server, sid, {"content-type": "video/mp4", "images": paths, "frame-rate": 10,
                               "crf": 20, "preset": "slow", "executor": "slurm"})
    seen = watch(server, sid, vsid, tmp_path / "preview.mp4")
    final = seen["final"]
    assert final["status"] == "succeeded", (final["message"], final.get("stderr"))
    assert final["executor"] == "slurm" and final["scheduler"]["nodes"]
    check_growth(seen)
    played = probe(tmp_path / "preview.mp4")
    counted = max(look["frames"] for look in seen["looks"] if look["size"] <= seen["fetched"])
    assert played["codec"] == "h264" and played["frames"] >= counted
    check_gone(server, sid, vsid, None)
