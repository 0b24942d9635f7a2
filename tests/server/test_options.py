"""Output options: timing, frame selection, size, quality, colour, several outputs.

These run on the local transport (the same agent, started as a subprocess) so
they stay quick; the SSH path is covered by test_videos_ssh.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.fixtures import LiveServer, frame_colours, probe, solid_frames

RED, GREEN, BLUE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)
TOLERANCE = 6  # per channel, 0-255, after RGB -> BT.709 YUV -> RGB on solid frames


def create(local: tuple[LiveServer, str], body: dict[str, Any]) -> dict[str, Any]:
    server, sid = local
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    status = server.wait_video(sid, response.json()["sid"])
    assert status["status"] == "succeeded", (status["message"], status.get("stderr"))
    return status


def fetch(local: tuple[LiveServer, str], url: str, target: Path) -> Path:
    server, _ = local
    response = server.request("GET", url)
    assert response.status_code == 200, response.headers.get("X-Slycat-Message")
    target.write_bytes(response.content)
    return target


def video(local: tuple[LiveServer, str], body: dict[str, Any], target: Path) -> dict[str, Any]:
    status = create(local, body)
    return probe(fetch(local, status["outputs"][0]["url"], target))


def rejected(local: tuple[LiveServer, str], body: dict[str, Any]) -> tuple[str, str]:
    server, sid = local
    response = server.post_json(f"/remotes/{sid}/videos", body)
    assert response.status_code == 400, body
    error = response.json()["errors"][0]
    return error["source"]["pointer"], response.headers["X-Slycat-Message"]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = TOLERANCE) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


# -- timing ---------------------------------------------------------------------

def test_fractional_frame_rate(local, images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, [RED, GREEN, BLUE] * 10)
    info = video(local, {"content-type": "video/mp4", "images": paths,
                         "frame-rate": "30000/1001"}, tmp_path / "ntsc.mp4")
    assert info["frame_rate"] == "30000/1001"
    assert info["frames"] == 30
    assert info["duration"] == pytest.approx(30 * 1001 / 30000, abs=0.02)


def test_slow_frame_rate_one_image_every_five_seconds(local, images: Path,
                                                      tmp_path: Path) -> None:
    paths = solid_frames(images, [RED, GREEN, BLUE])
    info = video(local, {"content-type": "video/mp4", "images": paths, "frame-rate": "1/5"},
                 tmp_path / "slow.mp4")
    assert Fraction(info["frame_rate"]) == Fraction(1, 5)
    assert info["frames"] == 3
    assert info["duration"] == pytest.approx(15, abs=0.1)


def test_decimal_frame_rate(local, images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, [RED] * 12)
    info = video(local, {"content-type": "video/mp4", "images": paths, "frame-rate": 12.5},
                 tmp_path / "decimal.mp4")
    assert Fraction(info["frame_rate"]) == Fraction(25, 2)
    assert info["duration"] == pytest.approx(12 / 12.5, abs=0.02)


def test_per_image_durations_hold_frames(local, images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, [RED, GREEN, BLUE])
    status = create(local, {"content-type": "video/mp4", "images": paths,
                            "durations": [0.2, 0.4, 1.0]})
    assert status["frames_total"] == 5 + 10 + 25
    info = probe(fetch(local, status["outputs"][0]["url"], tmp_path / "held.mp4"))
    assert info["frames"] == 40
    assert info["frame_rate"] == "25/1"
    assert info["duration"] == pytest.approx(1.6, abs=0.02)  # the last image keeps its 1 s
    colours = frame_colours(tmp_path / "held.mp4")
    assert [c for c in colours[:5] if close(c, RED)] == colours[:5]
    assert all(close(c, GREEN) for c in colours[5:15])
    assert all(close(c, BLUE) for c in colours[15:])


# -- frame selection ---------------------------------------------------------------

def test_directory_pattern_in_natural_order(local, images: Path, tmp_path: Path) -> None:
    names = [f"f{i}.png" for i in range(1, 121)]
    colours = [(2 * i, 0, 255 - 2 * i) for i in range(1, 121)]
    solid_frames(images, colours, names=names, size=(32, 32))
    (images / "notes.txt").write_text("not a frame")
    status = create(local, {"content-type": "video/mp4",
                            "images": {"directory": str(images), "pattern": "f*.png"}})
    assert status["frames_total"] == 120
    decoded = frame_colours(fetch(local, status["outputs"][0]["url"], tmp_path / "nat.mp4"))
    assert len(decoded) == 120
    wrong = [index for index, (got, want) in enumerate(zip(decoded, colours, strict=True))
             if not close(got, want, 8)]
    assert not wrong, f"frames out of f1 … f120 order at {wrong[:5]}"


def test_start_stop_step_and_name_sort(local, images: Path, tmp_path: Path) -> None:
    names = [f"f{i}.png" for i in range(1, 13)]
    colours = [(20 * i, 0, 0) for i in range(1, 13)]
    solid_frames(images, colours, names=names, size=(32, 32))
    status = create(local, {"content-type": "video/mp4", "images": {
        "directory": str(images), "pattern": "*.png", "sort": "name",
        "start": 1, "stop": 9, "step": 2}})
    # name order: f1 f10 f11 f12 f2 f3 … -> [1:9:2] = f10, f12, f3, f5
    decoded = frame_colours(fetch(local, status["outputs"][0]["url"], tmp_path / "sel.mp4"))
    assert [round(c[0] / 20) for c in decoded] == [10, 12, 3, 5]


def test_frame_selection_errors(local, images: Path) -> None:
    solid_frames(images, [RED], names=["a.png"])
    cases = [
        ({"directory": str(images), "pattern": "*.jpg"}, "/images/pattern",
         f"No file in {images} matches '*.jpg'."),
        ({"directory": str(images), "sort": "random"}, "/images/sort",
         "images.sort must be one of natural, name, mtime, got 'random'."),
        ({"directory": str(images), "start": 5}, "/images/start",
         "start, stop and step select none of the 1 files that are PNG or JPEG images."),
        ({"directory": "relative"}, "/images/directory",
         "images.directory must be an absolute path, got 'relative'."),
        ({"directory": str(images), "pattern": "../*.png"}, "/images/pattern",
         "images.pattern must be a file name pattern such as \"frame*.png\" (no /)."),
        ({"directory": str(images), "order": "name"}, "/images/order",
         "Unknown option 'images.order'; allowed here: directory, pattern, sort, start, "
         "step, stop."),
    ]
    for images_value, pointer, message in cases:
        assert rejected(local, {"content-type": "video/mp4", "images": images_value}) == (
            pointer, message)


# -- size ---------------------------------------------------------------------------

def test_fit_modes_with_odd_and_mixed_sizes(local, images: Path, tmp_path: Path) -> None:
    wide = images / "wide.png"
    Image.new("RGB", (301, 101), RED).save(wide)
    tall = images / "tall.png"
    Image.new("RGB", (101, 301), BLUE).save(tall)
    for path in (wide, tall):
        os.chmod(path, 0o644)
    body = {"content-type": "video/mp4", "images": [str(wide), str(tall)],
            "width": 201, "height": 151, "background": "#00ff00"}
    for fit in ("contain", "cover", "stretch"):
        target = tmp_path / f"{fit}.mp4"
        info = video(local, {**body, "fit": fit}, target)
        assert (info["width"], info["height"]) == (200, 150), fit
        frames = decode_frames(target, 200, 150)
        corner, centre = frames[0].getpixel((2, 2)), frames[0].getpixel((100, 75))
        assert close(centre, RED, 12), (fit, centre)
        if fit == "contain":  # the wide frame is letterboxed on the background colour
            assert close(corner, (0, 255, 0), 12), (fit, corner)
        else:  # cover crops, stretch fills: the frame's own colour reaches the corner
            assert close(corner, RED, 12), (fit, corner)
        assert close(frames[1].getpixel((100, 75)), BLUE, 12)


def decode_frames(path: Path, width: int, height: int) -> list[Image.Image]:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    size = width * height * 3
    return [Image.frombytes("RGB", (width, height), raw[i:i + size])
            for i in range(0, len(raw), size)]


def test_width_alone_keeps_aspect(local, images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, [RED] * 3, size=(400, 300))
    info = video(local, {"content-type": "video/mp4", "images": paths, "width": 101},
                 tmp_path / "w.mp4")
    assert (info["width"], info["height"]) == (100, 74)
    info = video(local, {"content-type": "video/mp4", "images": paths, "height": 60},
                 tmp_path / "h.mp4")
    assert (info["width"], info["height"]) == (80, 60)


def test_frames_beyond_the_level_are_scaled_down_with_a_note(local, images: Path,
                                                             tmp_path: Path) -> None:
    paths = solid_frames(images, [GREY] * 2, size=(64, 36))
    status = create(local, {"content-type": "video/mp4", "images": paths,
                            "width": 12800, "height": 7200})
    info = probe(fetch(local, status["outputs"][0]["url"], tmp_path / "big.mp4"))
    assert info["width"] <= 8192 and info["width"] * info["height"] <= 139264 * 256
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    assert status["notes"] == [f"Scaled 12800x7200 down to {info['width']}x{info['height']} "
                               "to stay within H.264 level 6.2 limits."]


# -- quality and colour ---------------------------------------------------------------

@pytest.mark.parametrize("content_type,options,codec,pix_fmt", [
    ("video/mp4", {}, "h264", "yuv420p"),
    ("video/mp4", {"pixel-format": "yuv444p", "preset": "fast", "crf": 18}, "h264", "yuv444p"),
    ("video/webm", {"pixel-format": "yuv444p", "speed": 8}, "vp9", "yuv444p"),
    ("video/webm", {"bitrate": "0.5M"}, "vp9", "yuv420p"),
    ("video/mp4", {"codec": "av1", "speed": 12, "width": 64}, "av1", "yuv420p"),
    ("video/webm", {"codec": "av1", "crf": 40, "width": 128}, "av1", "yuv420p"),
])
def test_codec_pixel_format_and_bt709(local, images: Path, tmp_path: Path, content_type: str,
                                      options: dict[str, Any], codec: str,
                                      pix_fmt: str) -> None:
    paths = solid_frames(images, [RED, GREEN, BLUE, GREY], size=(64, 48))
    target = tmp_path / ("out." + content_type.split("/")[1])
    info = video(local, {"content-type": content_type, "images": paths, **options}, target)
    assert (info["codec"], info["pix_fmt"]) == (codec, pix_fmt)
    assert (info["color_space"], info["color_transfer"], info["color_primaries"]) == (
        "bt709", "bt709", "bt709")
    assert info["color_range"] == "tv"
    if codec == "h264" and pix_fmt == "yuv444p":
        assert info["profile"] == "High 4:4:4 Predictive"
    decoded = frame_colours(target)
    for got, want in zip(decoded, [RED, GREEN, BLUE, GREY], strict=True):
        assert close(got, want), (got, want)


def test_encoder_minimum_size_scales_up_with_a_note(local, images: Path,
                                                    tmp_path: Path) -> None:
    paths = solid_frames(images, [GREEN] * 2, size=(40, 30))
    status = create(local, {"content-type": "video/webm", "images": paths, "codec": "av1"})
    info = probe(fetch(local, status["outputs"][0]["url"], tmp_path / "small.webm"))
    assert (info["codec"], info["width"], info["height"]) == ("av1", 86, 64)
    assert status["notes"] == ["Scaled 40x30 up to 86x64: libsvtav1 needs at least 64x64."]


def test_gop_sets_the_keyframe_interval(local, images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, [GREY] * 30, size=(64, 48))
    status = create(local, {"content-type": "video/mp4", "images": paths, "gop": 10})
    target = fetch(local, status["outputs"][0]["url"], tmp_path / "gop.mp4")
    flags = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                            "-show_entries", "packet=flags", "-of", "csv=p=0", str(target)],
                           check=True, capture_output=True, text=True).stdout.split()
    keyframes = [index for index, flag in enumerate(flags) if flag.startswith("K")]
    assert keyframes == [0, 10, 20]


def test_quality_option_errors(local, images: Path) -> None:
    paths = solid_frames(images, [RED])
    base = {"content-type": "video/mp4", "images": paths}
    cases = [
        ({"crf": 60}, "/crf", "crf must be a whole number from 0 to 51, got 60."),
        ({"crf": 20, "bitrate": "1M"}, "/bitrate", "Give crf or bitrate, not both."),
        ({"bitrate": "fast"}, "/bitrate", "bitrate must be bits per second from 1000 to "
                                          "10000000000, such as 2500000, \"2500k\" or "
                                          "\"2.5M\", got 'fast'."),
        ({"gop": None, "crf": True}, "/crf", "crf must be a whole number from 0 to 51, got "
                                             "true."),
        ({"preset": "warp"}, "/preset", "preset must be one of ultrafast, superfast, "
                                        "veryfast, faster, fast, medium, slow, slower, "
                                        "veryslow, got 'warp'."),
        ({"speed": 3}, "/speed", "speed applies to vp9 and av1; use preset (ultrafast, "
                                 "superfast, veryfast, faster, fast, medium, slow, slower, "
                                 "veryslow) for h264."),
        ({"codec": "vp9"}, "/codec", "codec must be one of h264, av1, got 'vp9'."),
        ({"pixel-format": "rgb24"}, "/pixel-format",
         "pixel-format must be one of yuv420p, yuv444p, got 'rgb24'."),
        ({"gop": 0}, "/gop", "gop must be a whole number from 1 to 100000, got 0."),
        ({"fit": "fill"}, "/fit", "fit must be one of contain, cover, stretch, got 'fill'."),
        ({"width": 1}, "/width", "width must be a whole number from 2 to 16384, got 1."),
        ({"background": "mauve"}, "/background", "background must be #RRGGBB or one of "
                                                 "black, white, gray, red, green, blue, "
                                                 "got 'mauve'."),
        ({"durations": [1, 2]}, "/durations", "durations must list one number of seconds "
                                              "per image (1 images), got 2 values."),
        ({"durations": [0]}, "/durations/0", "durations.0 must be a number of seconds above "
                                             "0 and at most 3600, got 0."),
        ({"frame-rate": 0}, "/frame-rate", "frame-rate must be a number or fraction from "
                                           "1/3600 to 1000 frames per second (e.g. 25, "
                                           "29.97 or \"1/5\"), got 0."),
    ]
    for extra, pointer, message in cases:
        assert rejected(local, {**base, **extra}) == (pointer, message), extra


# -- several outputs and stills -------------------------------------------------------

def noise_frames(directory: Path, count: int, size: tuple[int, int]) -> list[str]:
    """Frames of grey noise: slow to encode, so progress can be watched."""
    paths = []
    for index in range(count):
        path = directory / f"noise{index:04d}.png"
        Image.effect_noise(size, 60 + index % 40).convert("RGB").save(path, compress_level=1)
        os.chmod(path, 0o644)
        paths.append(str(path))
    return paths


def test_progress_counts_the_video_while_stills_wait_for_their_frames(
        local, images: Path, tmp_path: Path) -> None:
    server, sid = local
    paths = noise_frames(images, 150, (640, 360))
    response = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": paths, "preset": "slow",
        "poster": {"at": "95%"}, "contact-sheet": {"frames": 4, "width": 64}})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    vsid = response.json()["sid"]
    stream = server.request("GET", f"/remotes/{sid}/videos/{vsid}/events", stream=True,
                            headers={"Accept": "application/x-ndjson"}, timeout=180)
    seen = []
    for line in stream.iter_lines():
        status = json.loads(line)["data"]
        seen.append(status["frames_done"])
        if status["status"] != "running" and status["status"] != "queued":
            break
    assert status["status"] == "succeeded", status["message"]
    # The poster is frame 142 and the sheet takes the last frame: the video's own
    # frames were counted all along, not only once the stills had theirs.
    early = [done for done in seen if 0 < done < 100]
    assert len(early) >= 2, seen
    named = {output["name"]: output for output in status["outputs"]}
    poster = Image.open(fetch(local, named["poster"]["url"], tmp_path / "poster.png"))
    expected = Image.open(paths[142]).convert("RGB").resize(poster.size)
    assert poster.size == (640, 360)
    assert close(poster.convert("RGB").getpixel((5, 5)), expected.getpixel((5, 5)), 40)
    sheet = Image.open(fetch(local, named["contact-sheet"]["url"], tmp_path / "sheet.jpg"))
    assert sheet.size == (256, 36)  # 4 frames of 64x36 in a row



def test_several_outputs_from_one_pass(local, images: Path, tmp_path: Path) -> None:
    colours = [(10 * i, 255 - 10 * i, 128) for i in range(20)]
    paths = solid_frames(images, colours, size=(320, 240))
    status = create(local, {
        "content-type": "video/mp4", "images": paths, "crf": 20,
        "outputs": [
            {"name": "preview", "content-type": "video/webm", "width": 160, "speed": 8},
            {"name": "still", "kind": "poster", "at": "50%", "content-type": "image/png"},
            {"name": "sheet", "kind": "contact-sheet", "frames": 6, "wrap": 3,
             "width": 80, "height": 60},
        ],
        "gif": {"width": 100, "frame-duration": 0.1, "loop": 0},
    })
    named = {output["name"]: output for output in status["outputs"]}
    assert list(named) == ["video", "preview", "still", "sheet", "gif"]
    main = probe(fetch(local, named["video"]["url"], tmp_path / "main.mp4"))
    assert (main["codec"], main["width"], main["height"], main["frames"]) == (
        "h264", 320, 240, 20)
    preview = probe(fetch(local, named["preview"]["url"], tmp_path / "preview.webm"))
    assert (preview["codec"], preview["width"], preview["height"], preview["frames"]) == (
        "vp9", 160, 120, 20)
    still = Image.open(fetch(local, named["still"]["url"], tmp_path / "still.png"))
    assert still.format == "PNG" and still.size == (320, 240)
    assert close(still.convert("RGB").getpixel((160, 120)), colours[10], 8)
    sheet = Image.open(fetch(local, named["sheet"]["url"], tmp_path / "sheet.jpg"))
    assert sheet.format == "JPEG" and sheet.size == (240, 120)
    assert close(sheet.convert("RGB").getpixel((40, 30)), colours[0], 12)
    assert close(sheet.convert("RGB").getpixel((200, 90)), colours[19], 12)
    gif = Image.open(fetch(local, named["gif"]["url"], tmp_path / "anim.gif"))
    assert gif.format == "GIF" and gif.size == (100, 74)
    assert gif.n_frames == 8  # 20 frames at 25 fps = 0.8 s, at 0.1 s a GIF frame
    assert gif.info.get("loop") == 0 and gif.info.get("duration") == 100
    server, _ = local
    # The plain video URL serves the first output.
    plain = server.request("GET", status["outputs"][0]["url"].rsplit("/outputs/", 1)[0])
    assert plain.content == (tmp_path / "main.mp4").read_bytes()
    missing = server.request("GET", status["outputs"][0]["url"].rsplit("/", 1)[0] + "/nope")
    assert missing.status_code == 404
    assert missing.headers["X-Slycat-Message"] == "Unknown output 'nope'."


def test_video_options_without_a_top_level_video_are_refused(local, images: Path) -> None:
    paths = solid_frames(images, [RED])
    assert rejected(local, {"images": paths, "codec": "hevc", "poster": True}) == (
        "/codec", "codec applies to the top-level video, which needs content-type; add "
                  "content-type or move it into an entry of outputs.")


def test_bitrate_is_bits_per_second(local, images: Path, tmp_path: Path) -> None:
    paths = []
    for index in range(25):  # noise: a bitrate cap is visible only on frames that need bits
        path = images / f"noise{index}.png"
        Image.frombytes("RGB", (320, 240), os.urandom(320 * 240 * 3)).save(path)
        paths.append(str(path))
    low = video(local, {"content-type": "video/mp4", "images": paths, "bitrate": "100k"},
                tmp_path / "low.mp4")
    high = video(local, {"content-type": "video/mp4", "images": paths, "bitrate": "2M"},
                 tmp_path / "high.mp4")
    assert low["frames"] == high["frames"] == 25
    assert (tmp_path / "high.mp4").stat().st_size > 2 * (tmp_path / "low.mp4").stat().st_size


def test_stills_only_job(local, images: Path, tmp_path: Path) -> None:
    paths = solid_frames(images, [RED, GREEN, BLUE], size=(64, 48))
    status = create(local, {"images": paths, "poster": {"at": 0.08}})
    assert [o["name"] for o in status["outputs"]] == ["poster"]
    poster = Image.open(io.BytesIO(local[0].request("GET", status["outputs"][0]["url"]).content))
    assert poster.format == "JPEG"
    assert close(poster.convert("RGB").getpixel((32, 24)), BLUE, 16)  # 0.08 s = frame 2


def test_output_option_errors(local, images: Path) -> None:
    paths = solid_frames(images, [RED])
    base = {"content-type": "video/mp4", "images": paths}
    cases = [
        ({"outputs": []}, "/outputs", "outputs must be a non-empty list of output objects."),
        ({"outputs": [{"kind": "movie"}]}, "/outputs/0/kind",
         "outputs.0.kind must be video, poster, contact-sheet or gif, got 'movie'."),
        ({"outputs": [{"name": "video", "content-type": "video/webm"}]}, "/outputs/0/name",
         "Two outputs are named 'video'; names must be unique."),
        ({"outputs": [{"name": "Bad Name", "content-type": "video/webm"}]},
         "/outputs/0/name", "outputs.0.name must be 1-64 lowercase letters, digits, - or _, "
                            "starting with a letter or digit, got 'Bad Name'."),
        ({"poster": {"at": "150%"}}, "/poster/at", "poster.at must be seconds from the "
                                                   "start or a percentage such as \"50%\", "
                                                   "got '150%'."),
        ({"gif": {"frame-duration": 0.01}}, "/gif/frame-duration",
         "gif.frame-duration must be at least 0.02 seconds (GIF timing resolution is "
         "1/100 s)."),
        ({"contact-sheet": {"crop": "yes"}}, "/contact-sheet/crop",
         "contact-sheet.crop must be true or false."),
        ({"poster": {"kind": "gif"}}, "/poster/kind",
         "poster.kind can only be 'poster' here; list other kinds in outputs."),
        ({"outputs": [{"kind": "poster", "crf": 3}]}, "/outputs/0/crf",
         "Unknown option 'outputs.0.crf'; allowed here: at, background, content-type, fit, "
         "height, kind, name, width."),
    ]
    for extra, pointer, message in cases:
        assert rejected(local, {**base, **extra}) == (pointer, message), extra


# -- compositions ----------------------------------------------------------------------

def sequence(directory: Path, prefix: str, colours: list[tuple[int, int, int]],
             size: tuple[int, int] = (64, 48)) -> list[str]:
    return solid_frames(directory, colours, names=[f"{prefix}{i}.png" for i in
                                                   range(len(colours))], size=size)


def test_grid_places_each_sequence_and_holds_the_shorter_ones(local, images: Path,
                                                              tmp_path: Path) -> None:
    a = sequence(images, "a", [RED, (200, 0, 0)])
    b = sequence(images, "b", [GREEN, (0, 200, 0), (0, 150, 0), (0, 100, 0)])
    c = sequence(images, "c", [BLUE, (0, 0, 200), (0, 0, 150)])
    status = create(local, {"content-type": "video/mp4", "layout": {
        "type": "grid", "max_columns": 2, "gap": 4, "background": "white",
        "sources": [{"images": a}, {"images": b}, {"images": c}]}})
    assert status["frames_total"] == 4
    target = fetch(local, status["outputs"][0]["url"], tmp_path / "grid.mp4")
    info = probe(target)
    # two columns, two rows of 64x48 cells with a 4-pixel gap
    assert (info["width"], info["height"], info["frames"]) == (132, 100, 4)
    frames = decode_frames(target, 132, 100)
    centres = {"a": (32, 24), "b": (100, 24), "c": (32, 76)}
    expected_a = [RED, (200, 0, 0), (200, 0, 0), (200, 0, 0)]  # held after its 2 frames
    expected_c = [BLUE, (0, 0, 200), (0, 0, 150), (0, 0, 150)]
    for index, frame in enumerate(frames):
        assert close(frame.getpixel(centres["a"]), expected_a[index], 12), index
        assert close(frame.getpixel(centres["c"]), expected_c[index], 12), index
    assert close(frames[3].getpixel(centres["b"]), (0, 100, 0), 12)
    assert close(frames[0].getpixel((100, 76)), (255, 255, 255), 12)  # the empty fourth cell


def test_regions_overlap_by_z_pos(local, images: Path, tmp_path: Path) -> None:
    below = sequence(images, "below", [RED] * 3)
    above = sequence(images, "above", [BLUE] * 3)
    status = create(local, {"content-type": "video/mp4", "layout": {
        "type": "regions", "resolution": "200x100", "background": "#204060", "regions": [
            {"images": above, "x_pos": 60, "y_pos": 20, "width": 80, "height": 60,
             "z_pos": 2},
            {"images": below, "x_pos": 0, "y_pos": 0, "width": 120, "height": 90,
             "z_pos": 1, "fit": "stretch"},
        ]}})
    target = fetch(local, status["outputs"][0]["url"], tmp_path / "regions.mp4")
    assert (probe(target)["width"], probe(target)["height"]) == (200, 100)
    frame = decode_frames(target, 200, 100)[0]
    assert close(frame.getpixel((20, 20)), RED, 12)      # only the lower region
    assert close(frame.getpixel((100, 50)), BLUE, 12)    # the overlap: z_pos 2 wins
    assert close(frame.getpixel((180, 90)), (0x20, 0x40, 0x60), 12)  # outside: background


def test_layout_errors(local, images: Path) -> None:
    frames = sequence(images, "x", [RED])
    grid = {"type": "grid", "sources": [{"images": frames}] * 5, "max_columns": 2,
            "max_rows": 2}
    cases = [
        ({"type": "mosaic", "sources": [{"images": frames}]}, "/layout/type",
         "layout.type must be one of grid, regions, got 'mosaic'."),
        (grid, "/layout/max_rows",
         "5 sources need 3 rows of 2 columns; raise layout.max_rows or layout.max_columns."),
        ({"type": "regions", "regions": [{"images": frames, "x_pos": 0, "y_pos": 0,
                                          "width": 10, "height": 10}]}, "/layout/width",
         "layout needs its size: width and height, or resolution such as \"1280x720\"."),
        ({"type": "regions", "resolution": "100x100", "regions": [
            {"images": frames, "x_pos": 0, "width": 10, "height": 10}]},
         "/layout/regions/0/y_pos", "layout.regions.0.y_pos is required for a region "
                                    "(x_pos, y_pos, width, height in pixels of the canvas)."),
        ({"type": "grid", "sources": [{"images": frames}, {"images": ["/nope.png"]}]},
         "/layout/sources/1/images/0", "File not found: /nope.png"),
    ]
    for layout, pointer, message in cases:
        assert rejected(local, {"content-type": "video/mp4", "layout": layout}) == (
            pointer, message), layout
    assert rejected(local, {"content-type": "video/mp4", "images": frames,
                            "layout": grid}) == (
        "/images", "images cannot be combined with layout: each layout source has its own "
                   "images.")


# -- text on frames ------------------------------------------------------------------------

def test_labels_and_burn_in_are_drawn(local, images: Path, tmp_path: Path) -> None:
    """Text pixels appear where labels and burn-in go, and nowhere without them."""
    a = sequence(images, "left", [(0, 0, 128)] * 3, size=(160, 120))
    b = sequence(images, "right", [(0, 0, 128)] * 3, size=(160, 120))
    plain = create(local, {"content-type": "video/mp4", "layout": {
        "type": "grid", "sources": [{"images": a}, {"images": b}]}})
    labelled = create(local, {"content-type": "video/mp4", "burn-in": {"frame-number": True},
                              "layout": {"type": "grid", "sources": [
                                  {"images": a, "label": "run A {\\N} ü"},
                                  {"images": b, "label": "run B; $(x)"}]}})
    before = decode_frames(fetch(local, plain["outputs"][0]["url"], tmp_path / "p.mp4"),
                           320, 120)[0]
    after = decode_frames(fetch(local, labelled["outputs"][0]["url"], tmp_path / "l.mp4"),
                          320, 120)[0]

    def bright(image: Image.Image, box: tuple[int, int, int, int]) -> int:
        region = image.crop(box).convert("L")
        return sum(1 for value in region.tobytes() if value > 160)

    for box in ((4, 4, 80, 28), (164, 4, 240, 28), (4, 92, 60, 118)):  # labels, frame no.
        assert bright(before, box) == 0
        assert bright(after, box) > 10, box


def test_filename_burn_in_follows_the_images(local, images: Path, tmp_path: Path) -> None:
    names = ["alpha {\\n}.png", "beta.png"]
    paths = solid_frames(images, [(0, 0, 0)] * 2, names=names, size=(320, 80))
    status = create(local, {"content-type": "video/mp4", "images": paths,
                            "durations": [0.2, 0.2],
                            "burn-in": {"filename": True, "position": "top-left",
                                        "size": 20}})
    frames = decode_frames(fetch(local, status["outputs"][0]["url"], tmp_path / "f.mp4"),
                           320, 80)
    assert len(frames) == 10
    widths = []
    for frame in (frames[0], frames[9]):
        columns = [x for x in range(320) if any(
            frame.getpixel((x, y))[0] > 160 for y in range(4, 40))]
        widths.append(max(columns) - min(columns))
    assert widths[0] > widths[1] > 20  # "alpha {\n}.png" is wider than "beta.png"


def test_burn_in_errors(local, images: Path) -> None:
    paths = solid_frames(images, [RED])
    base = {"content-type": "video/mp4", "images": paths}
    cases = [
        ({"burn-in": {}}, "/burn-in",
         "burn-in needs \"frame-number\": true, \"filename\": true, or both."),
        ({"burn-in": {"filename": True, "position": "middle"}}, "/burn-in/position",
         "burn-in.position must be one of top-left, top-right, bottom-left, bottom-right, "
         "got 'middle'."),
        ({"burn-in": {"frame-number": "yes"}}, "/burn-in/frame-number",
         "burn-in.frame-number must be true or false."),
    ]
    for extra, pointer, message in cases:
        assert rejected(local, {**base, **extra}) == (pointer, message), extra
