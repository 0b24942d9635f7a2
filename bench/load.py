#!/usr/bin/env python3
"""Responsiveness under load: status latency while encodes fill the cores.

Run as root from the repository root: ``python3 bench/load.py``.  On this host,
server and encodes together (the embedded default, local transport; ``--transport
ssh`` for a login node reached over the real sshd): 4 encodes at once (150 frames
of 1280x720 each), 200 progress-stream watchers on them, and 100 status requests a
second for 20 s.  Every request is sent when it is due, on a connection of its own
if no kept-alive one is free, and timed from when it was due.  Prints p50, p99, max,
errors, server CPU per status request, the share of the polls the server's door
answered (server/http/door.py), and what the encodes' lower priority cost them
(the same load with nice 0).  Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
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
    percentile,
    shut_down,
    start_sshd,
)

P99_TARGET = 0.050       # seconds
CPU_TARGET = 0.0005      # server CPU seconds per status request
TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    """The server process's own CPU seconds so far (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Connection:
    """One HTTP/1.1 keep-alive connection: a request at a time, the body read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str, token: str) -> tuple[int, bytes]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {token}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def watch(port: int, token: str, sid: str, vsid: str, deadline: float,
                found: dict[str, Any]) -> None:
    """One progress-stream watcher (SSE): ids must rise by one, the last event final."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /remotes/{sid}/videos/{vsid}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    last_id, final, gaps, buffer = 0, False, 0, b""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        first_line = head.split(b"\r\n", 1)[0]
        if b" 200 " not in first_line:
            found["errors"].append(f"watcher: {first_line!r}")
            return
        while time.monotonic() < deadline and not final:
            size_line = await asyncio.wait_for(reader.readline(), deadline - time.monotonic())
            size = int(size_line.strip() or b"0", 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            buffer += chunk[:-2]
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                fields = dict(line.split(b": ", 1) for line in block.split(b"\n")
                              if b": " in line and not line.startswith(b":"))
                if b"id" in fields:
                    seq = int(fields[b"id"])
                    gaps += seq != last_id + 1
                    last_id = seq
                if fields.get(b"event") == b"status":
                    state = json.loads(fields[b"data"])["status"]
                    final = state in ("succeeded", "failed", "canceled", "expired")
                elif b"event" in fields:  # an end in words: the stream stopped early
                    found["errors"].append(f"watcher: {fields[b'event'].decode()} event: "
                                           f"{fields.get(b'data', b'').decode()[:300]}")
        if not final:
            found["errors"].append(f"watcher of {vsid[:8]}: the stream stopped after event "
                                   f"{last_id}, before the final status")
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError) as error:
        found["errors"].append(f"watcher: {error!r}")
    finally:
        writer.close()
    found["watchers"].append({"final": final, "gaps": gaps, "events": last_id})


async def status_load(port: int, token: str, paths: list[str], rate: float, seconds: float,
                      found: dict[str, Any]) -> None:
    """``rate`` requests a second for ``seconds``, each timed from when it was due."""
    idle: list[Connection] = []
    start = time.monotonic() + 0.2
    total = int(rate * seconds)

    async def one(index: int) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        connection = idle.pop() if idle else None
        try:
            if connection is None:
                connection = await Connection.open(port)
            status, _ = await asyncio.wait_for(
                connection.get(paths[index % len(paths)], token), 30)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as error:
            found["errors"].append(f"status {index}: {error!r}")
            if connection is not None:
                connection.close()
            return
        found["latencies"].append(time.monotonic() - due)
        if status != 200:
            found["errors"].append(f"status {index}: HTTP {status}")
        idle.append(connection)

    await asyncio.gather(*(one(index) for index in range(total)))
    for connection in idle:
        connection.close()


BARE_SERVER = """
import asyncio, sys, tornado.web
class Hello(tornado.web.RequestHandler):
    def get(self):
        self.write({"ok": True})
async def main():
    app = tornado.web.Application([(r"/status", Hello)])
    server = app.listen(0, "127.0.0.1")
    print(list(server._sockets.values())[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def sequential_cpu(port: int, pid: int, path: str, token: str, count: int) -> float:
    """Server CPU seconds per request for ``count`` requests one after another."""
    connection = await Connection.open(port)
    try:
        for _ in range(50):
            await connection.get(path, token)
        before = server_cpu(pid)
        for _ in range(count):
            status, _ = await connection.get(path, token)
            if status != 200:
                raise BenchError(f"GET {path}: HTTP {status}")
        return (server_cpu(pid) - before) / count
    finally:
        connection.close()


def tornado_floor(count: int) -> float:
    """What a request costs a bare Tornado app (one JSON handler, no logging) here."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", BARE_SERVER], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        return asyncio.run(sequential_cpu(port, process.pid, "/status", "-", count))
    finally:
        process.kill()
        process.wait(10)


def run_load(args: argparse.Namespace, nice: int, images: list[str],
             state: Path, sshd: Any) -> dict[str, Any]:
    server = ServerProcess(state / f"server-nice{nice}", sshd, "--nice", str(nice))
    try:
        if args.transport == "ssh":
            sid = open_session(server, sshd)
        else:
            sid = expect(server.request("POST", "/remotes", json={"hostname": "localhost"}),
                         200, "POST /remotes").json()["sid"]
        port = int(server.url.rsplit(":", 1)[1])
        jobs = []
        encode_start = time.monotonic()
        for _ in range(args.encodes):
            jobs.append(expect(server.request("POST", f"/remotes/{sid}/videos", json={
                "content-type": "video/mp4", "images": images}), 202, "POST videos")
                .json()["sid"])
        found: dict[str, Any] = {"errors": [], "latencies": [], "watchers": []}
        paths = [f"/remotes/{sid}/videos/{vsid}/status" for vsid in jobs]
        quiet_cost = None

        async def scenario() -> dict[str, float]:
            deadline = time.monotonic() + args.timeout
            watchers = [asyncio.ensure_future(watch(port, server.token, sid,
                                                    jobs[index % len(jobs)], deadline, found))
                        for index in range(args.watchers)]
            await asyncio.sleep(3.0)  # the encodes and streams under way
            quiet = server_cpu(server.pid)
            await asyncio.sleep(args.baseline)
            before = server_cpu(server.pid)
            baseline_rate = (before - quiet) / args.baseline
            door_before = server.command("door")["answered"] or 0
            await status_load(port, server.token, paths, args.rate, args.seconds, found)
            after = server_cpu(server.pid)
            door = (server.command("door")["answered"] or 0) - door_before
            running = [server.request("GET", path).json() for path in paths]
            await asyncio.gather(*watchers)
            return {"baseline_rate": baseline_rate, "load_cpu": after - before, "door": door,
                    "still_running": sum(status["status"] == "running" for status in running)}

        measured = asyncio.run(scenario())
        encode_seconds = time.monotonic() - encode_start
        # The same status request, one at a time on an idle machine: its own cost.
        quiet_cost = asyncio.run(sequential_cpu(port, server.pid, paths[0], server.token,
                                                args.sequential))
        finals = [server.request("GET", path).json() for path in paths]
        for status in finals:
            if status["status"] != "succeeded":
                found["errors"].append(f"encode {status['sid'][:8]}: {status['status']} "
                                       f"{status.get('message')}")
        latencies = found["latencies"]
        requests = len(latencies)
        marginal = measured["load_cpu"] - measured["baseline_rate"] * args.seconds
        return {
            "nice": nice, "requests": requests, "errors": found["errors"],
            "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "max": max(latencies) if latencies else float("nan"),
            "cpu_per_request": marginal / requests if requests else float("nan"),
            "cpu_per_request_total": measured["load_cpu"] / requests if requests else 0.0,
            "cpu_per_request_idle": quiet_cost,
            "watchers": len(found["watchers"]),
            "watchers_final": sum(w["final"] for w in found["watchers"]),
            "watcher_gaps": sum(w["gaps"] for w in found["watchers"]),
            "jobs_running_at_end_of_load": measured["still_running"],
            "door": measured["door"],
            "encode_seconds": encode_seconds,
            "frames": [status.get("frames_total") for status in finals],
        }
    finally:
        server.stop()


def encode_alone(args: argparse.Namespace, nice: int, images: list[str], state: Path,
                 sshd: Any) -> float:
    """Seconds for one encode with nothing else on the machine."""
    server = ServerProcess(state / f"alone-nice{nice}", sshd, "--nice", str(nice))
    try:
        sid = expect(server.request("POST", "/remotes", json={"hostname": "localhost"}),
                     200, "POST /remotes").json()["sid"]
        start = time.monotonic()
        vsid = expect(server.request("POST", f"/remotes/{sid}/videos", json={
            "content-type": "video/mp4", "images": images}), 202, "POST videos").json()["sid"]
        deadline = start + args.timeout
        while True:
            status = server.request("GET", f"/remotes/{sid}/videos/{vsid}/status",
                                    params={"block": "true", "timeout": "60"}).json()
            if status["status"] != "running" and status["status"] != "queued":
                break
            if time.monotonic() > deadline:
                raise BenchError("the encode did not end in time")
        if status["status"] != "succeeded":
            raise BenchError(f"the encode {status['status']}: {status.get('message')}")
        return time.monotonic() - start
    finally:
        server.stop()


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["local", "ssh"], default="local")
    parser.add_argument("--encodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0, help="status requests a second")
    parser.add_argument("--seconds", type=float, default=20.0, help="of status requests")
    parser.add_argument("--baseline", type=float, default=4.0,
                        help="seconds of server CPU measured before the status load")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the load at each priority, interleaved (3)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-compare", action="store_true",
                        help="only nice 10: no runs at nice 0, no encode alone")
    parser.add_argument("--sequential", type=int, default=2000,
                        help="requests one at a time, for the idle costs (2000)")
    args = parser.parse_args(argv)
    if not (1 <= args.encodes <= 16 and 0 <= args.watchers <= 1000 and 1 <= args.rate <= 1000
            and 1 <= args.seconds <= 120 and 1 <= args.repeat <= 10):
        parser.error("encodes 1-16, watchers 0-1000, rate 1-1000, seconds 1-120, repeat 1-10")
    width, height = (int(part) for part in args.size.split("x"))
    frame_dir, _ = frames.frame_sequence(args.frames, width, height, timeout=args.timeout)
    images = frames.frame_paths(frame_dir, args.frames)
    state = Path(tempfile.mkdtemp(prefix="load-", dir=frames.CACHE))
    sshd = None
    priorities = (10,) if args.no_compare else (10, 0)
    runs: dict[int, list[dict[str, Any]]] = {nice: [] for nice in priorities}
    alone: dict[int, list[float]] = {nice: [] for nice in priorities}
    try:
        floor = tornado_floor(args.sequential)
        sshd = start_sshd(state / "sshd")
        for index in range(args.repeat):
            order = priorities if index % 2 == 0 else tuple(reversed(priorities))
            for nice in order:
                print(f"run {index + 1}: the load with the encodes at nice {nice} ...",
                      flush=True)
                runs[nice].append(run_load(args, nice, images, state, sshd))
        if not args.no_compare:
            for index in range(args.repeat):
                for nice in priorities if index % 2 == 0 else tuple(reversed(priorities)):
                    seconds = encode_alone(args, nice, images, state, sshd)
                    alone[nice].append(seconds)
                    print(f"run {index + 1}: one encode alone at nice {nice}: "
                          f"{seconds:.1f} s", flush=True)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    finally:
        shut_down(None, sshd)
        shutil.rmtree(state, ignore_errors=True)
    print(f"\n{args.encodes} encodes of {args.frames} x {args.size}, {args.watchers} SSE "
          f"watchers, {args.rate:.0f} status requests/s for {args.seconds:.0f} s "
          f"({args.transport} transport; per-user request rate off); medians of "
          f"{args.repeat} run(s)")
    summary = {}
    for nice, measured in runs.items():
        errors = [error for run in measured for error in run["errors"]]
        summary[nice] = {key: median_of(measured, key) for key in (
            "p50", "p99", "max", "cpu_per_request", "cpu_per_request_total",
            "cpu_per_request_idle", "encode_seconds")}
        summary[nice]["errors"] = len(errors)
        summary[nice]["watchers_missed_end"] = sum(
            run["watchers"] - run["watchers_final"] for run in measured)
        summary[nice]["watcher_gaps"] = sum(run["watcher_gaps"] for run in measured)
        summary[nice]["still_running"] = min(run["jobs_running_at_end_of_load"]
                                             for run in measured)
        summary[nice]["door_share"] = sum(run["door"] for run in measured) / max(
            1, sum(run["requests"] for run in measured))
        row = summary[nice]
        print(f"  nice {nice:>2}: p50 {1000 * row['p50']:.1f} ms, p99 {1000 * row['p99']:.1f} "
              f"ms, max {1000 * row['max']:.1f} ms, {row['errors']} errors; server CPU per "
              f"status request {1000 * row['cpu_per_request']:.3f} ms over the streams' own "
              f"(all of it / requests: {1000 * row['cpu_per_request_total']:.3f} ms); "
              f"watchers that missed the end: {row['watchers_missed_end']}, id gaps: "
              f"{row['watcher_gaps']}; at least {row['still_running']} of the encodes still "
              f"running after the load; the encodes took {row['encode_seconds']:.1f} s; "
              f"{100 * row['door_share']:.0f} % of the polls answered at the door")
        for error in errors[:5]:
            print(f"    {error}")
    main_row = summary[10]
    print(f"idle machine, one request at a time: a status request costs the server "
          f"{1000 * main_row['cpu_per_request_idle']:.3f} ms of CPU; a bare Tornado app's "
          f"one-line JSON handler {1000 * floor:.3f} ms here (the floor under any Tornado "
          f"handler; framewire's status is {main_row['cpu_per_request_idle'] / floor:.2f} x)")
    verdict = "PASS" if (main_row["p99"] < P99_TARGET and not main_row["errors"]
                         and main_row["cpu_per_request"] < CPU_TARGET
                         and main_row["watcher_gaps"] == 0
                         and main_row["watchers_missed_end"] == 0) else "MISS"
    print(f"targets at nice 10: p99 < {1000 * P99_TARGET:.0f} ms, 0 errors, CPU per status "
          f"request < {1000 * CPU_TARGET:.1f} ms: {verdict}")
    if not args.no_compare:
        ratio_load = summary[10]["encode_seconds"] / summary[0]["encode_seconds"]
        ratio_alone = statistics.median(alone[10]) / statistics.median(alone[0])
        print(f"what nice 10 costs the encodes: alone {ratio_alone:.3f} x the time at nice 0 "
              f"({statistics.median(alone[10]):.1f} s vs {statistics.median(alone[0]):.1f} s); "
              f"under this load {ratio_load:.3f} x (p99 at nice 0: "
              f"{1000 * summary[0]['p99']:.1f} ms)")
    out = Path(__file__).resolve().parent / "results" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"parameters": vars(args), "tornado_floor": floor,
                               "summary": summary, "alone": alone,
                               "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
