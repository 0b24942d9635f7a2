"""Retention: outputs expire, a sweeper removes them, users see and prune storage.

Each user has an expiration in days (``0`` = never; the default is in the
configuration).  A job's outputs expire that long after the job ended.  The
sweeper deletes expired outputs on the remote host the next time a session
of the owner reaches that host account (and every ``sweep_interval`` for
live sessions); the job's record stays, as ``expired``.  Deleting storage by
job, by date range or by age works the same way: at once where a live
session exists, otherwise at the next session (``deferred``).
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from typing import Any

from .. import background, errors
from ..config import Config
from ..events import Events
from ..records import JobState
from ..remote.sessions import RemoteSession, SessionManager
from ..store import JobRecord, JobStore
from .service import JobService
from .views import finished_outputs, storage_view

log = logging.getLogger(__name__)
DAY = 86400.0
MAX_AGE_DAYS = 36500
MAX_DAYS = 3650


def _parse_time(value: Any, field: str) -> float:
    if isinstance(value, str):
        for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
            try:
                return float(calendar.timegm(time.strptime(value, layout)))
            except ValueError:
                continue
    raise errors.ValidationError(field, f"{field} must be a UTC date such as \"2026-11-23\" "
                                 "or \"2026-11-23T18:00:00Z\".")



def ended_at(record: JobRecord) -> float | None:
    completed = (record.status.get("events") or {}).get("completed")
    if not completed:
        return None
    try:
        return float(calendar.timegm(time.strptime(completed, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return record.updated


def output_bytes(record: JobRecord) -> int:
    return sum(int(output.get("size") or 0) for output in finished_outputs(record.status))


class RetentionService:
    def __init__(self, store: JobStore, config: Config, jobs: JobService,
                 sessions: SessionManager, events: Events) -> None:
        self.store = store
        self.config = config
        self.jobs = jobs
        self.sessions = sessions
        self._task: asyncio.Task[None] | None = None
        events.on_session_opened(self.sweep)  # a host account reached: sweep it

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        await background.stop([self._task])

    async def days(self, owner: str) -> float:
        days = await self.store.expiration_days(owner)
        return self.config.retention.default_days if days is None else days

    async def set_days(self, owner: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 <= value <= MAX_DAYS:
            raise errors.ValidationError("days", f"days must be a number from 0 (never expire) "
                                         f"to {MAX_DAYS}.")
        await self.store.set_expiration_days(owner, float(value))
        return float(value)

    def expires(self, record: JobRecord, days: float) -> float | None:
        end = ended_at(record)
        if days <= 0 or end is None or record.job_state is JobState.EXPIRED:
            return None
        return end + days * DAY

    async def listing(self, owner: str) -> dict[str, Any]:
        days = await self.days(owner)
        videos, total = [], 0
        for record in await self.store.find(owner):
            size = 0 if record.job_state is JobState.EXPIRED else output_bytes(record)
            total += size
            videos.append(storage_view(record, ended_at(record), self.expires(record, days),
                                       size))
        return {"expiration_days": days, "usage": {"bytes": total, "videos": len(videos)},
                "videos": videos}

    async def delete(self, owner: str, body: dict[str, Any]) -> dict[str, Any]:
        """Delete outputs by job ids, by creation date range or by age; ``dry_run`` lists."""
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise errors.ValidationError("dry_run", "dry_run must be true or false.")
        ids, start, end, max_age = body.get("videos"), body.get("from"), body.get("to"), \
            body.get("max_age")
        if ids is None and start is None and end is None and max_age is None:
            raise errors.ValidationError("videos", "Say what to delete: videos (ids), from/to "
                                         "(creation dates) or max_age (days).")
        if ids is not None and (not isinstance(ids, list)
                                or not all(isinstance(i, str) for i in ids)):
            raise errors.ValidationError("videos", "videos must be a list of video ids.")
        low = _parse_time(start, "from") if start is not None else None
        high = _parse_time(end, "to") if end is not None else None
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(
                max_age, (int, float)) or not 0 <= max_age <= MAX_AGE_DAYS):
            raise errors.ValidationError("max_age", "max_age must be a number of days from 0 "
                                         f"to {MAX_AGE_DAYS}.")
        now = time.time()
        matched = []
        for record in await self.store.find(owner):
            if record.job_state is JobState.EXPIRED or not record.job_state.final:
                continue
            if ids is not None and record.vsid not in ids:
                continue
            if low is not None and record.created < low:
                continue
            if high is not None and record.created > high:
                continue
            if max_age is not None and record.created > now - float(max_age) * DAY:
                continue
            matched.append(record)
        result: dict[str, Any] = {"dry_run": dry_run,
                                  "matched": [r.vsid for r in matched],
                                  "bytes": sum(output_bytes(r) for r in matched),
                                  "deleted": [], "deferred": []}
        if dry_run:
            return result
        for record in matched:
            session = self.sessions.live_for(owner, record.hostname, record.port,
                                              record.username)
            if session is not None:
                await self.jobs.delete(session, record.vsid)
                result["deleted"].append(record.vsid)
            else:
                await self.store.request_deletion(record.vsid)
                result["deferred"].append(record.vsid)
        return result

    async def sweep(self, session: RemoteSession) -> list[str]:
        """Delete what has expired (or was asked to go) on this session's host account."""
        days = await self.days(session.owner)
        now = time.time()
        swept = []
        for record in await self.store.find(session.owner, hostname=session.hostname,
                                            port=session.port, username=session.username):
            if not record.job_state.final or record.job_state is JobState.EXPIRED:
                continue
            expires = self.expires(record, days)
            if record.delete_requested or (expires is not None and expires <= now):
                try:
                    await self.jobs.delete(session, record.vsid)
                    swept.append(record.vsid)
                except errors.FramewireError as error:
                    log.warning("sweeping %s… failed: %s", record.vsid[:6], error.message)
        if swept:
            log.info("swept %d expired video(s) on %s", len(swept), session.hostname)
        return swept

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention.sweep_interval)
            for session in self.sessions.live():
                try:
                    await self.sweep(session)
                except Exception:
                    log.exception("sweeper")
