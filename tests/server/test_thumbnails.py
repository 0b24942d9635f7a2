"""Thumbnails in batches, over a real SSH session (and the local transport)."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.fixtures import LiveServer, solid_frames


def decoded(item: dict[str, Any]) -> Image.Image:
    assert item["ok"], item
    picture = Image.open(io.BytesIO(base64.b64decode(item["data"])))
    picture.load()
    return picture


def noisy_frames(directory: Path, count: int) -> list[str]:
    """Distinct frames whose thumbnails do not compress to almost nothing."""
    paths = []
    for index in range(count):
        path = directory / f"frame{index:05d}.png"
        Image.effect_noise((320, 240), 20 + index % 40).convert("RGB").save(path)
        os.chmod(path, 0o644)
        paths.append(str(path))
    return paths


def thumbnails(server: LiveServer, sid: str, body: Any, prefix: str = "") -> requests.Response:
    return server.post_json(f"{prefix}/remotes/{sid}/thumbnails", body)


def test_a_batch_of_thumbnails_in_order_with_each_ones_error(
        server: LiveServer, remote: str, images: Path) -> None:
    wide = solid_frames(images, [(200, 30, 30)], names=["wide.png"], size=(400, 300))[0]
    tall = solid_frames(images, [(30, 200, 30)], names=["tall.jpg"], size=(90, 360),
                        kinds=["jpeg"])[0]
    text = images / "notes.png"
    text.write_text("not an image")
    broken = Path(solid_frames(images, [(0, 90, 200)], names=["broken.png"])[0])
    data = bytearray(broken.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start:start + 20] = b"\xff" * 20  # a PNG from end to end, its pixels garbage
    broken.write_bytes(bytes(data))
    missing = str(images / "missing.png")
    paths = [wide, str(text), tall, missing, str(broken)]

    response = thumbnails(server, remote, {"paths": paths, "max-size": 120})

    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    items = response.json()["thumbnails"]
    assert [item["path"] for item in items] == paths
    assert [item["ok"] for item in items] == [True, False, True, False, False]
    for item, size in ((items[0], (120, 90)), (items[2], (30, 120))):
        picture = decoded(item)
        assert picture.format == "JPEG" and picture.size == size
        assert (item["content_type"], item["width"], item["height"], item["cached"]) == \
            ("image/jpeg", *size, False)
    red = decoded(items[0]).convert("RGB").getpixel((60, 45))
    assert red[0] > 170 and red[1] < 60
    assert items[1]["error"] == {"code": "not-an-image",
                                 "message": f"Not a PNG or JPEG image: {text}"}
    assert items[3]["error"] == {"code": "not-found", "message": f"File not found: {missing}"}
    assert items[4]["error"]["code"] == "undecodable-image"
    assert items[4]["error"]["message"].startswith(f"Cannot decode the image {broken} (")

    # Again, under /api as Slycat's client sends it, and with the default size: the
    # 120-pixel ones come from the agent's cache, the 96-pixel ones are new.
    again = thumbnails(server, remote, {"paths": [wide, tall, wide]}, prefix="/api")
    assert again.status_code == 200
    assert [(item["width"], item["cached"]) for item in again.json()["thumbnails"]] == \
        [(96, False), (24, False), (96, False)]
    cached = thumbnails(server, remote, {"paths": [wide], "max-size": 120}).json()
    assert cached["thumbnails"][0]["cached"] is True
    assert cached["thumbnails"][0]["data"] == items[0]["data"]

    # A single JPEG thumbnail of the same size is that same cached entry.
    single = server.request("GET", f"/remotes/{remote}/image{wide}",
                            params={"content-type": "image/jpeg", "max-size": "120"})
    assert single.status_code == 200 and single.headers["Content-Type"] == "image/jpeg"
    assert single.content == base64.b64decode(items[0]["data"])


def test_a_batch_of_200_over_ssh_is_one_answer_of_megabytes(
        server: LiveServer, remote: str, images: Path) -> None:
    paths = noisy_frames(images, 200)
    response = thumbnails(server, remote, {"paths": paths, "max-size": 160})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    assert len(response.content) > 1 << 20  # one agent protocol line longer than 1 MiB
    items = response.json()["thumbnails"]
    assert [item["path"] for item in items] == paths
    assert all(decoded(item).size == (160, 120) for item in items)
    warm = thumbnails(server, remote, {"paths": paths, "max-size": 160}).json()["thumbnails"]
    assert all(item["cached"] for item in warm)


def test_a_long_answer_over_the_local_transport(local: tuple[LiveServer, str],
                                                images: Path) -> None:
    server, sid = local
    paths = noisy_frames(images, 200)
    response = thumbnails(server, sid, {"paths": paths, "max-size": 160})
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    assert len(response.content) > 1 << 20  # past the pipe reader's 1 MiB line limit
    assert all(decoded(item).size == (160, 120) for item in response.json()["thumbnails"])


@pytest.mark.parametrize("body,pointer,message", [
    ({}, "/paths", "paths must be a list of 1 to 200 absolute paths."),
    ({"paths": []}, "/paths", "paths must be a list of 1 to 200 absolute paths."),
    ({"paths": "/a.png"}, "/paths", "paths must be a list of 1 to 200 absolute paths."),
    ({"paths": ["/a.png"] * 201}, "/paths", "paths must be a list of 1 to 200 absolute paths."),
    ({"paths": ["/a.png", "a.png"]}, "/paths/1", "paths.1 must be an absolute path."),
    ({"paths": [7]}, "/paths/0", "paths.0 must be an absolute path."),
    ({"paths": ["/a\u0000.png"]}, "/paths/0", "paths.0 contains a NUL byte."),
    ({"paths": ["/a.png"], "max-size": 15}, "/max-size",
     "max-size must be a whole number of pixels from 16 to 1024."),
    ({"paths": ["/a.png"], "max-size": 1025}, "/max-size",
     "max-size must be a whole number of pixels from 16 to 1024."),
    ({"paths": ["/a.png"], "max-size": "96"}, "/max-size",
     "max-size must be a whole number of pixels from 16 to 1024."),
    ({"paths": ["/a.png"], "max-size": True}, "/max-size",
     "max-size must be a whole number of pixels from 16 to 1024."),
    ({"paths": ["/a.png"] * 13, "max-size": 1024}, "/paths",
     "At max-size 1024, ask for at most 12 thumbnails per request."),
])
def test_a_wrong_batch_names_its_field(server: LiveServer, remote: str, body: dict[str, Any],
                                       pointer: str, message: str) -> None:
    response = thumbnails(server, remote, body)
    assert response.status_code == 400
    assert response.headers["X-Slycat-Message"] == message
    error = response.json()["errors"][0]
    assert (error["code"], error["source"]["pointer"]) == ("invalid-field", pointer)


def test_thumbnails_of_an_unknown_session_are_404(server: LiveServer) -> None:
    response = thumbnails(server, "0" * 32, {"paths": ["/a.png"]})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "unknown-session"
