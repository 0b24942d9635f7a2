#!/usr/bin/env python3
"""Cancel latency: from ``POST …/cancel`` to the job's status ``canceled``, on a running
1080p encode over the real sshd on loopback.

Run as root from the repository root: ``python3 bench/cancel.py [--runs 5]``.
Each run starts an encode of 300 1920x1080 frames, waits until ffmpeg has written
frames, cancels it and times the answer; then checks that no ffmpeg of the job is
left and its partial output is gone.  Prints every run, the median and the target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import frames  # noqa: I001  (bench/frames.py, beside this script)
from harness import (
    BenchError,
    ServerProcess,
    expect,
    open_session,
    shut_down,
    start_sshd,
    wait_status,
)

TARGET = 1.0  # seconds, at most (median)


def one_cancel(server: ServerProcess, sid: str, images: list[str], work_dir: Path,
               timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    vsid = expect(server.request("POST", f"/remotes/{sid}/videos", json={
        "content-type": "video/mp4", "images": images}), 202, "POST videos").json()["sid"]
    while True:  # ffmpeg is encoding: frames are coming out
        status = wait_status(server, sid, vsid, deadline, until=("running", "succeeded",
                                                                  "failed", "canceled"))
        if status["status"] != "running" or status["frames_done"] >= 5:
            break
        time.sleep(0.05)
    if status["status"] != "running":
        raise BenchError(f"the job ended before it could be canceled: {status['status']}")
    start = time.perf_counter()
    answer = expect(server.request("POST", f"/remotes/{sid}/videos/{vsid}/cancel"), 200,
                    "POST cancel").json()
    answered = time.perf_counter()
    final = answer if answer["status"] == "canceled" else wait_status(
        server, sid, vsid, deadline)
    end = time.perf_counter()
    if final["status"] != "canceled":
        raise BenchError(f"cancel ended the job {final['status']}: {final.get('message')}")
    job_dir = work_dir / "jobs" / vsid
    left = subprocess.run(["pgrep", "-f", str(job_dir)], capture_output=True, text=True,
                          check=False).stdout.split()
    partial = sorted(path.name for path in job_dir.glob("partial.*"))
    return {"seconds": end - start, "answer": answered - start,
            "frames_done": status["frames_done"], "processes_left": len(left),
            "partial_files": partial}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed cancels (5)")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds allowed for one run (300)")
    args = parser.parse_args(argv)
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be from 1 to 50")
    frame_dir, _ = frames.frame_sequence(args.frames, 1920, 1080, timeout=args.timeout)
    images = frames.frame_paths(frame_dir, args.frames)
    state = Path(tempfile.mkdtemp(prefix="cancel-", dir=frames.CACHE))
    sshd = server = None
    runs: list[dict[str, Any]] = []
    try:
        sshd = start_sshd(state / "sshd")
        server = ServerProcess(state / "server", sshd)
        sid = open_session(server, sshd)
        work_dir = Path(server.request("GET", f"/remotes/{sid}").json()["agent"]["work_dir"])
        for index in range(args.runs):
            result = one_cancel(server, sid, images, work_dir, args.timeout)
            runs.append(result)
            print(f"  run {index + 1}: canceled {result['seconds']:.3f} s after the request "
                  f"(answer {result['answer']:.3f} s) at frame {result['frames_done']}; "
                  f"{result['processes_left']} process(es) left, partial files "
                  f"{result['partial_files'] or 'none'}", flush=True)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        shut_down(server, sshd)
        shutil.rmtree(state, ignore_errors=True)
    median = sorted(run["seconds"] for run in runs)[len(runs) // 2]
    clean = all(run["processes_left"] == 0 and not run["partial_files"] for run in runs)
    verdict = "PASS" if median < TARGET and clean else "MISS"
    print(f"cancel latency, request to canceled (median of {len(runs)}): {median:.3f} s "
          f"(target < {TARGET:.1f} s; nothing left behind: {'yes' if clean else 'NO'}) "
          f"{verdict}")
    out = Path(__file__).resolve().parent / "results" / "cancel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": runs, "median": median, "target": TARGET,
                               "verdict": verdict}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
