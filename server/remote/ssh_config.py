"""The parts of an OpenSSH client configuration (``~/.ssh/config``) framewire
honours: ``Host`` blocks with ``HostName``, ``Port``, ``User``, ``ProxyJump``
and ``IdentityFile``.

As in ssh, the first value found for a keyword wins (``IdentityFile``
accumulates), ``Host`` patterns may use ``*``, ``?`` and ``!negation``,
``%h``, ``%p``, ``%r`` and ``~`` expand in file names, and ``Match`` blocks
are skipped (their keywords do not apply).
"""

from __future__ import annotations

import fnmatch
import os
import shlex
from dataclasses import dataclass, field

KEYWORDS = {"hostname", "port", "user", "proxyjump", "identityfile"}


@dataclass
class HostEntry:
    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    proxyjump: str | None = None
    identityfile: list[str] = field(default_factory=list)


def _matches(patterns: list[str], host: str) -> bool:
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(host.lower(), pattern.lstrip("!").lower()):
            if negated:
                return False
            matched = True
    return matched


Blocks = list[tuple[list[str] | None, list[tuple[str, str]]]]
_PARSED: dict[str, tuple[tuple[int, int], Blocks]] = {}


def _blocks(path: str) -> Blocks:
    """(Host patterns or None for Match, [(keyword, value)]) in file order; the
    file is parsed again only when it changes."""
    path = os.path.expanduser(path)
    try:
        info = os.stat(path)
    except OSError:
        return []
    stamp = (info.st_mtime_ns, info.st_size)
    cached = _PARSED.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    blocks: Blocks = [(["*"], [])]
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.replace("=", " ", 1).partition(" ")
        keyword = keyword.lower()
        rest = rest.strip()
        try:
            values = shlex.split(rest, comments=True)
        except ValueError:
            continue
        if keyword == "host":
            blocks.append((values, []))
        elif keyword == "match":
            blocks.append((None, []))
        elif keyword in KEYWORDS and values:
            blocks[-1][1].append((keyword, " ".join(values) if keyword == "proxyjump"
                                  else values[0]))
    _PARSED[path] = (stamp, blocks)
    return blocks


def lookup(path: str, host: str, user: str = "") -> HostEntry:
    """What ``path`` says about ``host`` (nothing, if it is missing)."""
    entry = HostEntry()
    for patterns, options in _blocks(path):
        if patterns is None or not _matches(patterns, host):
            continue
        for keyword, value in options:
            if keyword == "identityfile":
                entry.identityfile.append(value)
            elif keyword == "port" and entry.port is None and value.isdigit():
                entry.port = int(value)
            elif keyword in ("hostname", "user", "proxyjump") and \
                    getattr(entry, keyword) is None:
                setattr(entry, keyword, value)
    target = entry.hostname.replace("%h", host) if entry.hostname else host
    port = entry.port or 22
    remote_user = user or entry.user or ""
    entry.identityfile = [
        os.path.expanduser(name.replace("%h", target).replace("%p", str(port))
                           .replace("%r", remote_user).replace("%%", "%"))
        for name in entry.identityfile]
    if entry.hostname:
        entry.hostname = target
    return entry
