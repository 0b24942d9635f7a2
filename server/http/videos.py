"""Slycat's video calls (create, status, the video) and framewire's job calls:
outputs by name, lists, long-polls, progress streams and cancel."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

from tornado.iostream import StreamClosedError

from .. import errors
from ..audit import audit, short
from ..jobs.service import preview_gone
from ..remote.sessions import RemoteSession
from .base import JSON_TYPE, ApiHandler
from .paging import MAX_PAGE, next_page, page_arguments, states_argument
from .remotes import SID
from .streaming import send_remote_file

MAX_STREAM_SECONDS = 24 * 3600


class VideosHandler(ApiHandler):
    async def post(self, sid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 255 and key.isascii()
                                    and key.isprintable()):
            raise errors.ValidationError("Idempotency-Key", "Idempotency-Key must be 1 to 255 "
                                         "printable ASCII characters.")
        vsid = await self.services.jobs.create(session, self.json_body(), key)
        audit("job-create", user=self.user, sid=short(sid), video=short(vsid),
              host=session.hostname, username=session.username)
        self.set_header("Location", f"/remotes/{sid}/videos/{vsid}")
        self.write_json({"sid": vsid}, status=202)

    async def get(self, sid: str) -> None:
        """This host account's jobs; ``?ids=a,b`` asks for several statuses at once."""
        await list_page(self, self.services.sessions.get(self.user, sid))


class AllVideosHandler(ApiHandler):
    async def get(self) -> None:
        """Every job of the caller, on any host, newest first."""
        await list_page(self, None)


async def list_page(handler: ApiHandler, session: RemoteSession | None) -> None:
    """One page of a job list: ``status``, ``ids``, ``limit`` and ``before``
    filter it; ``next`` (and a ``Link: rel="next"`` header) is the next page."""
    ids = handler.get_query_argument("ids", None)
    wanted = [part for part in ids.split(",") if part] if ids is not None else None
    if wanted is not None and len(wanted) > MAX_PAGE:
        raise errors.ValidationError("ids", f"ids names at most {MAX_PAGE} videos; "
                                            "ask in several requests.")
    limit, before = page_arguments(handler)
    jobs, more = await handler.services.jobs.list_jobs(
        session, handler.user, states=states_argument(handler), ids=wanted,
        before=before, limit=limit)
    handler.write_json({"videos": jobs, "next": next_page(handler, more)})


class VideoStatusHandler(ApiHandler):
    async def get(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        if self.get_query_argument("block", "false").lower() in ("true", "1", "yes"):
            timeout = self.get_query_argument("timeout", "60")
            try:
                seconds = float(timeout)
            except ValueError:
                seconds = math.nan
            if not math.isfinite(seconds) or seconds < 0:
                raise errors.ValidationError(
                    "timeout", f"timeout must be a number of seconds, got {timeout!r}.")
            self.write_json(await self.services.jobs.wait(session, vsid, seconds))
            return
        known = self.services.jobs.known_status(session, vsid)
        if known is None:
            self.write_json(await self.services.jobs.status(session, vsid))
        else:
            self.set_header("Content-Type", JSON_TYPE)
            self.finish(known.body)


class VideoEventsHandler(ApiHandler):
    """Progress as Server-Sent Events, or NDJSON for ``Accept: application/x-ndjson``.

    Every event is a whole status with an increasing id; a client that
    reconnects with ``Last-Event-ID`` gets exactly the events it missed.  The
    stream ends after the event that carries the job's final status, or with
    an ``end`` event that says why it cannot go on (the session's agent
    stopped, the session expired) while the job itself goes on.
    """

    async def get(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        ndjson = "application/x-ndjson" in self.request.headers.get("Accept", "")
        last = self.request.headers.get("Last-Event-ID") or \
            self.get_query_argument("last_event_id", "0")
        # An id past 18 digits is no event's, and SQLite's integers stop at 2**63.
        if not last.isascii() or not last.isdigit() or len(last) > 18:
            raise errors.ValidationError("Last-Event-ID", "Last-Event-ID must be the id of "
                                         "an event of this stream (a whole number).")
        after = int(last)
        await self.services.jobs.status(session, vsid)  # 404 before any header goes out
        self.set_header("Content-Type", "application/x-ndjson" if ndjson
                        else "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        try:
            while time.monotonic() < deadline:
                try:
                    session = self.services.sessions.get(self.user, sid)  # keeps it alive
                    events, ended = await self.services.jobs.events(session, vsid, after)
                except errors.FramewireError as error:
                    # Headers went out long ago: the stream ends in words, not a reset.
                    self._send(ndjson, None, "end", stream_end(error, vsid, after))
                    break
                for seq, view in events:
                    self._send(ndjson, seq, "status", view)
                    after = seq
                if not events and not ndjson:
                    self.write(": keep-alive\n\n")
                await self.flush()
                if ended:
                    break
            await self.flush()
        except StreamClosedError:
            return
        self.finish()

    def _send(self, ndjson: bool, seq: int | None, name: str,
              data: Mapping[str, object]) -> None:
        if ndjson:
            self.write(json.dumps({"id": seq, "event": name, "data": data}) + "\n")
        else:
            line = "" if seq is None else f"id: {seq}\n"
            self.write(f"{line}event: {name}\ndata: {json.dumps(data)}\n\n")


def stream_end(error: errors.FramewireError, vsid: str, after: int) -> dict[str, Any]:
    """The last word of a progress stream that cannot go on: why, and that the job
    does, and how to follow it again from the last event seen."""
    return {
        "reason": error.code,
        "message": f"The progress stream ended: {error.message} The job goes on.",
        "hint": "Open a session to the same host account (POST /remotes) and follow the "
                f"job again from event {after}: GET /remotes/NEW_SID/videos/{vsid}/events "
                f"with Last-Event-ID: {after}.",
        "last_event_id": after,
    }


class WebhookSecretHandler(ApiHandler):
    async def get(self) -> None:
        """The caller's webhook signing secret (Standard Webhooks ``whsec_`` form)."""
        self.write_json({"secret": self.services.webhooks.secret_text(self.user)})


class VideoWebhooksHandler(ApiHandler):
    async def get(self, sid: str, vsid: str) -> None:
        """The job's webhook deliveries and every attempt made for each."""
        session = self.services.sessions.get(self.user, sid)
        await self.services.jobs.status(session, vsid)  # reachable, or 404
        self.write_json({"deliveries": await self.services.webhooks.log(vsid)})


class WebhookReplayHandler(ApiHandler):
    async def post(self, sid: str, vsid: str, delivery_id: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        await self.services.jobs.status(session, vsid)
        self.write_json(await self.services.webhooks.replay(vsid, delivery_id), status=202)


class VideoCancelHandler(ApiHandler):
    async def post(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        status = await self.services.jobs.cancel(session, vsid)
        audit("job-cancel", user=self.user, video=short(vsid))
        self.write_json(status)


class OutputHandler(ApiHandler):
    async def get(self, sid: str, vsid: str, name: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        await send_remote_file(self, session, await self.services.jobs.output(session, vsid,
                                                                               name))

    head = get


class PreviewHandler(ApiHandler):
    """A running job's growing preview (fragmented MP4 or live WebM), with byte ranges
    up to its whole fragments now: a client appends what it fetches to a MediaSource."""

    async def get(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        preview = await self.services.jobs.preview(session, vsid)
        self.set_header("Cache-Control", "no-store")  # it grows: never the same twice
        await send_remote_file(self, session, preview, gone=preview_gone(sid, vsid))

    head = get


class VideoHandler(ApiHandler):
    async def get(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        await send_remote_file(self, session, await self.services.jobs.output(session, vsid))

    head = get

    async def delete(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        await self.services.jobs.delete(session, vsid)
        audit("job-delete", user=self.user, video=short(vsid))
        self.no_content()


VSID = r"([^/]+)"
routes = [
    (rf"/remotes/{SID}/videos/{VSID}/status/?", VideoStatusHandler),
    (rf"/remotes/{SID}/videos/{VSID}/events/?", VideoEventsHandler),
    (r"/videos/?", AllVideosHandler),
    (r"/webhooks/secret/?", WebhookSecretHandler),
    (rf"/remotes/{SID}/videos/{VSID}/webhooks/?", VideoWebhooksHandler),
    (rf"/remotes/{SID}/videos/{VSID}/webhooks/([^/]+)/replay/?", WebhookReplayHandler),
    (rf"/remotes/{SID}/videos/?", VideosHandler),
    (rf"/remotes/{SID}/videos/{VSID}/cancel/?", VideoCancelHandler),
    (rf"/remotes/{SID}/videos/{VSID}/outputs/([^/]+)/?", OutputHandler),
    (rf"/remotes/{SID}/videos/{VSID}/preview/?", PreviewHandler),
    (rf"/remotes/{SID}/videos/{VSID}/?", VideoHandler),
]
