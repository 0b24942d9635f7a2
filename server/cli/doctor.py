"""``framewire doctor [USER@]HOST[:PORT]``: the checks a session makes when it
starts (route and jump hosts, host key, login, Python, work directory, agent,
ffmpeg and its encoders), run from the command line with the server's
configuration, each reported with what was found or why it failed and what to do.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from .. import config as config_module
from .. import errors
from ..events import Events
from ..remote.routes import hop
from ..remote.sessions import RemoteSession, SessionManager
from .video import UsageError, ask_password, ask_prompts, parse_target

OK, NOTE, FAIL = "ok  ", "note", "FAIL"


def add_parser(commands: Any) -> None:
    doctor = commands.add_parser("doctor", help="check that framewire can work on a host")
    doctor.add_argument("host", help="[USER@]HOST[:PORT], or a host profile's name")
    doctor.add_argument("--config", default=None, help="TOML configuration file")
    doctor.add_argument("--password-stdin", action="store_true",
                        help="read the remote password from standard input")
    doctor.add_argument("--no-password", action="store_true",
                        help="log in with the server's keys for the host")


def line(mark: str, text: str) -> None:
    print(f"  [{mark}] {text}", flush=True)


def _size(free: Any) -> str:
    if not isinstance(free, int):
        return "free space unknown"
    return f"{free / 1e9:.1f} GB free"


def report(session: RemoteSession, executor: str = "local") -> int:
    info = session.info(3600)
    agent = info["agent"]
    route = agent.get("jump_hosts") or []
    through = f" through {', '.join(route)}" if route else ""
    line(OK, f"logged in to {session.hostname} as {session.username}{through} "
             f"({agent.get('transport')})")
    where = f" at {agent['python_path']}" if agent.get("python_path") else ""
    line(OK, f"Python {agent.get('python')}{where}")
    platform = agent.get("platform") or {}
    line(OK, f"agent {agent.get('version')} on {platform.get('system')} "
             f"{platform.get('machine')}, work directory {agent.get('work_dir')} "
             f"({_size(agent.get('work_dir_free'))})")
    ffmpeg = agent.get("ffmpeg") or {}
    encoders = ffmpeg.get("encoders") or {}
    failed = 0
    if ffmpeg.get("path") and encoders:
        listed = ", ".join(f"{codec} ({name})" for codec, name in sorted(encoders.items()))
        line(OK, f"ffmpeg {ffmpeg.get('version')} at {ffmpeg['path']}: {listed}")
        missing = [codec for codec in ("h264", "vp9") if codec not in encoders]
        if missing:
            line(NOTE, f"no {' or '.join(missing)} encoder: "
                       f"{' and '.join({'h264': 'MP4', 'vp9': 'WebM'}[c] for c in missing)} "
                       "videos cannot be made")
    else:
        failed = 1
    for note in info.get("notes") or []:
        line(FAIL if note.startswith(("No ffmpeg", "The ffmpeg")) else NOTE, note)
    return failed + slurm_line(agent, executor)


def slurm_line(agent: dict[str, Any], executor: str) -> int:
    """The host's Slurm as the agent found it; a failure only where the host's
    profile sends jobs to Slurm."""
    slurm = agent.get("slurm")
    wanted = executor == "slurm"
    if not slurm:
        if wanted:
            line(FAIL, "no Slurm: sbatch, squeue, scontrol, scancel and sinfo are not all "
                       "on the PATH, and this host's profile says executor = \"slurm\"")
            print("         Add the set-up that makes them available to the profile "
                  "(setup = [[\"module\", \"load\", \"slurm\"]]).")
            return 1
        line(NOTE, "no Slurm here: videos are made on this host")
        return 0
    partitions = slurm.get("partitions") or []
    if slurm.get("error") or not partitions:
        line(FAIL if wanted else NOTE, f"Slurm {slurm.get('version') or ''} found, but no "
             f"partition to submit to: {slurm.get('error') or 'none is open to you'}")
        return 1 if wanted else 0
    listed = ", ".join(_partition(item) for item in partitions)
    line(OK, f"Slurm {slurm.get('version')}: partitions {listed}; "
             f"{'sacct answers' if slurm.get('sacct') else 'no sacct (accounting off)'}; "
             f"jobs run {'on compute nodes' if wanted else 'on this host unless asked'}")
    work_dir = str(agent.get("work_dir") or "")
    if any(work_dir == place or work_dir.startswith(place + "/")
           for place in ("/tmp", "/var/tmp", "/dev/shm", "/run")):
        line(FAIL if wanted else NOTE, f"the work directory {work_dir} is on this node's own "
             "disk: Slurm jobs need one the compute nodes share (set work_dir)")
        return 1 if wanted else 0
    return 0


def _partition(item: dict[str, Any]) -> str:
    """``short (up to 00:30:00)``, ``debug (default, no time limit)``."""
    words = ["default"] if item.get("default") else []
    words.append("no time limit" if item.get("max_time") is None
                 else f"up to {item.get('max_time_text')}")
    if item.get("state", "UP") != "UP":
        words.append(str(item.get("state")).lower())
    return f"{item['name']} ({', '.join(words)})"


async def check(args: argparse.Namespace) -> int:
    config = config_module.load(args.config)
    target = parse_target(args.host, need_path=False)
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not args.no_password and target.hostname not in config.local.hostnames:
        password = ask_password(target.label)

    sessions = SessionManager(config, Events())  # nobody listens: a look, no jobs
    print(f"framewire doctor {target.label}", flush=True)
    try:
        try:
            username = target.username if "@" in args.host else (
                hop(config, target.hostname, None, None).username or getpass.getuser())
            session = await sessions.create("doctor", target.hostname, target.port,
                                            username, password, want_agent=True)
        except errors.AuthChallenge as challenge:
            session = await _answer(sessions, challenge, args.password_stdin)
        failed = report(session, config.host(target.hostname).executor or "local")
    except errors.FramewireError as error:
        line(FAIL, error.message)
        if error.hint:
            print(f"         {error.hint}")
        return 1
    finally:
        await sessions.close_all()
    print("ready for videos" if not failed else "not ready: see FAIL above")
    return failed


async def _answer(sessions: SessionManager, challenge: errors.AuthChallenge,
                  from_stdin: bool) -> RemoteSession:
    while True:
        question = challenge.body["challenge"]
        try:
            return await sessions.answer("doctor", question["id"],
                                         ask_prompts(question, from_stdin))
        except errors.AuthChallenge as again:
            challenge = again


def run(args: argparse.Namespace) -> int:
    import asyncio
    try:
        return asyncio.run(check(args))
    except (UsageError, config_module.ConfigError) as error:
        print(f"framewire: {error}", file=sys.stderr)
        return 2
