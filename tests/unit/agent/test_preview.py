"""agent/preview.py against files the real ffmpeg writes with its tee arguments: whole
fragments only, never past complete data, the codec string from the file itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agent import preview
from agent.spec import VideoOutput

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FRAMES = 45  # at 10 frames a second: five fragments, the last one short


def output(content_type: str, codec: str, encoder: str) -> VideoOutput:
    extension = "mp4" if content_type == "video/mp4" else "webm"
    return VideoOutput("video", content_type, extension, 160, 96, "contain", "black", codec,
                       encoder, 30, None, "ultrafast" if codec == "h264" else None,
                       None if codec == "h264" else 8, "yuv420p", None)


ENCODERS = {"h264": ["-c:v", "libx264", "-preset", "ultrafast"],
            "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
            "av1": ["-c:v", "libsvtav1", "-preset", "12"]}


def encode(directory: Path, content_type: str, codec: str, pixel_format: str = "yuv420p",
           frames: int = FRAMES) -> tuple[Path, Path]:
    """A final file and its preview, written by one ffmpeg as the runner has it do."""
    made = output(content_type, codec, ENCODERS[codec][1])
    final = directory / f"final.{made.extension}"
    path = directory / preview.file_name(made)
    argv = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
            "testsrc2=s=160x96:r=10", "-frames:v", str(frames), "-map", "0:v",
            *ENCODERS[codec], "-pix_fmt", pixel_format,
            *preview.tee_args(made, str(final), str(path))]
    subprocess.run(argv, check=True, capture_output=True)
    return final, path


def ffprobe_frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(json.loads(out)["streams"][0]["nb_read_packets"])


def top_boxes(data: bytes) -> list[tuple[bytes, int, int]]:
    found, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        found.append((data[offset + 4:offset + 8], offset, size))
        offset += size
    return found


def test_a_whole_fragmented_mp4(tmp_path: Path) -> None:
    final, path = encode(tmp_path, "video/mp4", "h264")
    data = path.read_bytes()
    boxes = top_boxes(data)
    assert [kind for kind, _, _ in boxes[:3]] == [b"ftyp", b"moov", b"moof"]
    assert boxes[-1][0] == b"mfra"  # the index at the end is no fragment
    found = preview.PreviewReader(str(path), "video/mp4").look()
    assert found is not None
    assert found["frames"] == FRAMES == ffprobe_frames(path)
    assert found["size"] == boxes[-1][1]  # up to the end of the last moof + mdat
    assert found["content_type"] == "video/mp4"
    # x264's ultrafast is Constrained Baseline: profile 66, constraint flags 0xc0, and
    # the level it chose, as its avcC has them.
    avcc = data.find(b"avcC") + 4
    assert data[avcc + 1:avcc + 3] == b"\x42\xc0"
    assert found["mime"] == f'video/mp4; codecs="avc1.42c0{data[avcc + 3]:02x}"'
    # The final file is a faststart MP4, as without a preview.
    head = final.read_bytes()
    assert 0 <= head.find(b"moov") < head.find(b"mdat")
    assert ffprobe_frames(final) == FRAMES


def test_only_whole_fragments_count_and_bytes_past_them_are_not_reported(
        tmp_path: Path) -> None:
    _, path = encode(tmp_path, "video/mp4", "h264")
    data = path.read_bytes()
    fragments = [(offset, size) for kind, offset, size in top_boxes(data) if kind == b"moof"]
    ends = [offset + size + int.from_bytes(data[offset + size:offset + size + 4], "big")
            for offset, size in fragments]
    cut_file = tmp_path / "cut.mp4"
    for cut in sorted({0, 7, 100, ends[0] - 1, ends[0], ends[0] + 9, ends[2] - 1,
                       fragments[3][0] + 20, ends[-1] - 1, ends[-1], len(data) - 1}):
        cut_file.write_bytes(data[:cut])
        found = preview.PreviewReader(str(cut_file), "video/mp4").look()
        whole = [end for end in ends if end <= cut]
        if not whole:
            assert found is None, cut
            continue
        assert found is not None and found["size"] == whole[-1], cut
        # What the status reports is exactly what ffmpeg reads in those bytes.
        (tmp_path / "head.mp4").write_bytes(data[:found["size"]])
        assert found["frames"] == ffprobe_frames(tmp_path / "head.mp4"), cut


def test_a_growing_file_is_parsed_incrementally(tmp_path: Path) -> None:
    _, path = encode(tmp_path, "video/mp4", "h264")
    data = path.read_bytes()
    growing = tmp_path / "growing.mp4"
    reader = preview.PreviewReader(str(growing), "video/mp4")
    assert reader.look() is None  # no file yet
    seen = []
    with open(growing, "wb") as out:
        for start in range(0, len(data), 5000):
            out.write(data[start:start + 5000])
            out.flush()
            found = reader.look()
            fresh = preview.PreviewReader(str(growing), "video/mp4").look()
            assert found == fresh
            seen.append(found["frames"] if found else 0)
            if found:
                # Parsed up to the last whole box: a later look starts there.
                assert reader.offset >= found["size"] and reader.offset <= start + 5000
    assert seen == sorted(seen) and seen[-1] == FRAMES and len(set(seen)) >= 4


def test_codec_strings_of_yuv444p_h264_and_av1_in_mp4(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    _, path = encode(tmp_path / "a", "video/mp4", "h264", "yuv444p")
    found = preview.PreviewReader(str(path), "video/mp4").look()
    assert found is not None and found["mime"].startswith('video/mp4; codecs="avc1.f400')
    (tmp_path / "b").mkdir()
    _, path = encode(tmp_path / "b", "video/mp4", "av1")
    found = preview.PreviewReader(str(path), "video/mp4").look()
    assert found is not None
    # Main profile, SVT-AV1's level for 160x96 (2.0: index 0), main tier, 8 bits.
    assert found["mime"] == 'video/mp4; codecs="av01.0.00M.08"'
    assert found["frames"] == ffprobe_frames(path)


@pytest.mark.parametrize("codec,expected", [("vp9", "vp9"), ("av1", "av01.0.00M.08")])
def test_live_webm_counts_the_blocks_of_whole_clusters(tmp_path: Path, codec: str,
                                                       expected: str) -> None:
    _, path = encode(tmp_path, "video/webm", codec)
    data = path.read_bytes()
    found = preview.PreviewReader(str(path), "video/webm").look()
    assert found is not None
    assert found["mime"] == f'video/webm; codecs="{expected}"'
    assert (found["frames"], found["size"]) == (FRAMES, len(data))
    clusters = []
    start = data.find(b"\x1f\x43\xb6\x75")
    while start >= 0:
        clusters.append(start)
        start = data.find(b"\x1f\x43\xb6\x75", start + 4)
    assert len(clusters) >= 3, "a cluster about every second"
    cut = tmp_path / "cut.webm"
    for end in (clusters[0] + 10, clusters[2] - 1, clusters[2], clusters[2] + 50):
        cut.write_bytes(data[:end])
        part = preview.PreviewReader(str(cut), "video/webm").look()
        if end <= clusters[1]:
            assert part is None
            continue
        assert part is not None and part["size"] == max(c for c in clusters if c <= end)
        (tmp_path / "head.webm").write_bytes(data[:part["size"]])
        assert part["frames"] == ffprobe_frames(tmp_path / "head.webm")


def test_codec_records() -> None:
    # av1C: profile 0, level 8 (4.0), high tier, 10 bits; profile 2, 12 bits.
    assert preview.av1_codec(bytes([0x81, 0x08, 0xCC, 0x00])) == "av01.0.08H.10"
    assert preview.av1_codec(bytes([0x81, 0x4D, 0x6C, 0x00])) == "av01.2.13M.12"
    # VP9's CodecPrivate features (profile 0, level 3.1, 8 bits), else plain vp9.
    assert preview.vp9_codec(bytes([1, 1, 0, 2, 1, 31, 3, 1, 8, 4, 1, 1])) == "vp09.00.31.08"
    assert preview.vp9_codec(b"") == "vp9"


def test_a_file_that_is_not_a_preview_gives_none_for_good(tmp_path: Path) -> None:
    path = tmp_path / "noise.mp4"
    path.write_bytes(b"\x00\x00\x00\x04nope" + bytes(100))
    reader = preview.PreviewReader(str(path), "video/mp4")
    assert reader.look() is None and reader.broken
    path.write_bytes(b"\x01\x02\x03\x04" * 50)
    webm = preview.PreviewReader(str(path), "video/webm")
    assert webm.look() is None and webm.broken


def test_file_names_with_every_special_character_reach_the_tee_muxer(tmp_path: Path) -> None:
    odd = tmp_path / "a b|c'd\\e[f]:g=h\tend "
    odd.mkdir()
    final, path = encode(odd, "video/mp4", "h264", frames=12)
    assert ffprobe_frames(final) == 12
    assert preview.PreviewReader(str(path), "video/mp4").look() is not None
    assert sorted(item.name for item in odd.iterdir()) == ["final.mp4", "partial.preview.mp4"]
