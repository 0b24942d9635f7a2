"""A tear-down check for every test: no child process, thread or open file
descriptor it started may outlive it.

What exists once a test's fixtures are set up is the baseline (a session's sshd,
a module's browser); what exists after its tear-down and did not then is a leak.
Threads and processes get a moment to end on their own first.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass

GRACE = 3.0  # seconds for threads and processes to finish after tear-down


@dataclass
class Snapshot:
    children: dict[tuple[int, str], str]  # (pid, start time) -> command line
    threads: dict[int, str]
    fds: dict[int, str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(children(), {thread.ident or 0: thread.name
                                for thread in threading.enumerate()}, open_fds())


def children() -> dict[tuple[int, str], str]:
    """This process's live children (zombies excluded), by pid and start time (a
    process may rename itself, as sshd does), with their command lines."""
    me = str(os.getpid())
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
            if fields.get("PPid", "").strip() != me or fields.get("State", "").startswith("Z"):
                continue
            with open(f"/proc/{entry}/stat") as handle:
                started = handle.read().rsplit(")", 1)[1].split()[19]
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                found[(int(entry), started)] = handle.read().replace(b"\0", b" ").decode(
                    "utf-8", "replace").strip()[:200]
        except (OSError, ValueError):
            continue
    return found


def open_fds() -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            found[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue  # the fd listdir itself used, gone already
    return found


def leaks(before: Snapshot) -> list[str]:
    """What exists now that did not at ``before``, after a grace period (and after
    what nothing refers to any more is collected: a socket of a dropped client)."""
    deadline = time.monotonic() + GRACE
    gc.collect()
    while True:
        now = Snapshot.take()
        extra_children = {key: cmd for key, cmd in now.children.items()
                          if key not in before.children}
        extra_threads = {ident: name for ident, name in now.threads.items()
                         if ident not in before.threads}
        extra_fds = {fd: target for fd, target in now.fds.items()
                     if before.fds.get(fd) != target}
        if not (extra_children or extra_threads or extra_fds) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return ([f"child process {pid}: {cmd}" for (pid, _), cmd in extra_children.items()]
            + [f"thread {name!r} ({_where(ident)})" for ident, name in extra_threads.items()]
            + [f"file descriptor {fd} -> {target}" for fd, target in extra_fds.items()])


def _where(ident: int) -> str:
    """Where a thread was started from, as far as its stack shows (for the report)."""
    import sys
    import traceback

    frame = sys._current_frames().get(ident)
    if frame is None:
        return "ended"
    stack = traceback.extract_stack(frame)
    outside = [entry for entry in stack if "threading.py" not in entry.filename
               and "concurrent/futures" not in entry.filename]
    entry = (outside or stack)[-1]
    return f"{entry.filename.rsplit('/', 2)[-1]}:{entry.lineno} {entry.name}"
