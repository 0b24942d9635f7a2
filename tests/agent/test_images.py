from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from agent import images, protocol
from agent.service import fit_within


@pytest.mark.parametrize("mode,fmt,kind", [("RGB", "PNG", "png"), ("RGBA", "PNG", "png"),
                                           ("L", "PNG", "png"), ("RGB", "JPEG", "jpeg"),
                                           ("L", "JPEG", "jpeg")])
def test_sniff_reads_kind_and_size(tmp_path: Path, mode: str, fmt: str, kind: str) -> None:
    path = tmp_path / "image"
    Image.new(mode, (123, 45)).save(path, fmt)
    info = images.sniff(str(path))
    assert info is not None
    assert (info.kind, info.width, info.height) == (kind, 123, 45)


def test_layouts_differ_when_decoders_would(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "rgb.png")
    Image.new("RGBA", (8, 8)).save(tmp_path / "rgba.png")
    rgb = images.sniff(str(tmp_path / "rgb.png"))
    rgba = images.sniff(str(tmp_path / "rgba.png"))
    assert rgb and rgba and rgb.layout != rgba.layout


def test_sniff_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("not a png")
    Image.new("RGB", (4, 4)).save(tmp_path / "image.gif", "GIF")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    for name in ("text.png", "image.gif", "empty.jpg", "truncated.jpg"):
        assert images.sniff(str(tmp_path / name)) is None, name


def test_fit_within_only_shrinks() -> None:
    assert fit_within(400, 300, {}) == (400, 300)
    assert fit_within(400, 300, {"max-width": 64}) == (64, 48)
    assert fit_within(400, 300, {"max-height": 30}) == (40, 30)
    assert fit_within(400, 300, {"max-size": 100}) == (100, 75)
    assert fit_within(400, 300, {"max-size": 1000}) == (400, 300)
    with pytest.raises(protocol.AgentError):
        fit_within(400, 300, {"max-size": 0})
