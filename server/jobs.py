"""Video jobs on the server side: the SQLite record and the video service.

The agent's job directory is the source of truth for progress; the server
keeps a record of every job (owner, session, host, last known status) in
SQLite so that nothing is lost when the server restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from . import errors
from .agent_client import AgentError
from .sessions import RemoteSession, agent_error

log = logging.getLogger(__name__)
T = TypeVar("T")

UNKNOWN_VIDEO = "Unknown video."
NOT_READY = "Video not ready."
FINAL = ("succeeded", "failed", "canceled", "expired")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    vsid TEXT PRIMARY KEY,
    sid TEXT NOT NULL,
    owner TEXT NOT NULL,
    hostname TEXT NOT NULL,
    username TEXT NOT NULL,
    content_type TEXT NOT NULL,
    frames INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created);
"""


@dataclass
class JobRecord:
    vsid: str
    sid: str
    owner: str
    hostname: str
    username: str
    content_type: str
    frames: int
    state: str
    status: dict[str, Any]
    created: float
    updated: float


class JobStore:
    """SQLite behind one worker thread, so the event loop never waits on disk."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobstore")
        self._db: sqlite3.Connection | None = None
        self._path = path

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                self._db = sqlite3.connect(self._path, check_same_thread=False)
                self._db.executescript(_SCHEMA)
            with self._db:
                return work(self._db)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def add(self, record: JobRecord) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (record.vsid, record.sid, record.owner, record.hostname, record.username,
             record.content_type, record.frames, record.state, json.dumps(record.status),
             record.created, record.updated)))

    async def get(self, vsid: str) -> JobRecord | None:
        row = await self._run(lambda db: db.execute(
            "SELECT * FROM jobs WHERE vsid = ?", (vsid,)).fetchone())
        if row is None:
            return None
        vsid, sid, owner, hostname, username, content_type, frames, state = row[:8]
        return JobRecord(vsid, sid, owner, hostname, username, content_type, frames, state,
                         json.loads(row[8]), row[9], row[10])

    async def update(self, vsid: str, status: dict[str, Any]) -> None:
        await self._run(lambda db: db.execute(
            "UPDATE jobs SET state = ?, status = ?, updated = ? WHERE vsid = ?",
            (status.get("status", "unknown"), json.dumps(status), time.time(), vsid)))

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


def public_status(record: JobRecord, status: dict[str, Any]) -> dict[str, Any]:
    """Slycat's ``ok``/``ready``/``message`` beside framewire's richer fields."""
    state = status.get("status", "queued")
    body: dict[str, Any] = {
        "ok": state not in ("failed", "canceled", "expired"),
        "ready": state == "succeeded",
        "message": status.get("message", ""),
        "sid": record.vsid,
        "status": state,
        "phase": status.get("phase"),
        "progress": status.get("progress", 0.0),
        "frames_done": status.get("frames_done", 0),
        "frames_total": status.get("frames_total", record.frames),
        "eta_seconds": status.get("eta_seconds"),
        "events": status.get("events", {}),
        "content_type": record.content_type,
        "frame_rate": status.get("frame_rate"),
        "width": status.get("width"),
        "height": status.get("height"),
        "notes": status.get("notes", []),
        "runner_max_rss_kb": status.get("runner_max_rss_kb"),
        "outputs": [],
    }
    base = f"/remotes/{record.sid}/videos/{record.vsid}"
    done = status.get("outputs") or ([status["output"]] if status.get("output") else [])
    if state == "succeeded":
        for output in done:
            body["outputs"].append({
                "name": output.get("name", "video"),
                "kind": output.get("kind", "video"),
                "content_type": output.get("content_type", record.content_type),
                "size": output.get("size"),
                "width": output.get("width"),
                "height": output.get("height"),
                "url": f"{base}/outputs/{output.get('name', 'video')}",
            })
    if state == "failed":
        body["returncode"] = status.get("returncode")
        body["stderr"] = status.get("stderr", "")
    return body


class VideoService:
    def __init__(self, store: JobStore) -> None:
        self.store = store

    async def create(self, session: RemoteSession, body: dict[str, Any]) -> str:
        """Start a job; the agent validates every option before anything starts."""
        agent = session.require_agent()
        vsid = secrets.token_hex(16)
        args = {key: value for key, value in body.items() if key != "job"}
        try:
            status = await agent.request("create-video", {**args, "job": vsid})
        except AgentError as error:
            if error.code == "bad-images":
                raise _bad_images(error) from None
            raise agent_error(error) from None
        now = time.time()
        frames = int(status.get("frames_total", 0))
        await self.store.add(JobRecord(
            vsid, session.sid, session.owner, session.hostname, session.username,
            str(status.get("content_type", "")), frames, status.get("status", "queued"),
            status, now, now))
        log.info("video %s… created in session %s… (%d frames)", vsid[:6], session.sid[:6],
                 frames)
        return vsid

    async def _record(self, session: RemoteSession, vsid: str) -> JobRecord:
        record = await self.store.get(vsid)
        if record is None or record.sid != session.sid or record.owner != session.owner:
            raise errors.NotFound(UNKNOWN_VIDEO, code="unknown-video", hint="Check the video id.")
        return record

    async def status(self, session: RemoteSession, vsid: str) -> dict[str, Any]:
        record = await self._record(session, vsid)
        status = record.status
        if status.get("status") not in FINAL:
            try:
                status = await session.request("video-status", {"job": vsid})
            except AgentError as error:
                raise agent_error(error) from None
            await self.store.update(vsid, status)
        return public_status(record, status)

    async def output(self, session: RemoteSession, vsid: str,
                     name: str | None = None) -> dict[str, Any]:
        """A finished output's remote path, size and content type; 409 until then.

        Without ``name``, the job's first output (Slycat's video URL).
        """
        status = await self.status(session, vsid)
        if not status["ready"]:
            raise errors.VideoNotReady(NOT_READY, hint=_not_ready_hint(status))
        record = await self._record(session, vsid)
        outputs = record.status.get("outputs") or [record.status["output"]]
        chosen = outputs[0] if name is None else next(
            (output for output in outputs if output.get("name") == name), None)
        if chosen is None:
            raise errors.NotFound(
                f"Unknown output {name!r}.", code="unknown-output",
                hint="This job's outputs: " + ", ".join(o["name"] for o in outputs) + ".")
        return {"path": chosen["path"], "size": chosen["size"],
                "content_type": chosen.get("content_type", record.content_type)}

    async def delete(self, session: RemoteSession, vsid: str) -> None:
        await self._record(session, vsid)
        try:
            await session.request("delete-video", {"job": vsid})
        except AgentError as error:
            if error.code != "unknown-job":
                raise agent_error(error) from None
        record = await self._record(session, vsid)
        await self.store.update(vsid, {**record.status, "status": "expired",
                                       "message": "Deleted.", "output": None})

    async def on_agent_event(self, sid: str, message: dict[str, Any]) -> None:
        """Keep the stored status current as the agent pushes job events."""
        if message.get("event") != "job":
            return
        data = message.get("data") or {}
        vsid = data.get("id")
        if isinstance(vsid, str):
            record = await self.store.get(vsid)
            if record is not None and record.sid == sid:
                await self.store.update(vsid, data)


def _not_ready_hint(status: dict[str, Any]) -> str:
    state = status["status"]
    if state == "failed":
        return f"The video failed and will not be ready: {status['message']}"
    if state == "canceled":
        return "The video was canceled and will not be ready; create it again."
    if state == "expired":
        return "The video was deleted; create it again."
    return (f"The video is {state} ({status['progress']:.0f}%); "
            "poll its status until ready is true.")


def _bad_images(error: AgentError) -> errors.BadImages:
    details = error.agent_details
    bad = details.get("bad") or []
    listed = [{
        "code": item.get("code"),
        "title": item.get("message"),
        "detail": item.get("message"),
        "source": {"pointer": "/" + str(item.get("field", "images")).replace(".", "/")},
        "meta": {"path": item.get("path")},
    } for item in bad]
    count = details.get("count", len(bad))
    return errors.BadImages(
        error.message,
        hint=f"{count} image(s) cannot be used; fix or remove them and retry."
             + (" The body lists the first 100." if count > len(bad) else ""),
        pointer=listed[0]["source"]["pointer"] if listed else "/images",
        details=listed)
