"""Audit lines: who logged in, opened or closed a session, made, canceled or
deleted a job.  Logger ``framewire.audit`` (and ``[server] audit_log``).

A line is ``audit EVENT key=value ...`` with values quoted when they hold
anything but plain characters; session and job ids are shortened as in the
access log; nothing secret is ever passed here.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("framewire.audit")
_PLAIN = re.compile(r"^[A-Za-z0-9_.:@/+…-]{1,200}$")


_SECRET_QUERY = re.compile(r"(token=)[^&]*")
_IDS = re.compile(r"/([0-9a-f]{6})[0-9a-f]{26}(?=/|$|\?)")


def redact(uri: str) -> str:
    """A log-safe URI: no token values, session and video ids shortened."""
    if "token=" in uri:
        uri = _SECRET_QUERY.sub(r"\1***", uri)
    return _IDS.sub(r"/\1…", uri)


def short(identifier: str) -> str:
    return identifier[:6] + "…" if len(identifier) > 8 else identifier


def _value(value: object) -> str:
    text = str(value)
    if _PLAIN.match(text):
        return text
    return '"' + text[:200].encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def audit(event: str, **fields: object) -> None:
    parts = [f"{key}={_value(value)}" for key, value in fields.items() if value is not None]
    log.info("audit %s %s", event, " ".join(parts))


def attach_file(path: str) -> None:
    """Also append audit lines to ``path``."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
