#!/usr/bin/env python3
"""The cost of going through Slurm: one video of 300 1920x1080 frames made by
framewire with the Slurm executor and with the local executor, on this host, over
the real sshd on loopback, the queue empty.

Run as root from the repository root: ``python3 bench/slurm.py [--repeat 3]``.
It starts the project's Slurm (.ci/slurm-up.sh: two slurmd "nodes" on this
host) when it is not running.  Every encode is timed from ``POST …/videos`` to
the video file written on the client; the Slurm runs also time ``POST`` to the
first status ``running`` (the scheduler's start, the runner's first write and
framewire's look at both).  One untimed warm-up of each, then ``--repeat`` timed
runs each, the order rotated; medians.  Prints every run, the ratio Slurm ÷
local (target ≤ 1.10) and the median time to ``running``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import frames  # noqa: I001  (bench/frames.py, beside this script)
from harness import (
    FINAL,
    ROOT,
    BenchError,
    ServerProcess,
    expect,
    open_session,
    shut_down,
    start_sshd,
    stream_to,
)

TARGET = 1.10  # Slurm ÷ local, at most (medians)
LONG_POLL = 30


def encode(server: ServerProcess, sid: str, images: list[str], out: Path, executor: str,
           timeout: float) -> dict[str, Any]:
    """POST → (status polled every 50 ms until running) → long-poll → download."""
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    vsid = expect(server.request("POST", f"/remotes/{sid}/videos", json={
        "content-type": "video/mp4", "images": images, "frame-rate": 25,
        "executor": executor}), 202, f"POST videos ({executor})").json()["sid"]
    running_at = None
    status: dict[str, Any] = {}
    while running_at is None:
        status = expect(server.request("GET", f"/remotes/{sid}/videos/{vsid}/status"), 200,
                        "GET status").json()
        if status["status"] != "queued":
            running_at = time.perf_counter()
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{executor} job still queued at the time limit: "
                             f"{status.get('message')}")
        time.sleep(0.05)
    while status["status"] not in FINAL:
        status = expect(server.request("GET", f"/remotes/{sid}/videos/{vsid}/status",
                                       params={"block": "true", "timeout": LONG_POLL}),
                        200, "GET status (long-poll)").json()
        if time.monotonic() > deadline:
            raise BenchError(f"{executor} job not finished within {timeout:.0f} s")
    if status["status"] != "succeeded":
        raise BenchError(f"{executor} job {status['status']}: {status.get('message')} "
                         f"{(status.get('stderr') or '')[-400:]}")
    ready = time.perf_counter()
    with server.request("GET", f"/remotes/{sid}/videos/{vsid}", stream=True) as video:
        expect(video, 200, "GET video")
        with open(out, "wb") as sink:
            size, _ = stream_to(video, sink, deadline)
    end = time.perf_counter()
    if size != status["outputs"][0]["size"]:
        raise BenchError(f"video download short: {size} of {status['outputs'][0]['size']}")
    scheduler = status.get("scheduler") or {}
    expect(server.request("DELETE", f"/remotes/{sid}/videos/{vsid}"), 204, "DELETE video")
    return {"executor": status["executor"], "seconds": end - start,
            "to_running": running_at - start, "until_ready": ready - start,
            "download": end - ready, "bytes": size, "frames": status["frames_total"],
            "slurm_job": (scheduler.get("job_ids") or [None])[0],
            "nodes": scheduler.get("nodes") or []}


def ffprobe_frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (3)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed for one encode (900)")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be from 1 to 20")
    width, height = (int(part) for part in args.size.split("x"))
    up = subprocess.run(["bash", str(ROOT / ".ci" / "slurm-up.sh")], capture_output=True,
                        text=True, timeout=600, check=False)
    if up.returncode != 0:
        print(f"bench: Slurm did not start: {up.stderr[-1000:]}", file=sys.stderr)
        return 2
    print(f"preparing {args.frames} frames of {width}x{height} ...", flush=True)
    frame_dir, _ = frames.frame_sequence(args.frames, width, height, timeout=args.timeout)
    images = frames.frame_paths(frame_dir, args.frames)
    state = Path(tempfile.mkdtemp(prefix="slurm-", dir=frames.CACHE))
    runs: dict[str, list[dict[str, Any]]] = {"local": [], "slurm": []}
    sshd = server = None
    try:
        sshd = start_sshd(state / "sshd")
        server = ServerProcess(state / "server", sshd)
        sid = open_session(server, sshd)
        slurm = server.request("GET", f"/remotes/{sid}").json()["agent"]["slurm"]
        if not slurm or not slurm.get("partitions"):
            raise BenchError(f"the agent found no usable Slurm: {slurm}")

        def measure(executor: str, record: bool) -> Callable[[], None]:
            def run() -> None:
                out = state / f"{executor}.mp4"
                result = encode(server, sid, images, out, executor, args.timeout)
                if ffprobe_frames(out) != args.frames:
                    raise BenchError(f"the {executor} video has the wrong frame count")
                where = f" on {', '.join(result['nodes'])} (Slurm job {result['slurm_job']})" \
                    if result["slurm_job"] else ""
                print(f"  {'timed  ' if record else 'warm-up'} {executor:<5} "
                      f"{result['seconds']:8.2f} s   to running {result['to_running']:6.2f} s"
                      f"{where}", flush=True)
                if record:
                    runs[executor].append(result)
            return run

        measure("local", False)()
        measure("slurm", False)()
        order = [measure("local", True), measure("slurm", True)]
        for index in range(args.repeat):
            for run in order[index % 2:] + order[:index % 2]:
                run()
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        shut_down(server, sshd)
        shutil.rmtree(state, ignore_errors=True)
    local = statistics.median(run["seconds"] for run in runs["local"])
    slurm_time = statistics.median(run["seconds"] for run in runs["slurm"])
    to_running = statistics.median(run["to_running"] for run in runs["slurm"])
    local_running = statistics.median(run["to_running"] for run in runs["local"])
    ratio = slurm_time / local
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"\n  median of {args.repeat}: local {local:.2f} s, Slurm {slurm_time:.2f} s")
    print(f"  Slurm executor / local executor (300 1080p frames, queue empty)   "
          f"{ratio:.3f}  <= {TARGET:.2f}  {verdict}")
    print(f"  POST to running, median: Slurm {to_running:.2f} s (local {local_running:.2f} s)")
    out = Path(__file__).resolve().parent / "results" / "slurm.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": runs, "local_median": local,
                               "slurm_median": slurm_time, "ratio": ratio, "target": TARGET,
                               "to_running_median": to_running,
                               "local_to_running_median": local_running,
                               "verdict": verdict}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
