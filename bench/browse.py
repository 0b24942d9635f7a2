#!/usr/bin/env python3
"""Browsing a folder of 10,000 frames: the listing, the first screen of thumbnails,
the strip, and thumbnails per second in batches against one request per image.

Run as root from the repository root: ``python3 bench/browse.py [--repeat 5]``.
Over the real sshd on loopback, one session whose agent has a work directory of
its own (its thumbnail cache is emptied before every cold measurement).  Prints
every run, the medians and the targets.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import frames  # noqa: I001  (bench/frames.py, beside this script)
from harness import BenchError, ServerProcess, expect, shut_down, start_sshd

GENERATOR = "v1"  # bump when the drawing changes, so old folders are not reused
VARIANTS = 64  # distinct pictures; the files repeat them, each with its own mtime
HOST = "bench-browse"  # the host profile whose agent works in the run's directory
TARGETS = {"listing": 1.0, "screen-cold": 1.0, "strip-cold": 1.5}  # seconds, at most
RESULTS = Path(__file__).resolve().parent / "results" / "browse.json"


def folder(count: int, width: int, height: int) -> tuple[Path, bool]:
    """``count`` small PNGs (``frame00000.png`` …), cached in /tmp/framewire-bench/."""
    from PIL import Image, ImageDraw

    frames.readable_dir(frames.CACHE)
    final = frames.CACHE / f"browse-{GENERATOR}-{width}x{height}-{count}"
    complete = final.with_name(final.name + frames.COMPLETE)  # beside: not a listed entry
    if complete.exists() and final.is_dir():
        return final, True
    shutil.rmtree(final, ignore_errors=True)
    temp = frames.readable_dir(frames.CACHE / f"{final.name}.tmp-{os.getpid()}")
    try:
        pictures = []
        gradient = Image.linear_gradient("L").resize((width, height))
        for variant in range(VARIANTS):
            picture = Image.merge("RGB", (gradient, gradient.transpose(
                Image.Transpose.FLIP_LEFT_RIGHT), gradient.point(
                lambda value, v=variant: (value + 4 * v) % 256)))
            radius = height // 4
            x = radius + variant * (width - 2 * radius) // VARIANTS
            ImageDraw.Draw(picture).ellipse((x - radius, height // 2 - radius, x + radius,
                                             height // 2 + radius), fill=(240, 200, 40))
            scratch = temp / f".variant{variant}.png"
            picture.save(scratch, "PNG")
            pictures.append(scratch.read_bytes())
            scratch.unlink()
        start = time.time() - count
        for index in range(count):
            path = temp / (frames.PATTERN % index)
            path.write_bytes(pictures[index % VARIANTS])
            os.chmod(path, 0o644)
            os.utime(path, (start + index, start + index))  # distinct files, distinct times
        os.rename(temp, final)
        complete.write_text(f"{count} PNGs {width}x{height} {GENERATOR}\n")
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return final, False


class Browser:
    """What the page does, timed: a listing, batches of thumbnails, single images."""

    def __init__(self, server: ServerProcess, sid: str, directory: Path, thumbs: Path) -> None:
        self.server = server
        self.sid = sid
        self.directory = directory
        self.thumbs = thumbs

    def empty_cache(self) -> None:
        shutil.rmtree(self.thumbs, ignore_errors=True)  # the agent makes it again

    def listing(self, count: int) -> float:
        start = time.perf_counter()
        body = expect(self.server.request("POST", f"/remotes/{self.sid}/browse{self.directory}",
                                          json={}), 200, "POST browse").json()
        seconds = time.perf_counter() - start
        if len(body["names"]) != count:
            raise BenchError(f"the listing has {len(body['names'])} entries, not {count}")
        return seconds

    def batch(self, paths: list[str], max_size: int, cached: bool) -> float:
        start = time.perf_counter()
        items = expect(self.server.request("POST", f"/remotes/{self.sid}/thumbnails", json={
            "paths": paths, "max-size": max_size}), 200, "POST thumbnails").json()["thumbnails"]
        seconds = time.perf_counter() - start
        bad = [item for item in items if not item["ok"] or item["cached"] is not cached]
        if len(items) != len(paths) or bad:
            raise BenchError(f"thumbnails not as expected (cached={cached}): {bad[:1]}")
        return seconds

    def singles(self, paths: list[str], max_size: int) -> float:
        start = time.perf_counter()
        for path in paths:
            response = expect(self.server.request(
                "GET", f"/remotes/{self.sid}/image{path}", params={"max-size": str(max_size)}),
                200, "GET image")
            if not response.content:
                raise BenchError(f"an empty thumbnail of {path}")
        return time.perf_counter() - start


def one_round(browser: Browser, paths: list[str], args: argparse.Namespace,
              offset: int) -> dict[str, float]:
    """Every measurement once; each cold one starts from an empty cache, and each
    round takes other frames (``offset``), as scrolling does."""
    pick = paths[offset:] + paths[:offset]
    screen, strip, many = pick[:25], pick[25:33], pick[33:33 + args.per_second]
    result = {"listing": browser.listing(len(paths))}
    browser.empty_cache()
    result["screen-cold"] = browser.batch(screen, 96, cached=False)
    result["screen-warm"] = browser.batch(screen, 96, cached=True)
    browser.empty_cache()
    result["strip-cold"] = browser.batch(strip, 160, cached=False)
    result["strip-warm"] = browser.batch(strip, 160, cached=True)
    browser.empty_cache()
    result["batch-seconds"] = browser.batch(many, 96, cached=False)
    browser.empty_cache()
    result["single-seconds"] = browser.singles(many, 96)
    result["batch-per-second"] = len(many) / result["batch-seconds"]
    result["single-per-second"] = len(many) / result["single-seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="PNGs in the folder (10000)")
    parser.add_argument("--size", default="320x180", help="their size (320x180)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (5)")
    parser.add_argument("--per-second", type=int, default=100,
                        help="thumbnails for the per-second comparison (100; at most 200)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed for the whole measurement (900)")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.split("x"))
    if not 1 <= args.repeat <= 20 or not 1 <= args.per_second <= 200 \
            or args.files < 33 + args.per_second:
        parser.error("--repeat 1-20, --per-second 1-200, --files at least 33 + --per-second")

    made = time.perf_counter()
    directory, cached = folder(args.files, width, height)
    print(f"folder: {args.files} PNGs of {width}x{height} in {directory} "
          f"({'cached' if cached else f'made in {time.perf_counter() - made:.1f} s'})",
          flush=True)
    paths = [str(directory / (frames.PATTERN % index)) for index in range(args.files)]
    state = Path(tempfile.mkdtemp(prefix="browse-", dir=frames.CACHE))
    os.chmod(state, 0o711)  # the test user reaches the agent's work directory inside
    sshd = server = None
    runs: list[dict[str, float]] = []
    deadline = time.monotonic() + args.timeout
    try:
        sshd = start_sshd(state / "sshd")
        work = state / "work"  # the agent's own: emptying its cache disturbs no one
        work.mkdir()
        user = pwd.getpwnam(sshd.user)
        os.chown(work, user.pw_uid, user.pw_gid)
        server = ServerProcess(state / "server", sshd, "--work-dir-host", f"{HOST}={work}")
        sid = expect(server.request("POST", "/remotes", json={
            "hostname": HOST, "port": sshd.port, "username": sshd.user, "agent": None}),
            200, "POST /remotes").json()["sid"]
        browser = Browser(server, sid, directory, work / "thumbs")
        one_round(browser, paths, args, offset=len(paths) // 2)  # warm-up, untimed
        for index in range(args.repeat):
            if time.monotonic() > deadline:
                raise BenchError("the measurement exceeded --timeout")
            result = one_round(browser, paths, args, offset=index * 997 % len(paths))
            runs.append(result)
            print(f"  round {index + 1}: listing {result['listing']:.3f} s, screen "
                  f"{result['screen-cold']:.3f} s cold / {result['screen-warm']:.3f} s warm, "
                  f"strip {result['strip-cold']:.3f} / {result['strip-warm']:.3f} s, "
                  f"{result['batch-per-second']:.0f} thumbnails/s batched, "
                  f"{result['single-per-second']:.1f}/s one by one", flush=True)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        shut_down(server, sshd)
        shutil.rmtree(state, ignore_errors=True)

    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    ratio = statistics.median(run["batch-per-second"] / run["single-per-second"]
                              for run in runs)
    print(f"medians of {len(runs)} rounds ({args.files} PNGs of {width}x{height}, "
          f"{os.cpu_count()} cores):")
    verdicts = {}
    for key, label in (("listing", f"listing ({args.files} entries, full JSON)"),
                       ("screen-cold", "first screen (25 at 96 px, cold)"),
                       ("screen-warm", "first screen (25 at 96 px, cached)"),
                       ("strip-cold", "strip (8 at 160 px, cold)"),
                       ("strip-warm", "strip (8 at 160 px, cached)")):
        target = TARGETS.get(key)
        verdicts[key] = "PASS" if target is None or medians[key] < target else "MISS"
        print(f"  {label:42} {medians[key]:.3f} s"
              + (f"  (target < {target:.1f} s) {verdicts[key]}" if target else ""))
    print(f"  {'thumbnails per second, one batch of %d' % args.per_second:42} "
          f"{medians['batch-per-second']:.1f}/s")
    print(f"  {'thumbnails per second, one GET each':42} {medians['single-per-second']:.1f}/s")
    print(f"  {'batched / one by one (same run)':42} {ratio:.1f} x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "parameters": vars(args), "machine": {"cores": os.cpu_count(),
                                              "python": platform.python_version()},
        "runs": runs, "medians": medians, "ratio": ratio, "targets": TARGETS,
        "verdicts": verdicts}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
