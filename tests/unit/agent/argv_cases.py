"""Representative encode requests, and the ffmpeg argv each produced before issue 13.

The expected argv were captured from the string-editing ``job_argv`` that
issue 13 replaced (filter-graph labels renamed in order of appearance, so a
graph built another way may name its links differently but must otherwise
be the same command).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from PIL import Image

FFMPEG = "/opt/ffmpeg/bin/ffmpeg"
FFMPEG_INFO: dict[str, Any] = {
    "path": FFMPEG, "version": "6.1",
    "encoders": {"h264": "libx264", "vp9": "libvpx-vp9", "av1": "libsvtav1"},
    "filters": ["drawtext", "subtitles"], "fps_mode": True,
}

Case = tuple[dict[str, Any], list[tuple[int, str]], bool]
"""A create-video request, its segments as (source index, pattern), and fps_mode."""


def frames(directory: Path, prefix: str, count: int, size: tuple[int, int] = (64, 48),
           kind: str = "PNG") -> list[str]:
    paths = []
    for index in range(count):
        path = directory / f"{prefix}{index}.{'png' if kind == 'PNG' else 'jpg'}"
        Image.new("RGB", size, (index * 20 % 256, 40, 90)).save(path, kind)
        paths.append(str(path))
    return paths


def pattern(number: int, extension: str = "png") -> str:
    return f"/work/jobs/j/frames/s{number:05d}/%08d.{extension}"


def one_source(tmp: Path) -> Case:
    return ({"content-type": "video/mp4", "images": frames(tmp, "f", 3)},
            [(0, pattern(0))], True)


def several_segments(tmp: Path) -> Case:
    paths = (frames(tmp, "a", 2) + frames(tmp, "b", 1, kind="JPEG")
             + frames(tmp, "c", 2, size=(80, 60)))
    return ({"content-type": "video/webm", "images": paths, "frame-rate": "30000/1001",
             "durations": [0.2, 0.04, 0.04, 0.08, 1.0], "bitrate": "1M",
             "pixel-format": "yuv444p", "speed": 6, "width": 100, "background": "#336699",
             "gop": 12,
             "outputs": [{"name": "small", "content-type": "video/mp4", "width": 50,
                          "fit": "cover", "preset": "fast", "crf": 30}]},
            [(0, pattern(0)), (0, pattern(1, "jpg")), (0, pattern(2))], True)


def grid_with_labels(tmp: Path) -> Case:
    a, b, c = frames(tmp, "a", 2), frames(tmp, "b", 4), frames(tmp, "c", 3)
    return ({"content-type": "video/mp4",
             "burn-in": {"frame-number": True, "position": "top-right", "size": 14},
             "layout": {"type": "grid", "max_columns": 2, "gap": 4, "background": "white",
                        "sources": [{"images": a, "label": "run A"}, {"images": b},
                                    {"images": c, "label": "run C"}]}},
            [(0, pattern(0)), (1, pattern(1)), (2, pattern(2))], True)


def regions_by_z(tmp: Path) -> Case:
    below = frames(tmp, "below", 2) + frames(tmp, "belowj", 1, kind="JPEG")
    above = frames(tmp, "above", 3, size=(40, 30))
    return ({"content-type": "video/mp4", "width": 100, "poster": {"at": 0},
             "layout": {"type": "regions", "resolution": "200x100", "background": "#204060",
                        "regions": [
                            {"images": above, "x_pos": 60, "y_pos": 20, "width": 80,
                             "height": 60, "z_pos": 2, "label": "above"},
                            {"images": below, "x_pos": 0, "y_pos": 0, "width": 120,
                             "height": 90, "z_pos": 1, "fit": "stretch",
                             "background": "red"}]}},
            [(0, pattern(0)), (1, pattern(1)), (1, pattern(2, "jpg"))], True)


def several_outputs(tmp: Path) -> Case:
    return ({"content-type": "video/mp4", "images": frames(tmp, "f", 20, size=(320, 240)),
             "crf": 20,
             "outputs": [
                 {"name": "preview", "content-type": "video/webm", "width": 160, "speed": 8},
                 {"name": "still", "kind": "poster", "at": "50%",
                  "content-type": "image/png"},
                 {"name": "sheet", "kind": "contact-sheet", "frames": 6, "wrap": 3,
                  "width": 80, "height": 60}],
             "gif": {"width": 100, "frame-duration": 0.1, "loop": 0}},
            [(0, pattern(0))], True)


def stills_only_old_ffmpeg(tmp: Path) -> Case:
    return ({"images": frames(tmp, "f", 5), "poster": True,
             "contact-sheet": {"frames": 4, "crop": True}, "gif": {"loop": -1}},
            [(0, pattern(0))], False)


def burn_in(tmp: Path) -> Case:
    return ({"content-type": "video/webm", "codec": "av1", "crf": 40,
             "images": frames(tmp, "f", 4, size=(96, 64)), "durations": [0.1, 0.1, 0.2, 0.4],
             "burn-in": {"frame-number": True, "filename": True,
                         "position": "bottom-right"}},
            [(0, pattern(0))], True)


CASES: dict[str, Callable[[Path], Case]] = {
    "one_source": one_source, "several_segments": several_segments,
    "grid_with_labels": grid_with_labels, "regions_by_z": regions_by_z,
    "several_outputs": several_outputs, "stills_only_old_ffmpeg": stills_only_old_ffmpeg,
    "burn_in": burn_in,
}

_LABEL = re.compile(r"\[([^\]]+)\]")
_INPUT = re.compile(r"^[0-9]+:v$")


def normalise(argv: list[str]) -> list[str]:
    """``argv`` with filter-graph link labels renamed L0, L1, … in order of appearance."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        label = match.group(1)
        if _INPUT.match(label):
            return match.group(0)
        return "[%s]" % names.setdefault(label, "L%d" % len(names))

    graph = argv.index("-filter_complex") + 1
    result = list(argv)
    result[graph] = _LABEL.sub(rename, argv[graph])
    for index, word in enumerate(result):
        if index != graph and _LABEL.fullmatch(word):
            result[index] = _LABEL.sub(rename, word)
    return result


def paths_for(request_outputs: int) -> list[str]:
    return [f"/work/jobs/j/partial.{index}.out" for index in range(request_outputs)]
