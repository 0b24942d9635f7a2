"""End to end over a real sshd: POST /remotes → POST videos → status → the video."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import SSHD, LiveServer, frame_colours, probe, solid_frames

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0),
           (255, 255, 0), (0, 255, 255), (255, 0, 255), (128, 128, 128), (255, 128, 0)]


def close(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def make_video(server: LiveServer, sid: str, paths: list[str], content_type: str,
               out: Path) -> dict:
    response = server.post_json(f"/remotes/{sid}/videos",
                                {"content-type": content_type, "images": paths})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    vsid = response.json()["sid"]
    assert len(vsid) == 32
    assert response.headers["Location"] == f"/remotes/{sid}/videos/{vsid}"
    status = server.wait_video(sid, vsid)
    assert status["status"] == "succeeded", status
    assert status["ok"] is True and status["ready"] is True
    assert status["progress"] == 100
    assert status["frames_done"] == status["frames_total"] == len(paths)
    video = server.request("GET", f"/remotes/{sid}/videos/{vsid}")
    assert video.status_code == 200
    assert video.headers["Content-Type"] == content_type
    assert video.headers["Accept-Ranges"] == "bytes"
    assert int(video.headers["Content-Length"]) == len(video.content)
    out.write_bytes(video.content)
    return status


def test_mp4_over_ssh_is_h264_with_every_frame(server: LiveServer, remote: str,
                                               images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, COLOURS * 3, size=(101, 75))
    make_video(server, remote, paths, "video/mp4", tmp_path / "out.mp4")
    info = probe(tmp_path / "out.mp4")
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (100, 74)  # evened, inside the first frame
    assert info["frames"] == 30
    assert info["duration"] == pytest.approx(30 / 25, abs=0.02)
    decoded = frame_colours(tmp_path / "out.mp4")
    assert len(decoded) == 30
    assert all(close(got, want) for got, want in zip(decoded, COLOURS * 3, strict=True)), decoded


def test_webm_over_ssh_is_vp9(server: LiveServer, remote: str, images: Path,
                              tmp_path: Path) -> None:
    paths = solid_frames(images, COLOURS, size=(64, 48))
    make_video(server, remote, paths, "video/webm", tmp_path / "out.webm")
    info = probe(tmp_path / "out.webm")
    assert info["codec"] == "vp9"
    assert info["frames"] == 10
    assert (info["width"], info["height"]) == (64, 48)
    assert info["duration"] == pytest.approx(10 / 25, abs=0.02)


def test_mixed_png_and_jpeg_of_different_sizes(server: LiveServer, remote: str,
                                               images: Path, tmp_path: Path) -> None:
    """Alternating formats and sizes: ffmpeg's one-decoder inputs must not drop any."""
    from PIL import Image

    paths = []
    for index, colour in enumerate(COLOURS):
        kind = "PNG" if index % 2 == 0 else "JPEG"
        size = (160, 120) if index % 3 else (90, 160)
        path = images / f"mixed{index}.{'png' if kind == 'PNG' else 'jpg'}"
        Image.new("RGB", size, colour).save(path, kind)
        paths.append(str(path))
    make_video(server, remote, paths, "video/mp4", tmp_path / "mixed.mp4")
    info = probe(tmp_path / "mixed.mp4")
    assert info["frames"] == len(paths)
    assert (info["width"], info["height"]) == (90, 160)  # the first image's size
    # Frames are padded with black, so compare the centre colour instead of the mean.
    decoded = frame_colours(tmp_path / "mixed.mp4", centre=True)
    assert all(close(got, want) for got, want in zip(decoded, COLOURS, strict=True)), decoded


def test_images_in_any_order(server: LiveServer, remote: str, images: Path,
                             tmp_path: Path) -> None:
    paths = solid_frames(images, COLOURS)
    order = [paths[i] for i in (9, 2, 5, 0, 7, 1, 8, 3, 6, 4)]
    make_video(server, remote, order, "video/mp4", tmp_path / "order.mp4")
    decoded = frame_colours(tmp_path / "order.mp4")
    expected = [COLOURS[i] for i in (9, 2, 5, 0, 7, 1, 8, 3, 6, 4)]
    assert all(close(got, want) for got, want in zip(decoded, expected, strict=True)), decoded


def test_hostile_filenames_encode_and_execute_nothing(server: LiveServer, remote: str,
                                                      images: Path, sshd: SSHD,
                                                      tmp_path: Path) -> None:
    # A shell that saw any of these names would create fw-canary in its working
    # directory: the remote home (where the agent and its jobs start) or here.
    names = [
        "with space.png",
        "quote'single.png",
        'quote"double.png',
        "$(touch fw-canary).png",
        "`touch fw-canary`.png",
        "semi;touch fw-canary;.png",
        "ünïcødé 画像.png",
        "new\nline.png",
        "percent%d%08d.png",
        "-leading-dash.png",
        "back\\slash & pipe | amp.png",
    ]
    colours = COLOURS + [(40, 200, 90)]
    paths = solid_frames(images, colours[:len(names)], names=names)
    make_video(server, remote, paths, "video/mp4", tmp_path / "hostile.mp4")
    info = probe(tmp_path / "hostile.mp4")
    assert info["frames"] == len(names)
    decoded = frame_colours(tmp_path / "hostile.mp4")
    expected = colours[:len(names)]
    assert all(close(got, want) for got, want in zip(decoded, expected, strict=True)), decoded
    for place in (sshd.home, images, Path.cwd()):
        assert not (place / "fw-canary").exists(), f"a filename was executed in {place}"
