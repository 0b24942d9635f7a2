"""Browse, files, images and byte ranges over a real SSH session."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from server import errors
from server.http.streaming import parse_range
from tests.fixtures import LiveServer, solid_frames


@pytest.fixture
def blob(images: Path) -> tuple[Path, bytes]:
    data = os.urandom(5000)
    path = images / "blob.bin"
    path.write_bytes(data)
    os.chmod(path, 0o644)
    return path, data


def test_range_returns_exactly_those_bytes(server: LiveServer, remote: str,
                                           blob: tuple[Path, bytes]) -> None:
    path, data = blob
    url = f"/remotes/{remote}/file{path}"
    whole = server.request("GET", url)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["Accept-Ranges"] == "bytes"
    part = server.request("GET", url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert part.headers["Content-Length"] == "100"
    assert part.content == data[100:200]
    tail = server.request("GET", url, headers={"Range": "bytes=-300"})
    assert tail.status_code == 206 and tail.content == data[-300:]
    open_ended = server.request("GET", url, headers={"Range": "bytes=4990-"})
    assert open_ended.status_code == 206 and open_ended.content == data[4990:]
    clipped = server.request("GET", url, headers={"Range": "bytes=4000-999999"})
    assert clipped.headers["Content-Range"] == f"bytes 4000-4999/{len(data)}"
    assert clipped.content == data[4000:]


def test_range_past_the_end_is_416(server: LiveServer, remote: str,
                                   blob: tuple[Path, bytes]) -> None:
    path, data = blob
    response = server.request("GET", f"/remotes/{remote}/file{path}",
                              headers={"Range": f"bytes={len(data)}-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"
    assert response.headers["X-Slycat-Message"] == "Requested range not satisfiable."


def test_head_gives_length_without_body(server: LiveServer, remote: str,
                                        blob: tuple[Path, bytes]) -> None:
    path, data = blob
    response = server.request("HEAD", f"/remotes/{remote}/file{path}")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(data))
    assert response.content == b""


def test_video_ranges_match_the_full_file(server: LiveServer, remote: str,
                                          images: Path) -> None:
    paths = solid_frames(images, [(i * 20, 0, 255 - i * 20) for i in range(12)],
                         size=(128, 96))
    vsid = server.post_json(f"/remotes/{remote}/videos",
                            {"content-type": "video/mp4", "images": paths}).json()["sid"]
    assert server.wait_video(remote, vsid)["status"] == "succeeded"
    url = f"/remotes/{remote}/videos/{vsid}"
    full = server.request("GET", url).content
    head = server.request("HEAD", url)
    assert head.headers["Content-Length"] == str(len(full))
    assert head.headers["Content-Type"] == "video/mp4"
    part = server.request("GET", url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(full)}"
    assert part.content == full[100:200]
    beyond = server.request("GET", url, headers={"Range": f"bytes={len(full) + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(full)}"
    # +faststart: the moov atom precedes the media data.
    assert full.find(b"moov") < full.find(b"mdat")


def test_parse_range_rules() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == (0, 0)
    assert parse_range("bytes=2-", 10) == (2, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=-30", 10) == (0, 9)
    assert parse_range("bytes=5-2", 10) is None          # invalid: ignored, whole file
    assert parse_range("bytes=0-1,4-5", 10) is None      # several ranges: whole file
    assert parse_range("items=0-1", 10) is None
    for header in ("bytes=10-", "bytes=10-20", "bytes=-0"):
        with pytest.raises(errors.RangeNotSatisfiable):
            parse_range(header, 10)


def test_browse_lists_directories_first_with_slycat_fields(server: LiveServer, remote: str,
                                                          images: Path) -> None:
    solid_frames(images, [(0, 0, 0), (1, 1, 1)])
    (images / "notes.txt").write_text("hello")
    (images / "sub").mkdir()
    response = server.post_json(f"/remotes/{remote}/browse{images}", {})
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == str(images)
    assert body["names"] == ["sub", "frame0000.png", "frame0001.png", "notes.txt"]
    assert body["types"] == ["d", "f", "f", "f"]
    assert body["mime-types"] == [None, "image/png", "image/png", "text/plain"]
    assert body["sizes"][3] == 5
    assert len(body["mtimes"]) == 4 and body["mtimes"][1].startswith("20")
    filtered = server.post_json(f"/remotes/{remote}/browse{images}",
                                {"file-reject": ".*", "file-allow": "[.]txt$"}).json()
    assert filtered["names"] == ["sub", "notes.txt"]
    # Natural order, as a video takes the frames: img_2 before img_10.
    for name in ("img_10.png", "img_2.png", "IMG_3.png", "img_100.png", "img_1.png"):
        (images / name).write_bytes(b"")
    for name in ("run10", "run2"):
        (images / name).mkdir()
    ordered = server.post_json(f"/remotes/{remote}/browse{images}",
                               {"file-reject": "frame[0-9]|notes"}).json()
    assert ordered["names"] == ["run2", "run10", "sub", "img_1.png", "img_2.png", "IMG_3.png",
                                "img_10.png", "img_100.png"]
    bad = server.post_json(f"/remotes/{remote}/browse{images}", {"file-reject": "("})
    assert bad.status_code == 400
    assert bad.headers["X-Slycat-Message"].startswith(
        "file-reject is not a valid regular expression")


def test_image_passthrough_and_conversion(server: LiveServer, remote: str,
                                          images: Path) -> None:
    path = solid_frames(images, [(200, 30, 30)], size=(400, 300))[0]
    work = Path(server.request("GET", f"/remotes/{remote}").json()["agent"]["work_dir"])
    # Other tests share the remote account; only this test's temporaries count.
    before = set((work / "tmp").iterdir()) if (work / "tmp").exists() else set()
    original = server.request("GET", f"/remotes/{remote}/image{path}")
    assert original.status_code == 200
    assert original.headers["Content-Type"] == "image/png"
    assert original.content == Path(path).read_bytes()
    thumb = server.request("GET", f"/remotes/{remote}/image{path}",
                           params={"content-type": "image/jpeg", "max-width": "64"})
    assert thumb.status_code == 200
    assert thumb.headers["Content-Type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(thumb.content))
    assert picture.format == "JPEG" and picture.size == (64, 48)
    red = picture.convert("RGB").getpixel((32, 24))
    assert abs(red[0] - 200) < 25 and red[1] < 60
    square = server.request("GET", f"/remotes/{remote}/image{path}",
                            params={"max-size": "100"})
    assert Image.open(io.BytesIO(square.content)).size == (100, 75)
    bad = server.request("GET", f"/remotes/{remote}/image{path}", params={"max-width": "0"})
    assert bad.status_code == 400
    assert bad.headers["X-Slycat-Message"] == \
        "max-width must be a whole number of pixels from 1 to 999999999."
    assert set((work / "tmp").iterdir()) <= before, "converted thumbnails were not removed"


def test_a_thumbnail_of_an_image_that_does_not_decode_is_the_images_fault(
        server: LiveServer, remote: str, images: Path) -> None:
    path = Path(solid_frames(images, [(0, 90, 200)], size=(120, 90))[0])
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start:start + 20] = b"\xff" * 20  # a PNG from end to end, its pixels garbage
    path.write_bytes(bytes(data))
    thumb = server.request("GET", f"/remotes/{remote}/image{path}",
                           params={"content-type": "image/jpeg", "max-width": "64"})
    assert thumb.status_code == 400, thumb.headers.get("X-Slycat-Message")
    assert thumb.json()["errors"][0]["code"] == "undecodable-image"
    assert thumb.headers["X-Slycat-Message"].startswith(f"Cannot decode the image {path} (")
