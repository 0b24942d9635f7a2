"""The access log: one line per answer, written in batches.

A line is ``STATUS METHOD URI TIMEms`` on the ``framewire.access`` logger, with ids
shortened and ``token=`` values hidden (audit.redact).  Written one at a time, a
status poll's line cost the server more CPU than the rest of its answer (the log
module's code is cold again by the next poll, 10 ms later; bench/load.py), so
lines wait up to ``DELAY`` and go out together, each with the time of its
answer.  A 4xx or 5xx line goes out at once, with everything before it; the
HTTP server writes what is left when it stops (door.FramewireHTTPServer).
"""

from __future__ import annotations

import asyncio
import logging
import time

import tornado.web

from ..audit import redact

access_log = logging.getLogger("framewire.access")
DELAY = 0.25  # seconds a line may wait for others
MAX_WAITING = 1000  # lines; more are written at once
_FORMAT = "%d %s %s %.1fms"


class AccessLog:
    """The lines of one application, on its event loop's thread."""

    def __init__(self) -> None:
        self._waiting: list[tuple[float, int, int, str, str, float]] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, status: int, method: str, uri: str, seconds: float) -> None:
        level = logging.INFO if status < 400 else \
            logging.WARNING if status < 500 else logging.ERROR
        if not access_log.isEnabledFor(level):
            return
        self._waiting.append((time.time(), level, status, method, uri, seconds))
        if level > logging.INFO or len(self._waiting) >= MAX_WAITING:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(DELAY, self.flush)
            except RuntimeError:  # no event loop: nothing would flush it later
                self.flush()

    def flush(self) -> None:
        """Write every waiting line now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        now = time.time()
        for at, level, status, method, uri, seconds in waiting:
            record = access_log.makeRecord(
                access_log.name, level, __file__, 0, _FORMAT,
                (status, method, redact(uri), 1000.0 * seconds), None)
            record.created = at  # when it was answered, not when written
            record.msecs = int((at - int(at)) * 1000) + 0.0
            record.relativeCreated -= 1000.0 * (now - at)
            access_log.handle(record)


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's ``log_function``: the handler's answer, into its app's access log."""
    log: AccessLog = handler.settings["framewire_access"]
    log.write(handler.get_status(), handler.request.method or "", handler.request.uri or "",
              handler.request.request_time())
