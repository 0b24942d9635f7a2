#!/usr/bin/env python3
"""What the growing preview costs an encode: the same job with ``"preview": true``
(the default) and ``"preview": false``, alternately, in one run.

Run as root from the repository root: ``python3 bench/preview.py``.  The embedded
default (local transport; the real sshd only because the benchmark's server
process expects one), 450 frames of 1280x720 (bench/frames.py), H.264 at
framewire's defaults (preset medium, crf 23).  Each encode is timed from ``POST
…/videos`` to its final status (long-polled); the job's own status file gives
the runner's wall time and its ffmpeg's CPU seconds.  One untimed warm-up of
each, then ``--repeat`` timed pairs, the order alternating.  Prints every run,
the medians and the ratio on ÷ off against the target (≤ 1.03), and checks that
the two videos are the same bytes.  ``--watch`` also plays the preview during
the timed "on" runs, as the web page would (status every 0.5 s, each new range
fetched), and reports what that client saw.  Loopback only; every wait is
bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import frames  # noqa: I001  (bench/frames.py, beside this script)
from harness import (
    FINAL,
    ROOT,
    BenchError,
    ServerProcess,
    expect,
    median,
    shut_down,
    start_sshd,
    stream_to,
)

TARGET = 1.03


class Viewer(threading.Thread):
    """A client playing the preview while the job runs: the status every 0.5 s, and
    each new part of the preview fetched (``bytes=N-``), counted and dropped."""

    def __init__(self, server: ServerProcess, sid: str, vsid: str, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server, self.sid, self.vsid, self.deadline = server, sid, vsid, deadline
        self.fetched = 0
        self.ranges = 0
        self.frames: list[int] = []
        self.first: float | None = None
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        started = time.perf_counter()
        try:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                status = self.server.request(
                    "GET", f"/remotes/{self.sid}/videos/{self.vsid}/status").json()
                if status["status"] in FINAL:
                    return
                preview = status.get("preview")
                if preview and preview["size"] > self.fetched:
                    if self.first is None:
                        self.first = time.perf_counter() - started
                    self.frames.append(preview["frames"])
                    with self.server.request("GET", preview["url"], stream=True, headers={
                            "Range": f"bytes={self.fetched}-"}) as part:
                        if part.status_code == 206:
                            size = int(part.headers["Content-Range"].rpartition("/")[2])
                            got, _ = stream_to(part, None, self.deadline)
                            if self.fetched + got != size:
                                self.error = f"a short range: {got} of {size - self.fetched}"
                                return
                            self.fetched = size
                            self.ranges += 1
                self.stop.wait(0.5)
        except Exception as error:  # reported, never fatal to the measurement
            self.error = repr(error)


def encode(server: ServerProcess, sid: str, work_dir: Path, images: list[str], out: Path,
           preview: bool, watch: bool, timeout: float) -> dict[str, Any]:
    body = {"content-type": "video/mp4", "images": images, "frame-rate": 25,
            "preview": preview}
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    vsid = expect(server.request("POST", f"/remotes/{sid}/videos", json=body), 202,
                  f"POST videos (preview {'on' if preview else 'off'})").json()["sid"]
    viewer = Viewer(server, sid, vsid, deadline) if watch and preview else None
    if viewer is not None:
        viewer.start()
    status: dict[str, Any] = {"status": "queued"}
    while status["status"] not in FINAL:
        status = expect(server.request("GET", f"/remotes/{sid}/videos/{vsid}/status",
                                       params={"block": "true", "timeout": 30}), 200,
                        "GET status").json()
        if time.monotonic() > deadline:
            raise BenchError(f"preview {preview}: not finished in {timeout:.0f} s")
    seconds = time.perf_counter() - start
    if viewer is not None:
        viewer.stop.set()
        viewer.join(30)
    if status["status"] != "succeeded":
        raise BenchError(f"preview {preview}: {status['status']}: {status.get('message')} "
                         f"{(status.get('stderr') or '')[-400:]}")
    with server.request("GET", f"/remotes/{sid}/videos/{vsid}", stream=True) as video:
        expect(video, 200, "GET video")
        with open(out, "wb") as sink:
            stream_to(video, sink, deadline)
    job_dir = work_dir / "jobs" / vsid
    agent_status = json.loads((job_dir / "status.json").read_text())
    leftovers = sorted(path.name for path in job_dir.glob("partial.*"))
    expect(server.request("DELETE", f"/remotes/{sid}/videos/{vsid}"), 204, "DELETE video")
    if leftovers:
        raise BenchError(f"the job left {leftovers} behind")
    run = {"preview": preview, "seconds": seconds, "runner_seconds": agent_status["seconds"],
           "cpu_seconds": agent_status["cpu_seconds"], "bytes": out.stat().st_size,
           "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    if viewer is not None:
        run["viewer"] = {"first_preview_seconds": viewer.first, "ranges": viewer.ranges,
                         "bytes": viewer.fetched, "frames_seen": viewer.frames,
                         "error": viewer.error}
    return run


def show(run: dict[str, Any], label: str) -> None:
    line = (f"  {label:<10} preview {'on ' if run['preview'] else 'off'}  "
            f"{run['seconds']:7.2f} s  (runner {run['runner_seconds']:7.2f} s, "
            f"ffmpeg CPU {run['cpu_seconds']:7.2f} s)")
    viewer = run.get("viewer")
    if viewer:
        first = viewer["first_preview_seconds"]
        line += (f"  viewer: {viewer['ranges']} ranges, {viewer['bytes'] / 1e6:.1f} MB, "
                 f"first after {first:.1f} s" if first is not None else "  viewer: nothing")
        if viewer["error"]:
            line += f" ({viewer['error']})"
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=450)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repeat", type=int, default=5, help="timed pairs (on and off)")
    parser.add_argument("--watch", action="store_true",
                        help="play the preview during the timed on runs")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "preview.json"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))

    directory, cached = frames.frame_sequence(args.frames, width, height, args.timeout)
    print(f"frames: {args.frames} of {width}x{height} in {directory}"
          f"{' (cached)' if cached else ''}", flush=True)
    images = frames.frame_paths(directory, args.frames)
    state = Path(tempfile.mkdtemp(prefix="run-", dir=str(frames.readable_dir(frames.CACHE))))
    sshd = server = None
    try:
        sshd = start_sshd(state / "sshd")
        server = ServerProcess(state / "server", sshd)
        sid = expect(server.request("POST", "/remotes", json={"hostname": "localhost"}), 200,
                     "POST /remotes (local)").json()["sid"]
        work_dir = state / "server" / "local-work"
        out = state / "out"
        out.mkdir()
        print("warm-up (untimed): preview off, then on", flush=True)
        for preview in (False, True):
            show(encode(server, sid, work_dir, images, out / "warm.mp4", preview, False,
                        args.timeout), "warm-up")
        runs: list[dict[str, Any]] = []
        for index in range(args.repeat):
            order = (False, True) if index % 2 == 0 else (True, False)
            for preview in order:
                run = encode(server, sid, work_dir, images,
                             out / f"{'on' if preview else 'off'}-{index}.mp4", preview,
                             args.watch, args.timeout)
                run["repetition"] = index
                runs.append(run)
                show(run, f"run {index + 1}")
        on = [run for run in runs if run["preview"]]
        off = [run for run in runs if not run["preview"]]
        ratios = {key: median(on, key) / median(off, key)
                  for key in ("seconds", "runner_seconds", "cpu_seconds")}
        pairs = [a["seconds"] / b["seconds"] for a, b in zip(on, off, strict=True)]
        same = len({run["sha256"] for run in runs}) == 1
        print(f"\nmedians: on {median(on):.2f} s, off {median(off):.2f} s "
              f"(runner {median(on, 'runner_seconds'):.2f} / "
              f"{median(off, 'runner_seconds'):.2f} s, ffmpeg CPU "
              f"{median(on, 'cpu_seconds'):.2f} / {median(off, 'cpu_seconds'):.2f} s)")
        print(f"ratio on / off: {ratios['seconds']:.3f} (runner {ratios['runner_seconds']:.3f},"
              f" ffmpeg CPU {ratios['cpu_seconds']:.3f}; per pair "
              f"{', '.join(f'{value:.3f}' for value in pairs)}; spread of the pairs "
              f"{statistics.pstdev(pairs):.3f})")
        verdict = "PASS" if ratios["seconds"] <= TARGET else "MISS"
        print(f"target: on / off <= {TARGET}: {verdict}")
        print(f"videos: {'identical bytes' if same else 'DIFFER'} with and without preview")
        result = {"parameters": vars(args), "frames_dir": str(directory), "runs": runs,
                  "ratios": ratios, "pairs": pairs, "target": TARGET, "verdict": verdict,
                  "identical": same}
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {args.output}")
        if not same:
            raise BenchError("the preview changed the video's bytes")
        return 0
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    finally:
        shut_down(server, sshd)
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
