"""Thumbnails in batches and their cache: real ffmpeg, real files, no SSH."""

from __future__ import annotations

import base64
import io
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent import ffmpeg, protocol, thumbnails
from agent.thumbnails import Thumbnails

Item = dict[str, Any]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path / "work"


def image(path: Path, size: tuple[int, int], colour: tuple[int, int, int] = (200, 40, 40),
          kind: str = "PNG") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, kind)
    return str(path)


def noisy(directory: Path, count: int, size: tuple[int, int] = (160, 120)) -> list[str]:
    """Distinct images whose JPEGs are not tiny (noise does not compress)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"n{index:03d}.png"
        Image.effect_noise(size, 30 + index % 20).convert("RGB").save(path)
        paths.append(str(path))
    return paths


def corrupt_pixels(path: Path) -> str:
    """A PNG from its signature to its IEND, its compressed pixels garbage."""
    image(path, (120, 90), (0, 90, 200))
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start:start + 20] = b"\xff" * 20
    path.write_bytes(bytes(data))
    return str(path)


def bad_bit_depth(path: Path) -> str:
    """A PNG whose header and end are fine but whose bit depth (7) is no PNG's: ffmpeg
    cannot even open it, which fails a whole run of many inputs."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 7, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return str(path)


def picture(item: Item) -> Image.Image:
    assert item["ok"], item
    decoded = Image.open(io.BytesIO(base64.b64decode(item["data"])))
    decoded.load()
    return decoded


def entries(work: Path) -> list[Path]:
    return sorted((work / "thumbs").glob("*.jpg"))


def test_a_batch_answers_each_path_in_order(work: Path, tmp_path: Path,
                                            ffmpeg_info: dict[str, Any]) -> None:
    wide = image(tmp_path / "wide.png", (400, 300))
    tall = image(tmp_path / "tall.jpg", (100, 400), (30, 200, 30), "JPEG")
    small = image(tmp_path / "small.png", (50, 40), (30, 30, 200))
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(Path(wide).read_bytes()[:-30])
    broken = corrupt_pixels(tmp_path / "broken.png")
    missing = str(tmp_path / "missing.png")
    paths = [wide, str(text), tall, missing, broken, small, str(truncated), wide]

    answer = Thumbnails(str(work), ffmpeg_info).batch({"paths": paths})

    items = answer["thumbnails"]
    assert [item["path"] for item in items] == paths
    assert [item["ok"] for item in items] == [True, False, True, False, False, True, False,
                                              True]
    for item, size, colour in ((items[0], (96, 72), (200, 40, 40)),
                               (items[2], (24, 96), (30, 200, 30)),
                               (items[5], (50, 40), (30, 30, 200))):  # never enlarged
        decoded = picture(item)
        assert decoded.format == "JPEG" and decoded.size == size
        assert (item["width"], item["height"]) == size
        assert item["content_type"] == "image/jpeg" and item["cached"] is False
        pixel = decoded.convert("RGB").getpixel((size[0] // 2, size[1] // 2))
        assert all(abs(got - want) < 25 for got, want in zip(pixel, colour, strict=True)), pixel
    assert items[7]["data"] == items[0]["data"]  # the same image twice: converted once
    assert items[1]["error"] == {"code": protocol.NOT_AN_IMAGE,
                                 "message": f"Not a PNG or JPEG image: {text}"}
    assert items[3]["error"] == {"code": protocol.NOT_FOUND,
                                 "message": f"File not found: {missing}"}
    assert items[6]["error"] == {"code": protocol.TRUNCATED_IMAGE, "message":
                                 f"Incomplete image (still being written?): {truncated}"}
    assert items[4]["error"]["code"] == protocol.UNDECODABLE_IMAGE
    # ffmpeg's own reason, as read-image words it.
    assert items[4]["error"]["message"].startswith(f"Cannot decode the image {broken} (")
    assert "inflate" in items[4]["error"]["message"]
    assert len(entries(work)) == 3
    assert list((work / "thumbs").glob("*.part")) == []


def test_a_failed_run_falls_back_to_one_run_per_image(work: Path, tmp_path: Path,
                                                      ffmpeg_info: dict[str, Any]) -> None:
    good = noisy(tmp_path / "good", 6)
    bad = bad_bit_depth(tmp_path / "depth.png")
    paths = [*good[:3], bad, *good[3:]]
    items = Thumbnails(str(work), ffmpeg_info).batch({"paths": paths, "max-size": 64})[
        "thumbnails"]
    assert [item["ok"] for item in items] == [True, True, True, False, True, True, True]
    assert all(picture(item).size == (64, 48) for item in items if item["ok"])
    assert items[3]["error"]["code"] == protocol.UNDECODABLE_IMAGE
    assert items[3]["error"]["message"] == f"Cannot decode the image {bad} (Invalid bit depth)."


def test_a_second_batch_comes_from_the_cache(work: Path, tmp_path: Path,
                                             ffmpeg_info: dict[str, Any]) -> None:
    paths = noisy(tmp_path / "frames", 5)
    agent = Thumbnails(str(work), ffmpeg_info)
    first = agent.batch({"paths": paths})["thumbnails"]
    second = agent.batch({"paths": paths})["thumbnails"]
    assert [item["cached"] for item in first] == [False] * 5
    assert [item["cached"] for item in second] == [True] * 5
    assert [item["data"] for item in second] == [item["data"] for item in first]
    # Another agent on the same work directory finds them too.
    other = Thumbnails(str(work), ffmpeg_info).batch({"paths": paths})["thumbnails"]
    assert [item["cached"] for item in other] == [True] * 5
    # Another size is another entry.
    larger = agent.batch({"paths": paths[:1], "max-size": 128})["thumbnails"][0]
    assert larger["cached"] is False and picture(larger).size == (128, 96)
    assert len(entries(work)) == 6


def test_an_image_that_changes_is_converted_again(work: Path, tmp_path: Path,
                                                  ffmpeg_info: dict[str, Any]) -> None:
    path = image(tmp_path / "frame.png", (200, 100), (200, 40, 40))
    agent = Thumbnails(str(work), ffmpeg_info)
    assert agent.batch({"paths": [path]})["thumbnails"][0]["cached"] is False
    assert agent.batch({"paths": [path]})["thumbnails"][0]["cached"] is True

    image(Path(path), (100, 200), (30, 30, 200))  # rewritten: another size
    changed = agent.batch({"paths": [path]})["thumbnails"][0]
    assert changed["cached"] is False
    decoded = picture(changed)
    assert decoded.size == (48, 96)
    assert decoded.convert("RGB").getpixel((24, 48))[2] > 150

    stat = os.stat(path)  # the same bytes, touched: a new modification time
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert agent.batch({"paths": [path]})["thumbnails"][0]["cached"] is False
    assert agent.batch({"paths": [path]})["thumbnails"][0]["cached"] is True


def test_the_cache_is_trimmed_oldest_first_and_a_hit_counts_as_use(
        work: Path, tmp_path: Path, ffmpeg_info: dict[str, Any]) -> None:
    paths = noisy(tmp_path / "frames", 8)
    agent = Thumbnails(str(work), ffmpeg_info)
    for path in paths:  # one batch each: each entry younger than the one before
        assert agent.batch({"paths": [path]})["thumbnails"][0]["cached"] is False
    assert agent.batch({"paths": paths[:1]})["thumbnails"][0]["cached"] is True  # used again
    total = sum(entry.stat().st_size for entry in entries(work))

    # An agent with a smaller cap trims when it starts: the oldest go, to 3/4 of its cap.
    cap = total // 2
    small = Thumbnails(str(work), ffmpeg_info, cap=cap)
    kept = sum(entry.stat().st_size for entry in entries(work))
    assert kept <= cap * thumbnails.TRIM_TO
    cached = [item["cached"] for item in small.batch({"paths": paths})["thumbnails"]]
    assert cached[0] is True  # the one used last
    assert cached[1] is False  # the oldest otherwise
    assert cached[-1] is True  # the youngest
    assert sum(entry.stat().st_size for entry in entries(work)) <= cap


def test_a_batch_keeps_the_cache_under_its_cap(work: Path, tmp_path: Path,
                                               ffmpeg_info: dict[str, Any]) -> None:
    paths = noisy(tmp_path / "frames", 40)
    cap = 20_000
    items = Thumbnails(str(work), ffmpeg_info, cap=cap).batch({"paths": paths})["thumbnails"]
    assert all(item["ok"] for item in items)
    assert sum(len(base64.b64decode(item["data"])) for item in items) > 2 * cap
    assert 0 < sum(entry.stat().st_size for entry in entries(work)) <= cap


def test_agents_sharing_a_work_directory(work: Path, tmp_path: Path,
                                         ffmpeg_info: dict[str, Any]) -> None:
    """Two agents (sessions) converting, hitting and trimming one cache at once."""
    paths = noisy(tmp_path / "frames", 40)
    cap = 30_000
    agents = [Thumbnails(str(work), ffmpeg_info, cap=cap) for _ in range(2)]
    answers: list[list[Item]] = []
    failures: list[BaseException] = []

    def browse(agent: Thumbnails, order: list[str]) -> None:
        try:
            for _ in range(3):
                answers.append(agent.batch({"paths": order})["thumbnails"])
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=browse, args=(agents[0], paths)),
               threading.Thread(target=browse, args=(agents[1], paths[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert len(answers) == 6
    for items in answers:
        assert all(item["ok"] for item in items), [item for item in items if not item["ok"]]
        assert all(picture(item).size == (96, 72) for item in items)
    assert list((work / "thumbs").glob("*.part")) == []
    # Each counts the other's entries when it scans: together they may pass the cap
    # by what the other stored since, never by more.
    assert sum(entry.stat().st_size for entry in entries(work)) <= 2 * cap
    Thumbnails(str(work), ffmpeg_info, cap=cap)  # and any agent that starts trims it
    assert sum(entry.stat().st_size for entry in entries(work)) <= cap


def test_temporaries_left_behind_are_removed_when_an_agent_starts(
        work: Path, tmp_path: Path, ffmpeg_info: dict[str, Any]) -> None:
    (work / "thumbs").mkdir(parents=True)
    stale = work / "thumbs" / "0123.99-abcd.part"
    fresh = work / "thumbs" / "4567.99-abcd.part"
    stale.write_bytes(b"half a JPEG")
    fresh.write_bytes(b"being written")
    old = os.stat(stale).st_mtime - thumbnails.PART_MAX_AGE - 10
    os.utime(stale, (old, old))
    Thumbnails(str(work), ffmpeg_info)
    assert not stale.exists()
    assert fresh.exists()  # another agent may be writing it


def test_the_arguments_are_checked(work: Path, tmp_path: Path,
                                   ffmpeg_info: dict[str, Any]) -> None:
    agent = Thumbnails(str(work), ffmpeg_info)
    path = image(tmp_path / "a.png", (32, 32))
    cases = [
        ({}, "paths", "paths must be a list of absolute paths, got null."),
        ({"paths": path}, "paths", "paths must be a list of absolute paths, got a string."),
        ({"paths": []}, "paths", "paths must hold 1 to 200 paths, got 0."),
        ({"paths": [path] * 201}, "paths", "paths must hold 1 to 200 paths, got 201."),
        ({"paths": [path, "a.png"]}, "paths.1",
         "paths.1 must be an absolute path, got 'a.png'."),
        ({"paths": [path, 7]}, "paths.1", "paths.1 must be an absolute path, got 7."),
        ({"paths": [path + "\x00"]}, "paths.0", "paths.0 contains a NUL byte."),
        ({"paths": [path], "max-size": 15}, "max-size",
         "max-size must be a whole number from 16 to 1024, got 15."),
        ({"paths": [path], "max-size": 1025}, "max-size",
         "max-size must be a whole number from 16 to 1024, got 1025."),
        ({"paths": [path], "max-size": "96"}, "max-size",
         "max-size must be a whole number from 16 to 1024, got a string."),
        ({"paths": [path], "max-size": True}, "max-size",
         "max-size must be a whole number from 16 to 1024, got true."),
        ({"paths": [path], "max-size": 96.5}, "max-size",
         "max-size must be a whole number from 16 to 1024, got 96.5."),
    ]
    for args, field, message in cases:
        with pytest.raises(protocol.AgentError) as raised:
            agent.batch(args)
        assert (raised.value.code, raised.value.details.get("field"), raised.value.message) \
            == (protocol.BAD_REQUEST, field, message), args
    item = agent.batch({"paths": [path], "max-size": None})["thumbnails"][0]
    assert (item["width"], item["height"]) == (32, 32)  # 96 by default: not enlarged
    assert picture(agent.batch({"paths": [path], "max-size": 16})["thumbnails"][0]).size \
        == (16, 16)


def test_without_ffmpeg_only_cached_thumbnails_can_be_had(work: Path, tmp_path: Path,
                                                          ffmpeg_info: dict[str, Any]) -> None:
    done, new = image(tmp_path / "done.png", (64, 64)), image(tmp_path / "new.png", (64, 64))
    Thumbnails(str(work), ffmpeg_info).batch({"paths": [done]})
    without = Thumbnails(str(work), ffmpeg.describe(None))
    assert without.batch({"paths": [done]})["thumbnails"][0]["cached"] is True
    with pytest.raises(protocol.AgentError) as raised:
        without.batch({"paths": [done, new]})
    assert raised.value.code == protocol.NO_FFMPEG


def test_the_runs_of_a_batch(tmp_path: Path) -> None:
    def conversions(count: int, size: int = 1000) -> list[thumbnails.Conversion]:
        stat = os.stat_result((0o100644, 1, 1, 1, 0, 0, size, 0, 0, 0))
        return [thumbnails.Conversion(f"/f{n}.png", stat, 96, 72, f"{n}.jpg")
                for n in range(count)]

    def shape(groups: list[list[thumbnails.Conversion]]) -> list[int]:
        return [len(group) for group in groups]

    assert shape(thumbnails.plan(conversions(8), 2)) == [8]  # a strip: one run
    assert shape(thumbnails.plan(conversions(25), 2)) == [13, 12]  # a screen: both cores
    assert shape(thumbnails.plan(conversions(25), 1)) == [25]
    runs = thumbnails.plan(conversions(200), 2)
    assert len(runs) % 2 == 0 and max(shape(runs)) <= thumbnails.GROUP_INPUTS
    assert [c.source for group in runs for c in group] == [f"/f{n}.png" for n in range(200)]
    # ffmpeg holds every input of a run at once: big files make smaller runs.
    big = thumbnails.plan(conversions(10, thumbnails.GROUP_BYTES // 4), 1)
    assert shape(big) == [4, 4, 2]


def test_the_batch_argv_maps_each_input_to_its_output() -> None:
    argv = thumbnails.batch_argv("ffmpeg", [("/a 1%d.png", 96, 72, "/w/x.part"),
                                            ("/b.jpg", 24, 96, "/w/y.part")])
    assert argv[argv.index("-filter_complex") + 1] == \
        "[0:v]scale=96:72:flags=lanczos[o0];[1:v]scale=24:96:flags=lanczos[o1]"
    inputs = [argv[index + 1] for index, word in enumerate(argv) if word == "-i"]
    assert inputs == ["/a 1%d.png", "/b.jpg"]  # -pattern_type none: names as they are
    assert argv[-1] == "/w/y.part" and argv[argv.index("[o1]") - 1] == "-map"
    assert argv.count("-update") == 2 and "-nostdin" in argv
