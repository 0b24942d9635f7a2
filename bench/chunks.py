#!/usr/bin/env python3
"""Chunked encoding against one encode: speed-up, CPU overhead, size and quality,
locally and on the project's two-node Slurm, with a projection to more nodes.

Run as root from the repository root: ``python3 bench/chunks.py``.  Over the real
sshd on loopback, one session; 300 frames of 1920x1080 (bench/frames.py), for
H.264 and VP9 at framewire's defaults:

- locally, K = 2 chunks with 1 thread each against K = 1 with 1 thread (target
  speed-up >= 1.8), and K = 4 (2 at once) for the CPU overhead: every chunk's CPU
  seconds and the join's against the unchunked encode's (target <= 1.05);
- on Slurm (``.ci/slurm-up.sh``: nodes n1 and n2, one CPU each), K = 2 with
  ``cpus = 1`` per task against K = 1 (target >= 1.7);
- the chunked video's size and mean PSNR against the unchunked one (targets:
  within 3 %, within 0.2 dB);
- a table for K = 4, 8, 16 nodes, projected (not measured) from the measured
  chunk times, join time and Slurm start latency.

Each encode is timed from ``POST …/videos`` to the final status (the video is
then downloaded untimed and checked with ffprobe).  ``--repeat N`` runs every
measurement N times, the order rotated; medians are reported.  Loopback only;
every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import pwd
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
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
    open_session,
    shut_down,
    start_sshd,
    stream_to,
)

SPEEDUP_LOCAL = 1.8
SPEEDUP_SLURM = 1.7
CPU_OVERHEAD = 1.05
SIZE_WITHIN = 0.03
PSNR_WITHIN = 0.2
CODECS = {"h264": "video/mp4", "vp9": "video/webm"}


def encode(server: ServerProcess, sid: str, home: Path, images: list[str], out: Path,
           codec: str, chunks: int, executor: str, timeout: float) -> dict[str, Any]:
    body: dict[str, Any] = {"content-type": CODECS[codec], "images": images, "frame-rate": 25,
                            "chunks": chunks, "executor": executor}
    if executor == "slurm":
        body["slurm"] = {"cpus": 1}
    else:
        body["threads"] = 1
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    vsid = expect(server.request("POST", f"/remotes/{sid}/videos", json=body), 202,
                  f"POST videos ({codec}, K={chunks}, {executor})").json()["sid"]
    status: dict[str, Any] = {"status": "queued"}
    while status["status"] not in FINAL:
        status = expect(server.request("GET", f"/remotes/{sid}/videos/{vsid}/status",
                                       params={"block": "true", "timeout": 30}), 200,
                        "GET status").json()
        if time.monotonic() > deadline:
            raise BenchError(f"{codec} K={chunks} {executor} not finished in {timeout:.0f} s")
    seconds = time.perf_counter() - start
    if status["status"] != "succeeded":
        raise BenchError(f"{codec} K={chunks} {executor} {status['status']}: "
                         f"{status.get('message')} {(status.get('stderr') or '')[-400:]}")
    with server.request("GET", f"/remotes/{sid}/videos/{vsid}", stream=True) as video:
        expect(video, 200, "GET video")
        with open(out, "wb") as sink:
            stream_to(video, sink, deadline)
    detail = job_detail(home, vsid)
    expect(server.request("DELETE", f"/remotes/{sid}/videos/{vsid}"), 204, "DELETE video")
    tasks = [item for item in status["chunks"] if item["index"] is not None]
    return {"codec": codec, "chunks": chunks, "executor": executor, "seconds": seconds,
            "bytes": out.stat().st_size, "chunk_seconds": [item["seconds"] for item in tasks],
            "chunk_cpu": [item["cpu_seconds"] for item in tasks],
            "nodes": sorted({item["node"] for item in tasks if item["node"]}),
            "started": [item["started"] for item in tasks], **detail}


def job_detail(home: Path, vsid: str) -> dict[str, Any]:
    """What the job's status file in the agent's work directory (the SSH user's default,
    ~/.cache/framewire) says of its CPU and its join: the agent's own fields."""
    path = home / ".cache" / "framewire" / "jobs" / vsid / "status.json"
    if not path.exists():
        raise BenchError(f"no status file at {path}")
    data = json.loads(path.read_text())
    return {"cpu_seconds": data.get("cpu_seconds"), "join_seconds": data.get("join_seconds"),
            "join_cpu_seconds": data.get("join_cpu_seconds")}


def ffprobe_frames(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.strip())


def psnr(video: Path, reference: Path) -> float:
    """Mean PSNR (Y, dB) of ``video`` against ``reference``, frame by frame."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-i", str(reference),
                          "-lavfi", "[0:v][1:v]psnr=stats_file=-", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stdout
    values = [float(value) for value in re.findall(r"psnr_y:([0-9.]+)", out)]
    return statistics.mean(values) if values else float("inf")


def psnr_source(video: Path, frame_dir: Path) -> float:
    """Mean PSNR (Y, dB) of ``video`` against the source frames."""
    graph = ("[0:v]format=yuv420p[a];[1:v]scale=out_color_matrix=bt709:out_range=tv,"
             "format=yuv420p[b];[a][b]psnr=stats_file=-")
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-f", "image2",
                          "-framerate", "25", "-i", str(frame_dir / "frame%05d.png"),
                          "-lavfi", graph, "-f", "null", "-"], capture_output=True, text=True,
                         check=True).stdout
    values = [float(value) for value in re.findall(r"psnr_y:([0-9.]+)", out)]
    return statistics.mean(values)


SERIAL = "serial"  # the server's host profile for 127.0.0.1 with max_parallel_chunks = 1


def name_of(codec: str, count: int, executor: str) -> str:
    return f"{codec}-k{count}s-local" if executor == "serial" else \
        f"{codec}-k{count}-{executor}"


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(run[key]) for run in runs)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement (1)")
    parser.add_argument("--codecs", default="h264,vp9")
    parser.add_argument("--no-slurm", action="store_true", help="local measurements only")
    parser.add_argument("--only", default="",
                        help="measure only these, e.g. vp9-k1-local,vp9-k4s-local (see the "
                             "names the runs print)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds allowed for one encode (1800)")
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be from 1 to 10")
    codecs = [codec for codec in args.codecs.split(",") if codec]
    if not codecs or any(codec not in CODECS for codec in codecs):
        parser.error("--codecs takes h264 and/or vp9")
    width, height = (int(part) for part in args.size.split("x"))
    if not args.no_slurm:
        up = subprocess.run(["bash", str(ROOT / ".ci" / "slurm-up.sh")], capture_output=True,
                            text=True, timeout=600, check=False)
        if up.returncode != 0:
            print(f"bench: Slurm did not start: {up.stderr[-1000:]}", file=sys.stderr)
            return 2
    print(f"preparing {args.frames} frames of {width}x{height} ...", flush=True)
    frame_dir, _ = frames.frame_sequence(args.frames, width, height, timeout=args.timeout)
    images = frames.frame_paths(frame_dir, args.frames)
    state = Path(tempfile.mkdtemp(prefix="chunks-", dir=frames.CACHE))
    plan = []
    for codec in codecs:
        # k4s: K = 4 one chunk at a time, so its CPU is the chunking's own cost (two at
        # once on two cores also pay for sharing the caches and memory bandwidth).
        plan += [(codec, 1, "local"), (codec, 2, "local"), (codec, 4, "local"),
                 (codec, 4, "serial")]
        if not args.no_slurm:
            plan += [(codec, 1, "slurm"), (codec, 2, "slurm")]
    wanted = [name for name in args.only.split(",") if name]
    if wanted:
        plan = [item for item in plan if name_of(*item) in wanted]
        if {name_of(*item) for item in plan} != set(wanted):
            parser.error(f"--only: unknown measurement in {args.only!r}")
    runs: dict[str, list[dict[str, Any]]] = {}
    keep: dict[str, Path] = {}
    sshd = server = None
    try:
        sshd = start_sshd(state / "sshd")
        server = ServerProcess(state / "server", sshd, "--serial-host", SERIAL)
        sid = open_session(server, sshd)
        serial = expect(server.request("POST", "/remotes", json={
            "hostname": SERIAL, "port": sshd.port, "username": sshd.user}), 200,
            "POST /remotes (one chunk at a time)").json()["sid"]
        home = Path(pwd.getpwnam(sshd.user).pw_dir)
        for repetition in range(args.repeat):
            shift = repetition % len(plan)
            for codec, count, executor in plan[shift:] + plan[:shift]:
                key = name_of(codec, count, executor)
                out = state / f"{key}.{'mp4' if codec == 'h264' else 'webm'}"
                result = encode(server, serial if executor == "serial" else sid, home, images,
                                out, codec, count, "local" if executor == "serial"
                                else executor, args.timeout)
                if ffprobe_frames(out) != args.frames:
                    raise BenchError(f"{key}: the video has the wrong frame count")
                keep.setdefault(key, out.rename(state / f"keep-{out.name}"))
                runs.setdefault(key, []).append(result)
                where = f" on {', '.join(result['nodes'])}" if result["nodes"] else ""
                print(f"  {key:<18} {result['seconds']:8.2f} s  cpu "
                      f"{result['cpu_seconds'] or 0:8.1f} s  {result['bytes']:>10} B{where}",
                      flush=True)
        report = summarize(args, codecs, runs, keep, frame_dir)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        shut_down(server, sshd)
    shutil.rmtree(state, ignore_errors=True)
    out = Path(__file__).resolve().parent / "results" / "chunks.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"parameters": vars(args), "runs": runs, "report": report},
                              indent=2) + "\n")
    return 0


def summarize(args: argparse.Namespace, codecs: list[str], runs: dict[str, list[dict[str, Any]]],
              keep: dict[str, Path], frame_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    print(f"\n  medians of {args.repeat} run(s); {args.frames} frames of {args.size}")
    for codec in codecs:
        entry: dict[str, Any] = {}
        one = runs.get(f"{codec}-k1-local")
        if one is None:
            continue
        whole = keep[f"{codec}-k1-local"]
        cpu_one = statistics.median(run["cpu_seconds"] for run in one)
        if f"{codec}-k2-local" in runs:
            speedup = median(one, "seconds") / median(runs[f"{codec}-k2-local"], "seconds")
            entry["speedup_local"] = speedup
            print(f"  {codec}: local K=2 x 1 thread / K=1 x 1 thread, speed-up     "
                  f"{speedup:6.3f}  >= {SPEEDUP_LOCAL}  {verdict(speedup >= SPEEDUP_LOCAL)}")
            mutual = psnr(keep[f"{codec}-k2-local"], whole)
            entry["psnr_k2_vs_k1"] = mutual
            print(f"  {codec}: mean PSNR of K=2 against the unchunked video      "
                  f"{mutual:6.2f} dB")
        for key, words in ((f"{codec}-k4s-local", "K=4 one at a time"),
                           (f"{codec}-k4-local", "K=4 two at once  ")):
            if key not in runs:
                continue
            overhead = statistics.median(run["cpu_seconds"] for run in runs[key]) / cpu_one
            size = keep[key].stat().st_size / whole.stat().st_size - 1
            quality = psnr_source(keep[key], frame_dir) - psnr_source(whole, frame_dir)
            entry[key] = {"cpu_overhead": overhead, "size_change": size,
                          "psnr_change": quality}
            print(f"  {codec}: CPU of chunks + join, {words} / unchunked  "
                  f"{overhead:6.3f}  <= {CPU_OVERHEAD}  {verdict(overhead <= CPU_OVERHEAD)}")
            print(f"  {codec}: size, {words} vs unchunked              {size:+7.2%}  "
                  f"within 3%   {verdict(abs(size) <= SIZE_WITHIN)}")
            print(f"  {codec}: mean PSNR vs source, {words} - unchunked {quality:+6.3f} dB "
                  f"within {PSNR_WITHIN}  {verdict(abs(quality) <= PSNR_WITHIN)}")
        if f"{codec}-k2-slurm" in runs and f"{codec}-k1-slurm" in runs:
            slurm_one = runs[f"{codec}-k1-slurm"]
            slurm_two = runs[f"{codec}-k2-slurm"]
            slurm_speedup = median(slurm_one, "seconds") / median(slurm_two, "seconds")
            entry["speedup_slurm"] = slurm_speedup
            entry["slurm_nodes"] = slurm_two[0]["nodes"]
            print(f"  {codec}: Slurm K=2 x 1 CPU / K=1 x 1 CPU, speed-up           "
                  f"{slurm_speedup:6.3f}  >= {SPEEDUP_SLURM}  "
                  f"{verdict(slurm_speedup >= SPEEDUP_SLURM)} (tasks on "
                  f"{', '.join(slurm_two[0]['nodes'])})")
            entry["projection"] = project(codec, slurm_one, slurm_two, args.frames)
        report[codec] = entry
    return report


def project(codec: str, one: list[dict[str, Any]], two: list[dict[str, Any]],
            frames_total: int) -> list[dict[str, Any]]:
    """Wall time on K nodes, from what K=2 measured: a chunk's encode time per frame,
    Slurm's start latency (POST to the tasks' start, beyond the chunks' own time),
    and the join (its time grows with the frames it copies, not with K)."""
    whole = median(one, "seconds")
    per_frame = statistics.median(max(run["chunk_seconds"]) / (frames_total / 2) for run in two)
    join = statistics.median(float(run["join_seconds"] or 0.0) for run in two)
    start = statistics.median(max(0.0, run["seconds"] - max(run["chunk_seconds"]) -
                                  float(run["join_seconds"] or 0.0)) for run in two)
    rows = []
    print(f"  {codec}: PROJECTED, not measured (from K=2 on Slurm: {per_frame * 1000:.0f} ms "
          f"per frame per chunk, join {join:.1f} s, start and follow-up {start:.1f} s):")
    for nodes in (4, 8, 16):
        wall = start + per_frame * frames_total / nodes + join
        rows.append({"nodes": nodes, "seconds": wall, "speedup": whole / wall})
        print(f"      K={nodes:<3} on {nodes:>2} nodes   {wall:7.1f} s   speed-up "
              f"{whole / wall:5.2f} over one node ({whole:.1f} s)")
    return rows


if __name__ == "__main__":
    sys.exit(main())
