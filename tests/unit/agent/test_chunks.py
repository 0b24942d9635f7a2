"""Chunk plans, sliced timelines, task order and the IVF join (agent/chunks.py), and
the Slurm executor's reading of array task ids."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import pytest

from agent import chunks, options, protocol, slurm
from agent.spec import Canvas, Frame, Placement, PosterOutput, Source, Spec, VideoOutput


def video(codec: str = "h264", gop: int | None = None) -> VideoOutput:
    return VideoOutput("video", "video/mp4", "mp4", 64, 48, "contain", "black", codec,
                       "libx264", 23, None, "medium", None, "yuv420p", gop)


def spec_of(repeats: list[int], outputs: list = None, kind: str = "local") -> Spec:  # type: ignore[assignment]
    frames = [Frame(f"/d/{index}.png", "png", 64, 48, "rgb", repeat)
              for index, repeat in enumerate(repeats)]
    return Spec("25", sum(repeats), Canvas(64, 48, "contain", "black"), [Source(frames)],
                outputs or [video()], placement=Placement(kind))


def test_a_plan_cuts_the_timeline_into_contiguous_ranges() -> None:
    plan = chunks.plan(spec_of([1] * 60), 5, cores=2)
    assert plan.ranges == [[0, 12], [12, 24], [24, 36], [36, 48], [48, 60]]
    assert plan.note is None and plan.parallel == 2  # locally: at most the cores
    uneven = chunks.plan(spec_of([1] * 61), 3, cores=4)
    assert uneven.ranges == [[0, 20], [20, 40], [40, 61]] and uneven.parallel == 3
    assert chunks.plan(spec_of([1] * 60, kind="slurm"), 5, cores=2).parallel == 5
    assert chunks.plan(spec_of([1] * 60, kind="slurm"), 5, cores=2, parallel=2).parallel == 2


def test_a_plan_says_why_it_has_fewer_chunks_than_asked() -> None:
    fewer = chunks.plan(spec_of([1] * 17), 5, cores=2)
    assert len(fewer.ranges) == 2
    assert fewer.note == ("Split into 2 chunks rather than 5: a chunk needs at least 8 "
                          "frames, and the video has 17.")
    none = chunks.plan(spec_of([1] * 12), 3, cores=2)
    assert none.ranges == [[0, 12]]
    assert none.note == ("Not split into chunks: a chunk needs at least 8 frames, and the "
                         "video has 12.")
    stills = chunks.plan(spec_of([1] * 60, [PosterOutput("p", "image/png", "png", 64, 48,
                                                        "contain", "black", 0)]), 4, cores=2)
    assert stills.ranges == [[0, 60]] and "makes no video" in (stills.note or "")


def test_auto_chunks_by_nodes_on_slurm_and_stays_whole_on_few_cores() -> None:
    many = spec_of([1] * 1000, kind="slurm")
    assert len(chunks.plan(many, "auto", cores=2, nodes=4).ranges) == 4
    assert len(chunks.plan(many, "auto", cores=2, parallel=3, nodes=8).ranges) == 3
    assert len(chunks.plan(spec_of([1] * 250, kind="slurm"), "auto", 2, nodes=8).ranges) == 2
    assert len(chunks.plan(spec_of([1] * 1000), "auto", cores=2).ranges) == 1
    vp9 = spec_of([1] * 1000, [video("vp9", 50)])
    assert len(chunks.plan(vp9, "auto", cores=2).ranges) == 1
    assert chunks.plan(vp9, "auto", cores=16).ranges == [[0, 250], [250, 500], [500, 750],
                                                          [750, 1000]]
    # "auto" on the VP9 grid keeps at least 100 frames a chunk: 120/60/120/100 would not.
    grid = chunks.plan(spec_of([1] * 400, [video("vp9", 60)], kind="slurm"), "auto", 2,
                       nodes=4)
    assert grid.ranges == [[0, 120], [120, 240], [240, 400]]
    assert grid.note is not None and "rather than the 4 \"auto\" chose" in grid.note
    assert len(chunks.plan(spec_of([1] * 1000), "auto", cores=16).ranges) == 1  # x264 scales


def test_vp9_chunks_start_on_the_videos_keyframes() -> None:
    """A VP9 chunk starts where the unchunked video has a keyframe: on a multiple of
    its gop, the nearest to the even cut; too coarse a grid gives fewer chunks, said."""
    on_grid = chunks.plan(spec_of([1] * 60, [video("vp9", 12)]), 5, cores=2)
    assert on_grid.ranges == [[0, 12], [12, 24], [24, 36], [36, 48], [48, 60]]
    assert on_grid.note is None
    halves = chunks.plan(spec_of([1] * 300, [video("vp9", 50)]), 2, cores=2)
    assert halves.ranges == [[0, 150], [150, 300]]
    nearest = chunks.plan(spec_of([1] * 300, [video("vp9", 50)]), 4, cores=2)
    assert nearest.ranges == [[0, 100], [100, 150], [150, 250], [250, 300]]
    # two VP9 videos: keyframes of both (every 30 frames), H.264 beside them anywhere
    both = chunks.plan(spec_of([1] * 120, [video("vp9", 10), video("vp9", 15), video()]),
                       4, cores=2)
    assert both.ranges == [[0, 30], [30, 60], [60, 90], [90, 120]]
    fewer = chunks.plan(spec_of([1] * 60, [video("vp9", 50)]), 5, cores=2)
    assert fewer.ranges == [[0, 50], [50, 60]]
    assert fewer.note == ("Split into 2 chunks rather than 5: VP9 chunks start on the "
                          "video's keyframes, every 50 frames (gop), and the video has 60; "
                          "a smaller gop allows more.")
    none = chunks.plan(spec_of([1] * 60, [video("vp9", 56)]), 2, cores=2)
    assert none.ranges == [[0, 60]]
    assert (none.note or "").startswith("Not split into chunks: VP9 chunks start on")
    # A gop under 8 frames: each chunk the fewest keyframes apart that make 8 frames.
    fine = chunks.plan(spec_of([1] * 64, [video("vp9", 3)]), 8, cores=2)
    assert [end - start for start, end in fine.ranges] == [9, 9, 9, 9, 9, 9, 10]
    assert fine.note is not None and fine.note.startswith("Split into 7 chunks rather than 8")
    # A cut that the nearest multiple would repeat moves on to the next one.
    moved = chunks.plan(spec_of([1] * 130, [video("vp9", 40)]), 4, cores=2)
    assert moved.ranges == [[0, 40], [40, 80], [80, 120], [120, 130]]
    apart = chunks.plan(spec_of([1] * 120, [video("vp9", 12), video("vp9", 50)]), 3, cores=2)
    assert apart.ranges == [[0, 120]]
    assert apart.note == ("Not split into chunks: VP9 chunks start on the keyframes of every "
                          "VP9 video: every 300 frames, where gops 12 and 50 meet, and the "
                          "video has 120; the same gop for each allows more.")
    capped = chunks.plan(spec_of([1] * 60, [video("vp9", 12)]), 20, cores=2)
    assert len(capped.ranges) == 5
    assert capped.note == ("Split into 5 chunks rather than 20: VP9 chunks start on the "
                           "video's keyframes, every 12 frames (gop), and the video has 60; "
                           "a smaller gop allows more.")
    assert chunks.plan(spec_of([1] * 60, [video("av1", 50)]), 5, cores=2).ranges[1] == [12, 24]


def test_vp9_keyframes_are_two_seconds_apart_by_default() -> None:
    assert options.default_gop(Fraction(25)) == 50
    assert options.default_gop(Fraction(30000, 1001)) == 60
    assert options.default_gop(Fraction(1)) == 8  # at least 8 frames
    assert options.default_gop(Fraction(1, 4)) == 8


@pytest.mark.parametrize("value", [0, 257, -1, "many", 2.5, True, [2]])
def test_a_bad_chunks_value_names_the_field(value: object) -> None:
    with pytest.raises(protocol.AgentError) as raised:
        chunks.requested(value)
    assert raised.value.details == {"field": "chunks"}
    assert "chunks must be a whole number from 1 to 256, or \"auto\"" in raised.value.message


def test_slices_hold_images_across_a_cut() -> None:
    frames = spec_of([3, 1, 4]).sources[0].frames  # timeline: 0 0 0 1 2 2 2 2
    cut = chunks.slice_frames(frames, 2, 6)
    assert [(frame.path, frame.repeat) for frame in cut] == [
        ("/d/0.png", 1), ("/d/1.png", 1), ("/d/2.png", 2)]
    assert sum(frame.repeat for frame in chunks.slice_frames(frames, 0, 8)) == 8
    # A source that ended before the cut: its last image, held by the encoder.
    assert [(frame.path, frame.repeat) for frame in chunks.slice_frames(frames[:1], 5, 8)] \
        == [("/d/0.png", 1)]


def test_a_chunk_spec_keeps_the_settings_and_numbers_from_its_start() -> None:
    whole = spec_of([1] * 40, [video(), PosterOutput("p", "image/png", "png", 64, 48,
                                                    "contain", "black", 3)])
    part = chunks.chunk_spec(whole, 10, 20, threads=1)
    assert part.frames_total == 10 and part.frame_offset == 10 and part.intermediate
    assert [output.name for output in part.outputs] == ["video"]  # stills: made once
    assert part.outputs[0] == whole.outputs[0] and part.threads == 1
    assert [frame.path for frame in part.sources[0].frames] == [f"/d/{i}.png"
                                                                for i in range(10, 20)]
    stills = chunks.stills_spec(whole)
    assert stills is not None and [output.name for output in stills.outputs] == ["p"]
    assert stills.frames_total == 40 and not stills.intermediate


def test_tasks_run_longest_first(tmp_path: Path) -> None:
    whole = spec_of([1] * 20 + [10] * 2 + [1] * 18)  # the middle chunk holds two images
    whole.chunks = chunks.plan(whole, 3, cores=2)
    order = [task.name for task in chunks.tasks(str(tmp_path), whole)]
    costs = [chunks.cost(whole, start, end) for start, end in whole.chunks.ranges]
    assert order[0] == "%03d" % costs.index(max(costs))
    with_stills = spec_of([1] * 40, [video(), PosterOutput("p", "image/png", "png", 64, 48,
                                                          "contain", "black", 3)])
    with_stills.chunks = chunks.plan(with_stills, 2, cores=2)
    assert [task.name for task in chunks.tasks(str(tmp_path), with_stills)][0] == "stills"


def ivf(path: Path, frames: list[bytes], start: int = 0) -> None:
    header = b"DKIF" + struct.pack("<HH4sHHIIII", 0, 32, b"VP90", 64, 48, 25, 1,
                                   len(frames), 0)
    with open(path, "wb") as out:
        out.write(header)
        for index, data in enumerate(frames):
            out.write(struct.pack("<IQ", len(data), start + index) + data)


def test_ivf_chunks_join_with_their_timestamps_renumbered(tmp_path: Path) -> None:
    ivf(tmp_path / "a.ivf", [b"k0", b"p1", b"p2"])
    ivf(tmp_path / "b.ivf", [b"k3", b"p4"])  # each chunk's own clock starts at 0
    assert chunks.ivf_frames(str(tmp_path / "b.ivf")) == [(44, 2), (58, 2)]
    count = chunks.join_ivf([str(tmp_path / "a.ivf"), str(tmp_path / "b.ivf")],
                            str(tmp_path / "j.ivf"))
    assert count == 5
    data = (tmp_path / "j.ivf").read_bytes()
    assert struct.unpack("<I", data[24:28])[0] == 5
    offset, seen = 32, []
    while offset < len(data):
        size, stamp = struct.unpack("<IQ", data[offset:offset + 12])
        seen.append((stamp, data[offset + 12:offset + 12 + size]))
        offset += 12 + size
    assert seen == [(0, b"k0"), (1, b"p1"), (2, b"p2"), (3, b"k3"), (4, b"p4")]
    (tmp_path / "cut.ivf").write_bytes((tmp_path / "a.ivf").read_bytes()[:-1])
    with pytest.raises(ValueError, match="ends inside a frame"):
        chunks.ivf_frames(str(tmp_path / "cut.ivf"))


def test_squeue_array_task_ranges_are_read() -> None:
    assert slurm._expand("2-4%2") == [2, 3, 4]
    assert slurm._expand("[1,3,5-6]") == [1, 3, 5, 6]
    assert slurm._expand("0") == [0]
