"""``framewire video …``: make and manage videos through a running server.

    framewire video create [--server URL] [USER@]HOST[:PORT]:/dir/pattern*.png -o out.mp4
    framewire video list [--status S]
    framewire video status VSID
    framewire video cancel [USER@]HOST[:PORT] VSID
    framewire video download [USER@]HOST[:PORT] VSID -o out.mp4

The token comes from ``FRAMEWIRE_TOKEN`` or the ``[client]`` table of a
configuration file (``--config``); the remote password is asked for, or read
from standard input with ``--password-stdin``, never taken as an argument.
Exit status: 0 success, 1 the job or the server failed, 2 a usage error,
130 interrupted (the remote job is canceled).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from .client import ApiError, Client

FINAL = ("succeeded", "failed", "canceled", "expired")
TARGET = re.compile(r"^(?:(?P<user>[^@:/]+)@)?(?P<host>[^:/@]+|\[[0-9A-Fa-f:.]+\])"
                    r"(?::(?P<port>\d{1,5}))?(?::(?P<path>/.*))?$")
LOCAL_HOSTS = ("localhost",)
DEFAULT_SERVER = "http://127.0.0.1:8080"


class UsageError(Exception):
    pass


@dataclass
class Target:
    username: str
    hostname: str
    port: int
    path: str | None

    @property
    def label(self) -> str:
        port = "" if self.port == 22 else f":{self.port}"
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.hostname}{port}"


def parse_target(text: str, need_path: bool) -> Target:
    match = TARGET.match(text)
    if not match or (need_path and not match.group("path")) or (
            not need_path and match.group("path")):
        shape = "[USER@]HOST[:PORT]:/dir/pattern" if need_path else "[USER@]HOST[:PORT]"
        raise UsageError(f"{text!r} is not {shape} (e.g. fred@cluster.example.org:"
                         f"/scratch/run42/frame*.png)" if need_path else
                         f"{text!r} is not {shape} (e.g. fred@cluster.example.org)")
    port = int(match.group("port") or 22)
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is not from 1 to 65535")
    host = match.group("host").strip("[]")
    user = match.group("user") or ("" if host in LOCAL_HOSTS else getpass.getuser())
    return Target(user, host, port, match.group("path"))


def add_parser(commands: Any) -> None:
    video = commands.add_parser("video", help="make and manage videos through a server",
                                description="Make and manage videos through a running "
                                            "framewire server.")
    video.add_argument("--server", default=None,
                       help=f"the framewire server (FRAMEWIRE_SERVER, else {DEFAULT_SERVER})")
    video.add_argument("--config", default=None,
                       help="TOML file with [client] server and token")
    actions = video.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="make a video of remote images and download it")
    create.add_argument("source", help="[USER@]HOST[:PORT]:/dir/pattern, e.g. "
                                       "fred@cluster:/scratch/run42/frame*.png")
    create.add_argument("-o", "--output", required=True, help="the file to write (.mp4, .webm)")
    create.add_argument("--frame-rate", default=None, help="frames per second (25), or 1/5")
    create.add_argument("--width", type=int, default=None)
    create.add_argument("--height", type=int, default=None)
    create.add_argument("--crf", type=int, default=None, help="quality: lower is better (23)")
    create.add_argument("--codec", default=None, help="h264, vp9 or av1")
    create.add_argument("--preset", default=None, help="encoder preset, e.g. veryfast, slow")
    create.add_argument("--step", type=int, default=None, help="use every Nth image")
    login_options(create)

    listing = actions.add_parser("list", help="your videos, newest first")
    listing.add_argument("--status", default=None, help="e.g. running,failed")

    status = actions.add_parser("status", help="one video's status")
    status.add_argument("vsid")

    for name, text in (("cancel", "stop a running video"), ("download", "download a video")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("host", help="[USER@]HOST[:PORT] the video was made on")
        sub.add_argument("vsid")
        if name == "download":
            sub.add_argument("-o", "--output", required=True)
        login_options(sub)


def login_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the remote password from standard input")
    parser.add_argument("--no-password", action="store_true",
                        help="log in with the server's keys for the host")


def settings(args: argparse.Namespace) -> tuple[str, str]:
    server = args.server or os.environ.get("FRAMEWIRE_SERVER")
    token = os.environ.get("FRAMEWIRE_TOKEN")
    if args.config:
        import tomllib
        try:
            with open(args.config, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise UsageError(f"cannot read {args.config}: {error}") from None
        client = data.get("client", {})
        server = server or client.get("server")
        token = token or client.get("token") or data.get("server", {}).get("token")
    if not token:
        raise UsageError("no server token: set FRAMEWIRE_TOKEN (framewire serve prints it; "
                         "in users mode, framewire token create USER)")
    return server or DEFAULT_SERVER, token


def run(args: argparse.Namespace) -> int:
    try:
        server, token = settings(args)
        client = Client(server, token)
        if args.action == "create":
            return create(client, args)
        if args.action == "list":
            return list_videos(client, args.status)
        if args.action == "status":
            return show_status(client, args.vsid)
        return manage(client, args)
    except UsageError as error:
        print(f"framewire: {error}", file=sys.stderr)
        return 2
    except ApiError as error:
        report(error)
        return 1


def report(error: ApiError) -> None:
    print(f"framewire: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)
    for extra in (error.body.get("errors") or [])[1:6]:
        if isinstance(extra, dict) and extra.get("title"):
            print(f"  {extra['title']}", file=sys.stderr)


# -- sessions -----------------------------------------------------------------

def open_session(client: Client, target: Target, args: argparse.Namespace) -> str:
    body: dict[str, Any] = {"hostname": target.hostname, "port": target.port}
    if target.username:
        body["username"] = target.username
    if args.password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\r\n")
    elif not args.no_password and target.hostname not in LOCAL_HOSTS:
        body["password"] = getpass.getpass(f"Password for {target.label}: ")
    while True:
        try:
            return str(client.call("POST", "/remotes", body)["sid"])
        except ApiError as error:
            challenge = error.body.get("challenge") if error.code == "remote-challenge" else None
            if not challenge:
                raise
            body = {"challenge": challenge["id"], "responses": ask_prompts(challenge)}


def ask_prompts(challenge: dict[str, Any]) -> list[str]:
    """Ask the person a keyboard-interactive challenge's prompts (``framewire
    video`` and ``framewire doctor``); hidden input unless a prompt echoes."""
    if challenge.get("instructions"):
        print(challenge["instructions"], file=sys.stderr)
    answers = []
    for prompt in challenge.get("prompts", []):
        ask = input if prompt.get("echo") else getpass.getpass
        answers.append(ask(prompt.get("prompt") or "Answer: "))
    return answers


def close_session(client: Client, sid: str) -> None:
    try:
        client.call("DELETE", f"/remotes/{sid}", timeout=30)
    except ApiError:
        pass


# -- create ---------------------------------------------------------------------

def video_request(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    assert target.path is not None
    directory, _, pattern = target.path.rpartition("/")
    images: dict[str, Any] = {"directory": directory or "/", "pattern": pattern or "*",
                              "sort": "natural"}
    if args.step:
        images["step"] = args.step
    extension = os.path.splitext(args.output)[1].lower()
    types = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm"}
    if extension not in types:
        raise UsageError(f"-o {args.output}: the name must end in .mp4 or .webm")
    body: dict[str, Any] = {"content-type": types[extension], "images": images}
    if args.frame_rate is not None:
        body["frame-rate"] = (float(args.frame_rate)
                              if re.fullmatch(r"\d+(\.\d+)?", args.frame_rate)
                              else args.frame_rate)
    for key in ("width", "height", "crf", "codec", "preset"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    return body


def create(client: Client, args: argparse.Namespace) -> int:
    target = parse_target(args.source, need_path=True)
    body = video_request(target, args)
    sid = open_session(client, target, args)
    vsid = None
    try:
        vsid = str(client.call("POST", f"/remotes/{sid}/videos", body)["sid"])
        print(f"video {vsid} on {target.label}", file=sys.stderr)
        status = follow(client, sid, vsid)
        if status["status"] != "succeeded":
            print(f"framewire: {status.get('message')}", file=sys.stderr)
            tail = (status.get("stderr") or "").strip().splitlines()
            if tail:
                print(f"  {tail[-1]}", file=sys.stderr)
            return 1
        save(client, status["outputs"][0]["url"], args.output)
        print(f"{args.output}: {status['frames_total']} frames, {status['width']}x"
              f"{status['height']} at {status['frame_rate']} fps", file=sys.stderr)
        return 0
    except KeyboardInterrupt:
        if vsid is not None:
            print(f"\ninterrupted: canceling video {vsid}…", file=sys.stderr)
            try:
                client.call("POST", f"/remotes/{sid}/videos/{vsid}/cancel", {}, timeout=60)
                final = client.call("GET", f"/remotes/{sid}/videos/{vsid}/status?block=true"
                                           "&timeout=30", timeout=60)
                print(f"video {vsid} {final['status']}", file=sys.stderr)
            except ApiError as error:
                report(error)
        return 130
    finally:
        close_session(client, sid)


def follow(client: Client, sid: str, vsid: str) -> dict[str, Any]:
    from tqdm import tqdm

    bar = tqdm(total=0, unit="frame", desc="queued", file=sys.stderr, dynamic_ncols=True,
               mininterval=0.2)
    status: dict[str, Any] = {}
    try:
        for status in client.events(sid, vsid):
            total = int(status.get("frames_total") or 0)
            if total and bar.total != total:
                bar.total = total
            bar.set_description(status.get("phase") or status.get("status", ""), refresh=False)
            bar.n = int(status.get("frames_done") or 0)
            bar.refresh()
            if status.get("status") in FINAL:
                break
    finally:
        bar.close()
    if status.get("status") not in FINAL:  # the stream ended early: ask once more
        status = client.call("GET", f"/remotes/{sid}/videos/{vsid}/status?block=true"
                                    "&timeout=300")
    return status


def save(client: Client, url: str, output: str) -> None:
    from tqdm import tqdm

    partial = f"{output}.part"
    bar = tqdm(total=0, unit="B", unit_scale=True, desc="download", file=sys.stderr,
               mininterval=0.2)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
    try:
        with open(partial, "wb") as handle:
            client.download(url, handle, progress)
        os.replace(partial, output)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise
    finally:
        bar.close()


# -- list, status, cancel, download -----------------------------------------------

def list_videos(client: Client, status: str | None) -> int:
    """Every page, newest first."""
    page: str | None = "/videos?" + urlencode({"status": status} if status else {})
    while page is not None:
        answer = client.call("GET", page)
        for video in answer["videos"]:
            print(f"{video['sid']}  {video['status']:<9}  {video['created']}  "
                  f"{video['username']}@{video['hostname']}  {video.get('message') or ''}")
        page = answer.get("next")
    return 0


def find(client: Client, vsid: str) -> dict[str, Any]:
    for video in client.call("GET", "/videos?" + urlencode({"ids": vsid}))["videos"]:
        if video["sid"] == vsid:
            return dict(video)
    raise ApiError(404, f"Unknown video {vsid}.", "framewire video list shows yours.")


def show_status(client: Client, vsid: str) -> int:
    video = find(client, vsid)
    progress = f"{video.get('progress', 0):.0f}%"
    print(f"{vsid}  {video['status']}  {progress}  {video.get('message') or ''}")
    return 0 if video["status"] in ("queued", "running", "succeeded") else 1


def manage(client: Client, args: argparse.Namespace) -> int:
    target = parse_target(args.host, need_path=False)
    sid = open_session(client, target, args)
    try:
        if args.action == "cancel":
            status = client.call("POST", f"/remotes/{sid}/videos/{args.vsid}/cancel", {})
            deadline = time.monotonic() + 30
            while status["status"] not in FINAL and time.monotonic() < deadline:
                status = client.call("GET", f"/remotes/{sid}/videos/{args.vsid}/status"
                                            "?block=true&timeout=10")
            print(f"video {args.vsid} {status['status']}", file=sys.stderr)
            return 0 if status["status"] == "canceled" else 1
        status = client.call("GET", f"/remotes/{sid}/videos/{args.vsid}/status")
        if status["status"] != "succeeded":
            print(f"framewire: video {args.vsid} is {status['status']}: {status.get('message')}",
                  file=sys.stderr)
            return 1
        save(client, f"/remotes/{sid}/videos/{args.vsid}", args.output)
        return 0
    finally:
        close_session(client, sid)
