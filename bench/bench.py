#!/usr/bin/env python3
"""framewire against the raw tools, on loopback: encode time and download throughput.

Run as root from the repository root: ``python3 bench/bench.py [--quick]``.
See bench/README.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import frames  # noqa: E402,I001  (bench/frames.py, beside this script)
import requests  # noqa: E402
from harness import (  # noqa: E402
    BenchError, ServerProcess, authorize, expect, median, open_session, shut_down, start_sshd,
    stream_to)

from agent.ffmpeg import Segment, describe, job_argv  # noqa: E402
from agent.options import build_spec  # noqa: E402
from tests import fixtures  # noqa: E402

ENCODE_TARGET = 1.05     # framewire wall time / raw ffmpeg wall time, at most
DOWNLOAD_TARGET = 0.80   # framewire throughput / ssh cat throughput, at least
CIPHER = "aes128-gcm@openssh.com"  # framewire's first choice (server/config.py)
CONTENT_TYPE = "video/mp4"
ENCODER = "libx264"
FRAME_RATE = "25"
LONG_POLL = "60"
CHUNK = 1 << 20
RESULTS = HERE / "results" / "latest.json"
FINAL = ("succeeded", "failed", "canceled", "expired")
_SSH_KEX = re.compile(r"kex: server->client cipher: (\S+) MAC: (\S+) compression: (\S+)")

QUICK = {"frames": 30, "size": "640x360", "download_mb": 20, "repeat": 1}
FULL = {"frames": 300, "size": "1920x1080", "download_mb": 200, "repeat": 3}




# -- the measurements -----------------------------------------------------------


def framewire_encode(server: ServerProcess, sid: str, images: list[str], out: Path,
                     timeout: float) -> dict[str, Any]:
    """POST the job, long-poll its status until it ends, download the video to ``out``.

    The long-poll (``status?block=true``) is how a client waits without
    spending the CPU the encode needs; each call returns when the job ends.
    """
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    response = expect(server.request("POST", f"/remotes/{sid}/videos", json={
        "content-type": CONTENT_TYPE, "images": images, "frame-rate": FRAME_RATE}),
        202, "POST /remotes/(sid)/videos")
    vsid = response.json()["sid"]
    posted = time.perf_counter()
    polls = 0
    while True:
        polls += 1
        status = expect(server.request("GET", f"/remotes/{sid}/videos/{vsid}/status",
                                       params={"block": "true", "timeout": LONG_POLL}),
                        200, "GET video status").json()
        if status["status"] in FINAL:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"video not finished within {timeout:.0f} s: {status}")
    if status["status"] != "succeeded":
        raise BenchError(f"framewire encode {status['status']}: {status.get('message')} "
                         f"{(status.get('stderr') or '')[-500:]}")
    ready = time.perf_counter()
    with server.request("GET", f"/remotes/{sid}/videos/{vsid}", stream=True) as video:
        expect(video, 200, "GET video")
        with open(out, "wb") as sink:
            size, _ = stream_to(video, sink, deadline)
        expected = int(video.headers["Content-Length"])
    end = time.perf_counter()
    if size != expected:
        raise BenchError(f"video download short: {size} of {expected} bytes")
    expect(server.request("DELETE", f"/remotes/{sid}/videos/{vsid}"), 204, "DELETE video")
    return {"seconds": end - start, "post": posted - start, "until_ready": ready - start,
            "download": end - ready, "polls": polls, "bytes": size}


def raw_command(frame_dir: Path, width: int, height: int, out: Path,
                as_user: str | None) -> list[str]:
    """The agent's own ffmpeg command (agent.ffmpeg.job_argv) over the same frames.

    The spec comes from the agent's own request validation (agent.options), so
    the raw command has exactly the settings framewire's job gets.
    """
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise BenchError("ffmpeg is not on PATH")
    images = sorted(str(path) for path in frame_dir.glob("*.png"))
    spec = build_spec({"content-type": CONTENT_TYPE, "images": images,
                       "frame-rate": FRAME_RATE}, describe(ffmpeg))
    if (spec.canvas.width, spec.canvas.height) != (width, height):
        raise BenchError(f"frames are not {width}x{height}")
    segment = Segment(0, str(frame_dir / frames.PATTERN))
    argv = job_argv(ffmpeg, spec, [segment], [str(out)])
    return ["runuser", "-u", as_user, "--", *argv] if as_user else argv


def timed_run(argv: list[str], timeout: float, what: str) -> tuple[float, str]:
    """Run a command to completion; its wall seconds and stderr, or BenchError."""
    start = time.perf_counter()
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=timeout)
    seconds = time.perf_counter() - start
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise BenchError(f"{what} failed ({done.returncode}): {stderr[-500:]}")
    return seconds, stderr


def raw_encode(argv: list[str], out: Path, timeout: float) -> dict[str, Any]:
    seconds, _ = timed_run(argv, timeout, "raw ffmpeg")
    return {"seconds": seconds, "bytes": out.stat().st_size}


def framewire_download(server: ServerProcess, sid: str, path: Path, size: int,
                       timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    start = time.perf_counter()
    with server.request("GET", f"/remotes/{sid}/file{path}", stream=True) as response:
        expect(response, 200, "GET /remotes/(sid)/file")
        got, first = stream_to(response, None, deadline)
    end = time.perf_counter()
    if got != size:
        raise BenchError(f"framewire download short: {got} of {size} bytes")
    return {"seconds": end - start, "first_byte": first - start, "bytes": got}


def ssh_base(sshd: fixtures.SSHD, *options: str) -> list[str]:
    """The OpenSSH client, the fixture's key and known_hosts, no user config."""
    return ["ssh", "-F", "/dev/null", "-p", str(sshd.port), "-i", str(sshd.client_key),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-c", CIPHER, *options]


def ssh_cat(argv: list[str], size: int, timeout: float,
            sshd: fixtures.SSHD) -> dict[str, Any]:
    """Run ``ssh … cat FILE > /dev/null`` (exit 0: cat sent the whole file); its wall time."""
    authorize(sshd)
    seconds, stderr = timed_run(argv, timeout, shlex.join(argv))
    return {"seconds": seconds, "bytes": size, "stderr": stderr}


class ControlMaster:
    """An established OpenSSH connection that `ssh -S` reuses, as framewire reuses its own."""

    def __init__(self, sshd: fixtures.SSHD, socket_path: Path) -> None:
        self.sshd = sshd
        self.socket = socket_path
        self.target = f"{sshd.user}@127.0.0.1"
        authorize(sshd)
        self.process = subprocess.Popen(
            ssh_base(sshd, "-o", "ControlMaster=yes", "-o", f"ControlPath={socket_path}",
                     "-o", "ControlPersist=no", "-N", self.target),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not socket_path.exists():
            if self.process.poll() is not None:
                raise BenchError("ssh ControlMaster exited: " + (
                    self.process.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
                    if self.process.stderr else ""))
            if time.monotonic() > deadline:
                self.stop()
                raise BenchError("ssh ControlMaster did not come up")
            time.sleep(0.05)

    def cat(self, path: Path) -> list[str]:
        return ["ssh", "-F", "/dev/null", "-o", f"ControlPath={self.socket}",
                "-o", "ControlMaster=no", "-p", str(self.sshd.port), self.target,
                "cat", shlex.quote(str(path))]

    def stop(self) -> None:
        subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={self.socket}",
                        "-O", "exit", self.target], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=15)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


def probe_video(path: Path) -> dict[str, Any]:
    """Codec, size and frame count from the container (no decoding)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,width,height,nb_frames,pix_fmt", "-of", "json",
                          str(path)], capture_output=True, text=True, timeout=60).stdout
    stream = (json.loads(out or "{}").get("streams") or [{}])[0]
    return {"codec": stream.get("codec_name"), "pix_fmt": stream.get("pix_fmt"),
            "width": stream.get("width"), "height": stream.get("height"),
            "frames": int(stream.get("nb_frames") or 0),
            "size": path.stat().st_size, "sha256": sha256(path)}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def interleave(repeat: int, *measurements: Callable[[], None]) -> None:
    """Run each measurement ``repeat`` times, rotating which goes first, so drift hits all."""
    for index in range(repeat):
        shift = index % len(measurements)
        for measure in measurements[shift:] + measurements[:shift]:
            measure()


# -- the report -----------------------------------------------------------------


def mib_s(size: int, seconds: float) -> float:
    return size / (1 << 20) / seconds


def verdict(value: float, target: float, at_most: bool) -> str:
    return "PASS" if (value <= target if at_most else value >= target) else "MISS"


def row(label: str, values: list[str], last: str) -> str:
    return f"  {label:<40}" + "".join(f"{value:>10}" for value in values) + f"{last:>12}"


def seconds_row(label: str, runs: list[dict[str, Any]], key: str = "seconds",
                digits: int = 2) -> str:
    return row(label, [f"{run[key]:.{digits}f}" for run in runs],
               f"{median(runs, key):.{digits}f}")


def report(results: dict[str, Any]) -> str:
    params = results["parameters"]
    env = results["environment"]
    encode = results["encode"]
    download = results["download"]
    runs = [f"run {index + 1}" for index in range(params["repeat"])]
    raw_user = encode["raw_user"]
    how = "directly" if raw_user == "root" else f"runuser -u {raw_user} --"
    cached = "cached" if encode["frames_cached"] else "generated now"
    fw_out, raw_out = encode["outputs"]["framewire"], encode["outputs"]["raw"]
    same = "yes" if encode["outputs"]["identical"] else "no"
    lines = [
        "framewire benchmark (loopback, 127.0.0.1)",
        f"  machine: {env['cpus']} CPUs, {env['python']}, {env['ffmpeg']}, {env['ssh']}, "
        f"asyncssh {env['asyncssh']}",
        f"  frames: {params['frames']} x {params['size']} PNG in {encode['frame_dir']} "
        f"({encode['frame_bytes'] / 1e6:.0f} MB, {cached})",
        f"  raw ffmpeg runs as {raw_user} ({how}), with the agent's argv "
        "(agent.ffmpeg.job_argv)",
        f"  ssh client cipher: {download['ssh_cipher']} (passed explicitly: -c {CIPHER})",
        f"  framewire (asyncssh) negotiated: {download['framewire_cipher']}",
        f"  warm-up: one untimed run of each measurement first; then {params['repeat']} "
        "timed run(s) each, order rotated; medians",
        "",
        row("ENCODE, wall seconds", runs, "median"),
        seconds_row("framewire: POST -> video file written", encode["framewire"]["runs"]),
        seconds_row("  of which until status succeeded", encode["framewire"]["runs"],
                    "until_ready"),
        seconds_row("  of which downloading the video", encode["framewire"]["runs"],
                    "download"),
        seconds_row("raw ffmpeg", encode["raw"]["runs"]),
        f"  outputs: framewire {fw_out['codec']} {fw_out['width']}x{fw_out['height']} "
        f"{fw_out['frames']} frames {fw_out['size']} B, raw {raw_out['frames']} frames "
        f"{raw_out['size']} B, identical bytes: {same}",
        "",
        row(f"DOWNLOAD {download['bytes'] / (1 << 20):.0f} MiB, wall seconds", runs, "median"),
    ]
    for key, label in (("framewire", "framewire: GET /remotes/(sid)/file"),
                       ("ssh_cat", "ssh cat (new connection)"),
                       ("ssh_cat_mux", "ssh cat (ControlMaster connection)")):
        measured = download[key]["runs"]
        lines.append(seconds_row(label, measured, digits=3))
        if key == "framewire":
            lines.append(seconds_row("  of which until the first byte", measured,
                                     "first_byte", digits=3))
        lines.append(row("  MiB/s", [f"{mib_s(run['bytes'], run['seconds']):.0f}"
                                     for run in measured], f"{download[key]['mib_s']:.0f}"))
    lines += ["", f"  {'RESULT':<52}{'value':>8}  {'target':<9}verdict"]
    for item in results["ratios"]:
        target = ("<= " if item["at_most"] else ">= ") + f"{item['target']:.2f}"
        note = " (informational)" if item["informational"] else ""
        lines.append(f"  {item['label']:<52}{item['value']:>8.3f}  {target:<9}"
                     f"{item['verdict']}{note}")
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, help="frames to encode (300; --quick 30)")
    parser.add_argument("--size", help="frame size WxH (1920x1080; --quick 640x360)")
    parser.add_argument("--download-mb", type=int, help="MiB to download (200; --quick 20)")
    parser.add_argument("--repeat", type=int, help="timed repetitions (3; --quick 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 30 frames 640x360, 20 MiB, 1 repetition")
    parser.add_argument("--raw-as-root", action="store_true",
                        help="run the raw ffmpeg as root instead of as the test user")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds allowed for any one measured operation (1200)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"where to write the JSON results ({RESULTS.relative_to(ROOT)})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's state directory (server log, sshd log)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    match = re.fullmatch(r"(\d+)x(\d+)", args.size)
    if not match:
        parser.error("--size must look like 1920x1080")
    args.width, args.height = int(match.group(1)), int(match.group(2))
    if args.width % 2 or args.height % 2:
        parser.error("--size must be even in both directions (the agent evens it)")
    for name, most in (("frames", 100_000), ("download_mb", 16_384), ("repeat", 50)):
        if not 1 <= getattr(args, name) <= most:
            parser.error(f"--{name.replace('_', '-')} must be from 1 to {most}")
    return args


def tool_version(argv: list[str], stderr: bool = False) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stderr if stderr else done.stdout).strip().splitlines()
    return text[0] if text else "unknown"


def environment() -> dict[str, Any]:
    import asyncssh

    ffmpeg = tool_version(["ffmpeg", "-hide_banner", "-version"])
    return {"cpus": os.cpu_count(), "python": f"Python {platform.python_version()}",
            "ffmpeg": " ".join(ffmpeg.split()[:3]),
            "ssh": tool_version(["ssh", "-V"], stderr=True).split(",")[0],
            "asyncssh": asyncssh.__version__, "machine": platform.machine(),
            "kernel": platform.release()}



def run(args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise BenchError("run as root: the benchmark starts a real sshd and uses the local "
                         f"test user {fixtures.TEST_USER}, like the SSH tests")
    env = environment()
    print(f"preparing {args.frames} frames of {args.size} and {args.download_mb} MiB of random "
          f"bytes under {frames.CACHE} ...", flush=True)
    frame_dir, frames_cached = frames.frame_sequence(args.frames, args.width, args.height,
                                                     timeout=args.timeout)
    images = frames.frame_paths(frame_dir, args.frames)
    blob, _ = frames.random_file(args.download_mb)
    size = blob.stat().st_size
    raw_user = "root" if args.raw_as_root else fixtures.TEST_USER

    state = Path(tempfile.mkdtemp(prefix="run-", dir=frames.CACHE))
    sshd: fixtures.SSHD | None = None
    server: ServerProcess | None = None
    master: ControlMaster | None = None
    try:
        sshd = start_sshd(state / "sshd")
        server = ServerProcess(state / "server", sshd)
        authorize(sshd)  # a test run starting meanwhile may have replaced the keys
        sid = open_session(server, sshd)
        algorithms = server.command(f"ssh-algorithms {sid}")

        # -- encode: the same frames, the same ffmpeg argv ------------------------
        client_dir = state / "client"
        client_dir.mkdir()
        fw_video = client_dir / "framewire.mp4"
        raw_dir = state / "raw"
        frames.readable_dir(state, 0o711)  # the test user may pass through, not list
        raw_dir.mkdir(mode=0o700)
        if raw_user != "root":
            user = pwd.getpwnam(raw_user)
            os.chown(raw_dir, user.pw_uid, user.pw_gid)
        raw_video = raw_dir / "raw.mp4"
        raw_argv = raw_command(frame_dir, args.width, args.height, raw_video,
                               None if raw_user == "root" else raw_user)
        encode_runs: dict[str, list[dict[str, Any]]] = {"framewire": [], "raw": []}

        def encode_framewire(record: bool = True) -> None:
            result = framewire_encode(server, sid, images, fw_video, args.timeout)
            if record:
                encode_runs["framewire"].append(result)
            progress("framewire encode", result, record)

        def encode_raw(record: bool = True) -> None:
            if raw_video.exists():
                raw_video.unlink()
            result = raw_encode(raw_argv, raw_video, args.timeout)
            if record:
                encode_runs["raw"].append(result)
            progress("raw ffmpeg encode", result, record)

        encode_framewire(record=False)
        encode_raw(record=False)
        interleave(args.repeat, encode_framewire, encode_raw)
        outputs = {"framewire": probe_video(fw_video), "raw": probe_video(raw_video)}
        identical = outputs["framewire"]["sha256"] == outputs["raw"]["sha256"]
        for name, info in outputs.items():
            if info["frames"] != args.frames:
                raise BenchError(f"the {name} video has {info['frames']} frames, "
                                 f"not {args.frames}: the comparison would be unfair")

        # -- download: the same file, framewire against ssh cat --------------------
        target = f"{sshd.user}@127.0.0.1"
        cat_argv = ssh_base(sshd, target, "cat", shlex.quote(str(blob)))
        download_runs: dict[str, list[dict[str, Any]]] = {
            "framewire": [], "ssh_cat": [], "ssh_cat_mux": []}

        def download_framewire(record: bool = True) -> None:
            result = framewire_download(server, sid, blob, size, args.timeout)
            if record:
                download_runs["framewire"].append(result)
            progress("framewire download", result, record)

        def download_ssh(record: bool = True) -> None:
            result = ssh_cat(cat_argv, size, args.timeout, sshd)
            result.pop("stderr")
            if record:
                download_runs["ssh_cat"].append(result)
            progress("ssh cat", result, record)

        def download_mux(record: bool = True) -> None:
            assert master is not None
            result = ssh_cat(master.cat(blob), size, args.timeout, sshd)
            result.pop("stderr")
            if record:
                download_runs["ssh_cat_mux"].append(result)
            progress("ssh cat (ControlMaster)", result, record)

        # Warm-up; the verbose ssh run says which cipher OpenSSH negotiated.
        download_framewire(record=False)
        verbose = ssh_cat(ssh_base(sshd, "-v", target, "cat", shlex.quote(str(blob))),
                          size, args.timeout, sshd)
        progress("ssh cat -v", verbose, False)
        kex = _SSH_KEX.search(verbose["stderr"])
        ssh_cipher = f"{kex.group(1)} MAC {kex.group(2)} compression {kex.group(3)}" \
            if kex else "unknown"
        master = ControlMaster(sshd, state / "cm.sock")
        download_mux(record=False)
        interleave(args.repeat, download_framewire, download_ssh, download_mux)
    finally:
        if master is not None:
            master.stop()
        shut_down(server, sshd)
        if args.keep:
            print(f"kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)

    fw_cipher = "unknown"
    if "recv_cipher" in algorithms:
        fw_cipher = (f"{algorithms['recv_cipher']} MAC {algorithms['recv_mac']} "
                     f"compression {algorithms['recv_compression']}")
    encode_ratio = median(encode_runs["framewire"]) / median(encode_runs["raw"])
    download_ratio = median(download_runs["ssh_cat"]) / median(download_runs["framewire"])
    strict_ratio = median(download_runs["ssh_cat_mux"]) / median(download_runs["framewire"])
    ratios = [
        {"name": "encode", "label": "encode: framewire time / raw ffmpeg time",
         "value": encode_ratio, "target": ENCODE_TARGET, "at_most": True,
         "informational": False},
        {"name": "download", "label": "download: framewire MiB/s / ssh cat MiB/s",
         "value": download_ratio, "target": DOWNLOAD_TARGET, "at_most": False,
         "informational": False},
        {"name": "download_vs_established",
         "label": "download: framewire / ssh cat on ControlMaster",
         "value": strict_ratio, "target": DOWNLOAD_TARGET, "at_most": False,
         "informational": True},
    ]
    for item in ratios:
        item["verdict"] = verdict(item["value"], item["target"], item["at_most"])
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": {"frames": args.frames, "size": args.size,
                       "download_mib": args.download_mb, "repeat": args.repeat,
                       "quick": args.quick, "long_poll_seconds": LONG_POLL,
                       "content_type": CONTENT_TYPE, "encoder": ENCODER,
                       "frame_rate": FRAME_RATE},
        "environment": env,
        "encode": {
            "frame_dir": str(frame_dir), "frames_cached": frames_cached,
            "frame_bytes": sum(os.path.getsize(path) for path in images),
            "raw_user": raw_user, "raw_argv": raw_argv,
            "framewire": {"runs": encode_runs["framewire"],
                          "median": median(encode_runs["framewire"])},
            "raw": {"runs": encode_runs["raw"], "median": median(encode_runs["raw"])},
            "outputs": {**outputs, "identical": identical},
        },
        "download": {
            "file": str(blob), "bytes": size, "ssh_cipher": ssh_cipher,
            "framewire_cipher": fw_cipher, "framewire_algorithms": algorithms,
            "ssh_argv": cat_argv,
            **{key: {"runs": runs, "median": median(runs),
                     "mib_s": mib_s(size, median(runs))}
               for key, runs in download_runs.items()},
        },
        "ratios": ratios,
    }


def progress(what: str, result: dict[str, Any], record: bool) -> None:
    label = "timed" if record else "warm-up"
    print(f"  {label:<8}{what:<28}{result['seconds']:8.3f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        results = run(args)
    except (BenchError, subprocess.TimeoutExpired, requests.RequestException) as error:
        print(f"bench: {error}", file=sys.stderr)
        if not args.keep:
            print("bench: rerun with --keep to keep the server and sshd logs", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print()
    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
