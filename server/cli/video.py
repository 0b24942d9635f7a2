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
from urllib.parse import quote, urlencode

from ..records import FINAL_STATES
from .http_client import ApiError, Client

FINAL = tuple(state.value for state in FINAL_STATES)
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


def server_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """``--server`` and ``--config``, taken before or after the sub-command (a value
    given after it wins; ``SUPPRESS`` keeps a sub-command from unsetting the other)."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--server", default=default,
                        help=f"the framewire server (FRAMEWIRE_SERVER, else {DEFAULT_SERVER})")
    parser.add_argument("--config", default=default,
                        help="TOML file with [client] server and token")


def add_parser(commands: Any) -> None:
    video = commands.add_parser("video", help="make and manage videos through a server",
                                description="Make and manage videos through a running "
                                            "framewire server.")
    server_options(video, top=True)
    actions = video.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="make a video of remote images and download it")
    create.add_argument("source", help="[USER@]HOST[:PORT]:/dir/pattern, e.g. "
                                       "fred@cluster:/scratch/run42/frame*.png, or "
                                       "HOST:/dir for every PNG and JPEG image in /dir")
    create.add_argument("-o", "--output", required=True, help="the file to write (.mp4, .webm)")
    create.add_argument("--frame-rate", default=None, help="frames per second (25), or 1/5")
    create.add_argument("--width", type=int, default=None)
    create.add_argument("--height", type=int, default=None)
    create.add_argument("--crf", type=int, default=None, help="quality: lower is better (23)")
    create.add_argument("--codec", default=None, help="h264, vp9 or av1")
    create.add_argument("--preset", default=None, help="encoder preset, e.g. veryfast, slow")
    create.add_argument("--step", type=int, default=None, help="use every Nth image")
    create.add_argument("--executor", choices=["local", "slurm"], default=None,
                        help="where the encode runs: on the host, or as a Slurm batch job "
                             "(default: the host's profile, else local)")
    create.add_argument("--partition", default=None, help="Slurm partition")
    create.add_argument("--time", default=None, help="Slurm time limit, e.g. 00:30:00")
    create.add_argument("--cpus", type=int, default=None, help="Slurm CPUs for the encode")
    create.add_argument("--mem", default=None, help="Slurm memory, e.g. 4G")
    create.add_argument("--chunks", default=None, type=_chunks,
                        help="encode in N parts at once (Slurm: one per node), or auto")
    login_options(create)
    server_options(create, top=False)

    listing = actions.add_parser("list", help="your videos, newest first")
    listing.add_argument("--status", default=None, help="e.g. running,failed")
    server_options(listing, top=False)

    status = actions.add_parser("status", help="one video's status")
    status.add_argument("vsid", help="the video's id, or the start of it (8 characters)")
    server_options(status, top=False)

    for name, text in (("cancel", "stop a running video"), ("download", "download a video")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("host", help="[USER@]HOST[:PORT] the video was made on")
        sub.add_argument("vsid", help="the video's id, or the start of it")
        if name == "download":
            sub.add_argument("-o", "--output", required=True,
                             help="the file to write; its extension must match the video's")
        login_options(sub)
        server_options(sub, top=False)


def login_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the remote password from standard input")
    parser.add_argument("--no-password", action="store_true",
                        help="log in with the server's keys for the host")


def settings(args: argparse.Namespace) -> tuple[str, str]:
    server = getattr(args, "server", None) or os.environ.get("FRAMEWIRE_SERVER")
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

def has_terminal() -> bool:
    """Whether there is a terminal to ask a person (getpass reads /dev/tty)."""
    try:
        with open("/dev/tty"):
            return True
    except OSError:
        return False


def ask_password(label: str) -> str:
    """The remote password, asked on the terminal (never echoed)."""
    if not has_terminal():
        raise UsageError(f"no terminal to ask the password for {label}: pipe it in with "
                         "--password-stdin, or log in with the server's keys "
                         "(--no-password)")
    return getpass.getpass(f"Password for {label}: ")


def open_session(client: Client, target: Target, args: argparse.Namespace) -> str:
    body: dict[str, Any] = {"hostname": target.hostname, "port": target.port}
    if target.username:
        body["username"] = target.username
    if args.password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\r\n")
    elif not args.no_password and target.hostname not in LOCAL_HOSTS:
        body["password"] = ask_password(target.label)
    while True:
        try:
            return str(client.call("POST", "/remotes", body)["sid"])
        except ApiError as error:
            challenge = error.body.get("challenge") if error.code == "remote-challenge" else None
            if not challenge:
                raise
            body = {"challenge": challenge["id"],
                    "responses": ask_prompts(challenge, args.password_stdin)}


def ask_prompts(challenge: dict[str, Any], from_stdin: bool = False) -> list[str]:
    """Ask the person a keyboard-interactive challenge's prompts (``framewire
    video`` and ``framewire doctor``): on the terminal, hidden unless a prompt
    echoes; without one, a line of standard input each when ``from_stdin``."""
    terminal = has_terminal()
    if not terminal and not from_stdin:
        raise UsageError("the host asks questions (keyboard-interactive) and there is no "
                         "terminal to answer them: pipe the answers in, one a line after "
                         "the password, with --password-stdin")
    if challenge.get("instructions"):
        print(challenge["instructions"], file=sys.stderr)
    answers = []
    for prompt in challenge.get("prompts", []):
        text = prompt.get("prompt") or "Answer: "
        try:
            if prompt.get("echo"):
                answers.append(input(text))
            elif terminal:
                answers.append(getpass.getpass(text))
            else:
                sys.stderr.write(text)
                sys.stderr.flush()
                line = sys.stdin.readline()
                if not line:
                    raise EOFError
                answers.append(line.rstrip("\r\n"))
        except EOFError:
            raise UsageError(f"standard input ended before the answer to {text.strip()!r}") \
                from None
    return answers


def close_session(client: Client, sid: str) -> None:
    try:
        client.call("DELETE", f"/remotes/{sid}", timeout=30)
    except ApiError:
        pass


# -- create ---------------------------------------------------------------------

VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm"}
FILE_TYPES = {**VIDEO_TYPES, ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".gif": "image/gif"}
GLOB = re.compile(r"[*?\[]")


def output_path(output: str, content_type: str | None = None) -> str:
    """Check ``-o`` before any work starts: a name that fits the file's type (a
    video to make, or ``content_type`` of one made), in a directory that exists
    and can be written; the content type the name asks for."""
    extension = os.path.splitext(output)[1].lower()
    if content_type is None and extension not in VIDEO_TYPES:
        raise UsageError(f"-o {output}: the name must end in .mp4 or .webm")
    if content_type is not None and FILE_TYPES.get(extension) != content_type:
        right = next((name for name, kind in FILE_TYPES.items() if kind == content_type), "")
        raise UsageError(f"-o {output}: the video is {content_type}; name the file "
                         f"{os.path.splitext(output)[0]}{right}" if right else
                         f"-o {output}: the video is {content_type}")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise UsageError(f"-o {output}: there is no directory {directory}; create it first")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(f"-o {output}: the directory {directory} cannot be written")
    if os.path.isdir(output):
        raise UsageError(f"-o {output}: that is a directory; name a file in it")
    return FILE_TYPES[extension]


def images_of(client: Client, sid: str, path: str, step: int | None) -> dict[str, Any]:
    """The ``images`` of ``HOST:/dir/pattern`` (or ``HOST:/dir``: every PNG and JPEG
    in it, natural order); a last part without wildcards is asked about first."""
    directory, _, name = path.rstrip("/").rpartition("/")
    images: dict[str, Any] = {"directory": directory or "/", "sort": "natural"}
    if path.endswith("/") or not name:
        images["directory"] = path.rstrip("/") or "/"
    elif GLOB.search(name):
        images["pattern"] = name
    else:
        listing = client.call("POST", f"/remotes/{sid}/browse{quote(path)}", {})
        if listing["path"].rstrip("/") == path.rstrip("/"):  # a directory
            images["directory"] = path.rstrip("/")
        else:
            images["pattern"] = name
    if step:
        images["step"] = step
    return images


def _chunks(text: str) -> int | str:
    """``--chunks``: a whole number or ``auto`` (the server checks the range)."""
    if text == "auto":
        return text
    if not re.fullmatch(r"\d{1,4}", text):
        raise argparse.ArgumentTypeError(f"--chunks takes a whole number or auto, not {text!r}")
    return int(text)


def video_request(args: argparse.Namespace, images: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"content-type": output_path(args.output), "images": images}
    if args.frame_rate is not None:
        body["frame-rate"] = (float(args.frame_rate)
                              if re.fullmatch(r"\d+(\.\d+)?", args.frame_rate)
                              else args.frame_rate)
    for key in ("width", "height", "crf", "codec", "preset", "chunks"):
        if getattr(args, key, None) is not None:
            body[key] = getattr(args, key)
    slurm = {key: getattr(args, key) for key in ("partition", "time", "cpus", "mem")
             if getattr(args, key) is not None}
    if args.executor is not None:
        body["executor"] = args.executor
    if slurm:
        body["executor"] = "slurm"
        body["slurm"] = slurm
    return body


def create(client: Client, args: argparse.Namespace) -> int:
    target = parse_target(args.source, need_path=True)
    assert target.path is not None
    output_path(args.output)
    sid = open_session(client, target, args)
    vsid = None
    try:
        body = video_request(args, images_of(client, sid, target.path, args.step))
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
            bar.set_description(describe_phase(status), refresh=False)
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


def describe_phase(status: dict[str, Any]) -> str:
    """What the job is doing, in a few words for the progress bar."""
    scheduler = status.get("scheduler") or {}
    job = f"Slurm job {scheduler['job_ids'][0]}" if scheduler.get("job_ids") else ""
    if status.get("status") == "queued" and scheduler.get("reason_text"):
        return f"queued ({job}: {scheduler['reason_text']})"
    chunks = [item for item in status.get("chunks") or [] if item.get("index") is not None]
    if status.get("status") == "running" and chunks:
        done = sum(item.get("state") == "succeeded" for item in chunks)
        running = sum(item.get("state") == "running" for item in chunks)
        return (f"{status.get('phase') or 'running'}: {len(chunks)} chunks, {running} running, "
                f"{done} done")
    if status.get("status") == "running" and scheduler.get("nodes"):
        return f"{status.get('phase') or 'running'} on {', '.join(scheduler['nodes'])}"
    return str(status.get("phase") or status.get("status", ""))


def scheduler_words(status: dict[str, Any]) -> str:
    """``Slurm job 812 · partition debug · waiting 4 min · expected to start 14:05``."""
    scheduler = status.get("scheduler") or {}
    words = [f"Slurm job {', '.join(scheduler.get('job_ids') or ['?'])}"]
    if scheduler.get("partition"):
        words.append(f"partition {scheduler['partition']}")
    queued = status.get("status") == "queued"
    waited = scheduler.get("waited_seconds")
    if waited is not None:
        words.append(f"{'waiting' if queued else 'waited'} {_duration(waited)}")
    if queued and scheduler.get("expected_start"):
        words.append(f"expected to start {scheduler['expected_start']}")
    if scheduler.get("nodes"):
        words.append(f"on {', '.join(scheduler['nodes'])}")
    return " · ".join(words)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


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
    """The caller's video whose id is ``vsid`` or starts with it (8 characters, as
    the web page shows them, are usually enough)."""
    if not re.fullmatch(r"[0-9a-f]{1,32}", vsid):
        raise UsageError(f"{vsid!r} is not a video id (lowercase hex digits, e.g. the 8 "
                         "the web page shows)")
    if len(vsid) == 32:
        for video in client.call("GET", "/videos?" + urlencode({"ids": vsid}))["videos"]:
            if video["sid"] == vsid:
                return dict(video)
        raise ApiError(404, f"Unknown video {vsid}.", "framewire video list shows yours.")
    found: list[dict[str, Any]] = []
    page: str | None = "/videos"
    while page is not None:
        answer = client.call("GET", page)
        found += [video for video in answer["videos"] if video["sid"].startswith(vsid)]
        page = answer.get("next")
    if not found:
        raise ApiError(404, f"No video id starts with {vsid}.",
                       "framewire video list shows yours.")
    if len(found) > 1:
        raise UsageError(f"{vsid} starts {len(found)} video ids ("
                         + ", ".join(video["sid"][:12] + "…" for video in found[:5])
                         + "); give more of it")
    return dict(found[0])


def show_status(client: Client, vsid: str) -> int:
    video = find(client, vsid)
    progress = f"{video.get('progress', 0):.0f}%"
    print(f"{video['sid']}  {video['status']}  {progress}  {video.get('message') or ''}")
    if video.get("scheduler"):
        print(f"  {scheduler_words(video)}")
    return 0 if video["ok"] else 1  # failed, canceled or expired: 1


def manage(client: Client, args: argparse.Namespace) -> int:
    target = parse_target(args.host, need_path=False)
    video = find(client, args.vsid)
    vsid = video["sid"]
    if args.action == "download":
        output_path(args.output, video.get("content_type") or None)
    sid = open_session(client, target, args)
    try:
        if args.action == "cancel":
            status = client.call("POST", f"/remotes/{sid}/videos/{vsid}/cancel", {})
            deadline = time.monotonic() + 30
            while status["status"] not in FINAL and time.monotonic() < deadline:
                status = client.call("GET", f"/remotes/{sid}/videos/{vsid}/status"
                                            "?block=true&timeout=10")
            print(f"video {vsid} {status['status']}", file=sys.stderr)
            return 0 if status["status"] == "canceled" else 1
        status = client.call("GET", f"/remotes/{sid}/videos/{vsid}/status")
        if status["status"] != "succeeded":
            print(f"framewire: video {vsid} is {status['status']}: {status.get('message')}",
                  file=sys.stderr)
            return 1
        save(client, f"/remotes/{sid}/videos/{vsid}", args.output)
        return 0
    finally:
        close_session(client, sid)
