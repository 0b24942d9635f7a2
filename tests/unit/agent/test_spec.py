"""options.build_spec makes a typed Spec that survives spec.json unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import options, protocol
from agent.spec import (
    BurnIn,
    Canvas,
    ContactSheetOutput,
    GifOutput,
    PosterOutput,
    Region,
    Spec,
    VideoOutput,
)
from tests.unit.agent.argv_cases import CASES, FFMPEG_INFO, frames


@pytest.fixture(autouse=True)
def font(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "font.ttf"
    path.write_bytes(b"not really a font")
    monkeypatch.setenv("FRAMEWIRE_FONT", str(path))


def through_the_file(spec: Spec) -> Spec:
    return Spec.from_json(json.loads(json.dumps(spec.to_json())))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_spec_reads_back_equal(name: str, tmp_path: Path) -> None:
    spec = options.build_spec(CASES[name](tmp_path)[0], FFMPEG_INFO)
    spec.job, spec.ffmpeg, spec.ffmpeg_fps_mode, spec.nice = "a" * 32, "/bin/ffmpeg", True, 10
    again = through_the_file(spec)
    assert again == spec
    assert again.to_json() == spec.to_json()
    assert [type(output) for output in again.outputs] == [type(output)
                                                          for output in spec.outputs]


def test_records_differ_when_a_field_does(tmp_path: Path) -> None:
    spec = options.build_spec(CASES["one_source"](tmp_path)[0], FFMPEG_INFO)
    other = through_the_file(spec)
    other.sources[0].frames[1].repeat = 2
    assert other != spec
    assert Canvas(2, 2, "contain", "black") != Region(0, 0, 0, 2, 2, "contain", "black")
    assert "repeat=2" in repr(other.sources[0].frames[1])


def test_durations_hold_each_image_for_its_frames(tmp_path: Path) -> None:
    spec = options.build_spec(CASES["several_segments"](tmp_path)[0], FFMPEG_INFO)
    # 0.2, 0.04, 0.04, 0.08 and 1.0 s at 30000/1001 frames per second
    assert [frame.repeat for frame in spec.sources[0].frames] == [6, 1, 1, 2, 30]
    assert spec.frames_total == spec.sources[0].frame_count() == 40
    assert spec.frame_rate == "30000/1001"
    assert [(frame.kind, frame.width) for frame in spec.sources[0].frames] == [
        ("png", 64), ("png", 64), ("jpeg", 64), ("png", 80), ("png", 80)]
    assert not spec.composed() and spec.sources[0].region is None
    # The canvas is the first video's size; the second video keeps its own.
    assert spec.canvas == Canvas(100, 74, "contain", "0x336699")
    video, small = spec.outputs
    assert isinstance(video, VideoOutput) and isinstance(small, VideoOutput)
    assert (video.codec, video.encoder, video.bitrate, video.crf, video.gop) == (
        "vp9", "libvpx-vp9", "1000000", None, 12)
    assert (small.name, small.size(), small.fit, small.preset, small.crf) == (
        "small", (50, 36), "cover", "fast", 30)


def test_a_grid_places_its_sources_and_holds_the_shorter_ones(tmp_path: Path) -> None:
    spec = options.build_spec(CASES["grid_with_labels"](tmp_path)[0], FFMPEG_INFO)
    assert spec.composed()
    assert spec.canvas == Canvas(132, 100, "contain", "white")
    assert [source.region for source in spec.sources] == [
        Region(0, 0, 0, 64, 48, "contain", "white"), Region(68, 0, 1, 64, 48, "contain", "white"),
        Region(0, 52, 2, 64, 48, "contain", "white")]
    assert [source.label for source in spec.sources] == ["run A", None, "run C"]
    assert [source.frame_count() for source in spec.sources] == [2, 4, 3]
    assert spec.frames_total == 4
    assert spec.burn_in == BurnIn(True, False, "top-right", 14)


def test_regions_keep_their_own_fit_and_a_poster_takes_the_layout_size(tmp_path: Path) -> None:
    spec = options.build_spec(CASES["regions_by_z"](tmp_path)[0], FFMPEG_INFO)
    above, below = (source.region for source in spec.sources)
    assert above == Region(60, 20, 2, 80, 60, "contain", "0x204060")
    assert below == Region(0, 0, 1, 120, 90, "stretch", "red")
    video, poster = spec.outputs
    assert video.size() == (100, 50)
    assert isinstance(poster, PosterOutput) and poster.size() == (200, 100)
    assert poster.frame == 0


def test_several_outputs_in_output_order(tmp_path: Path) -> None:
    spec = options.build_spec(CASES["several_outputs"](tmp_path)[0], FFMPEG_INFO)
    assert [(type(output), output.name) for output in spec.outputs] == [
        (VideoOutput, "video"), (VideoOutput, "preview"), (PosterOutput, "still"),
        (ContactSheetOutput, "sheet"), (GifOutput, "gif")]
    _, preview, still, sheet, gif = spec.outputs
    assert (preview.content_type, preview.extension, preview.size()) == (
        "video/webm", "webm", (160, 120))
    assert isinstance(still, PosterOutput)
    assert (still.frame, still.content_type, still.size()) == (10, "image/png", (320, 240))
    assert isinstance(sheet, ContactSheetOutput)
    assert (sheet.frames, sheet.columns, sheet.rows) == ([0, 4, 8, 11, 15, 19], 3, 2)
    assert (sheet.width, sheet.height, sheet.size()) == (80, 60, (240, 120))
    assert isinstance(gif, GifOutput)
    assert (gif.frame_rate, gif.loop, gif.size(), gif.content_type) == (
        "10", 0, (100, 74), "image/gif")


def test_a_poster_without_a_size_follows_the_first_video(tmp_path: Path) -> None:
    paths = frames(tmp_path, "f", 2)  # 64x48
    spec = options.build_spec({"content-type": "video/mp4", "images": paths, "width": 32,
                               "poster": True, "outputs": [
                                   {"name": "sized", "kind": "poster", "width": 20}]},
                              FFMPEG_INFO)
    assert spec.canvas.width == 32
    assert [(output.name, output.size()) for output in spec.outputs] == [
        ("video", (32, 24)), ("sized", (20, 14)), ("poster", (32, 24))]
    assert "canvas_size" not in json.dumps(spec.to_json())


def test_validation_errors_still_name_their_field(tmp_path: Path) -> None:
    paths = frames(tmp_path, "f", 1)
    with pytest.raises(protocol.AgentError) as error:
        options.build_spec({"images": paths, "poster": {"at": "150%"}}, FFMPEG_INFO)
    assert error.value.details == {"field": "poster.at"}
    assert error.value.message == ("poster.at must be seconds from the start or a percentage "
                                   "such as \"50%\", got '150%'.")
