"""Video jobs on the server side: create, follow, fetch, cancel and delete.

The agent's job directory is the source of truth for a job's progress; the
server keeps each job's record and event history in the job store (SQLite),
so a job stays listed and reachable across dropped SSH links and server
restarts: any live session of its owner to the same host account reaches it.
While an agent pushes a job's events the server answers from what it holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..config import Config
from ..events import Events
from ..outbound.uploads import Uploader, validate_targets
from ..outbound.webhooks import HOOK_FIELDS, WebhookService, validate_hooks
from ..records import UNFINISHED_STATES, JobState, JobStatus, is_final, status_of, with_changes
from ..remote.agent_client import AgentClient
from ..remote.files import RemoteFile
from ..remote.sessions import RemoteSession, SessionManager
from ..store import JobRecord, JobStore
from .placement import placement
from .views import JobView, finished_outputs, job_view, scheduler_view

log = logging.getLogger(__name__)

UNKNOWN_VIDEO = "Unknown video."
NOT_READY = "Video not ready."
NO_PREVIEW = "This video has no preview now."
PROGRESS_INTERVAL = 0.5  # at most two progress events a second per job
REFRESH_INTERVAL = 5.0   # a waiter looks again when no event came for this long
MAX_WAIT = 300.0
IDEMPOTENCY_WINDOW = 24 * 3600.0
BODY_CACHE_BYTES = 32 << 20  # serialized status answers kept, over all jobs
StreamEvent = tuple[int, JobView]  # an event's number, and the job's view then


@dataclass
class Emitted:
    """The last event recorded for a job: a new one needs news or time."""

    state: JobState
    phase: str | None
    at: float
    progress: float
    preview: int = 0  # the frames of the job's preview then


async def find_page(store: JobStore, owner: str | None, before: str | None, limit: int,
                    **filters: Any) -> tuple[list[JobRecord], str | None]:
    """One page of :meth:`JobStore.find`: ``limit`` jobs after the job ``before``
    (which must be in the list: ``owner``'s, None for anybody's, and on the host
    account in ``filters`` if given), and the vsid that starts the next page, or
    None on the last."""
    after = None
    if before is not None:
        after = await store.get(before)
        account = {key: filters[key] for key in ("hostname", "port", "username")
                   if key in filters}
        if after is None or owner not in (None, after.owner) or any(
                getattr(after, key) != value for key, value in account.items()):
            raise errors.ValidationError("before", "before must be a video id from this "
                                                   "list: pass the value of next from the "
                                                   "previous page.")
    records = await store.find(owner, after=after, limit=limit + 1, **filters)
    return records[:limit], records[limit - 1].vsid if len(records) > limit else None


class JobService:
    def __init__(self, store: JobStore, sessions: SessionManager, webhooks: WebhookService,
                 uploads: Uploader, events: Events, config: Config) -> None:
        self.store = store
        self.sessions = sessions
        self.webhooks = webhooks
        self.uploads = uploads
        self.config = config
        self.limits = config.limits
        self.webhook_timeout = config.webhooks.default_timeout
        self._changed: dict[str, asyncio.Event] = {}
        self._emitted: dict[str, Emitted] = {}
        # The agent that pushes each unfinished job's events: while it runs, the
        # stored status is current and status requests need not ask it.
        self._views: dict[str, AgentClient] = {}
        # A status question on its way to an agent, shared by concurrent requests.
        self._asking: dict[str, asyncio.Future[JobStatus]] = {}
        # The last ``GET …/status`` body of each polled job, serialized (a job of
        # 10,000 listed images has a request of 0.7 MB to write out each time).
        self._bodies = BodyCache(BODY_CACHE_BYTES)
        events.on_agent_message(self.on_agent_message)

    # -- create -----------------------------------------------------------

    async def create(self, session: RemoteSession, body: dict[str, Any],
                     idempotency_key: str | None = None) -> str:
        """Start a job; the agent validates every option before anything starts.

        With ``idempotency_key``, the same key and body within 24 hours
        answer with the first job instead of starting another encode.
        """
        agent = session.require_agent()
        if "max-images" in body:
            raise errors.ValidationError("max-images", "max-images is set by the server "
                                         f"({self.limits.max_images}); leave it out.")
        where = placement(body, self.config.host(session.hostname), agent.hello,
                          session.hostname)
        policy = self.webhooks.policy
        hooks = validate_hooks(body, self.webhook_timeout, policy)
        targets, target_headers = validate_targets(body.get("deliver"), policy)
        if targets:
            hooks["deliver"] = targets
        vsid = secrets.token_hex(16)
        if idempotency_key is not None:
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            held = await self.store.remember_key(session.owner, idempotency_key, digest, vsid,
                                                 IDEMPOTENCY_WINDOW)
            if held is not None:
                if held[1] != digest:
                    raise errors.IdempotencyConflict(
                        "Idempotency-Key was already used with a different request.",
                        hint="Use a new key for a new request.")
                return held[0]
        active = await self.store.find(session.owner,
                                       states=[state.value for state in UNFINISHED_STATES],
                                       limit=self.limits.jobs_per_user)
        if len(active) >= self.limits.jobs_per_user:
            if idempotency_key is not None:
                await self.store.forget_key(session.owner, idempotency_key)
            raise errors.TooManyRequests(
                f"You have {len(active)} jobs queued or running; the limit is "
                f"{self.limits.jobs_per_user}.", code="too-many-jobs",
                hint="Wait for one to end or cancel one (POST …/videos/(vsid)/cancel).")
        args = {key: value for key, value in body.items()
                if key not in ("job", "deliver", "executor", "slurm")
                and key not in HOOK_FIELDS}
        args["max-images"] = self.limits.max_images
        args["executor"] = where
        try:
            status = status_of(await agent.request("create-video", {**args, "job": vsid}))
        except BaseException:
            if idempotency_key is not None:
                await self.store.forget_key(session.owner, idempotency_key)
            raise
        now = time.time()
        frames = int(status.get("frames_total", 0))
        record = JobRecord(vsid=vsid, sid=session.sid, owner=session.owner,
                           hostname=session.hostname, port=session.port,
                           username=session.username,
                           content_type=str(status.get("content_type", "")), frames=frames,
                           state=JobState.of(status.get("status")).value, status=status,
                           created=now, updated=now, hooks=hooks,
                           request=made_with(body))
        self.uploads.keep_headers(vsid, target_headers)
        await self.store.add(record)
        session.jobs.add(vsid)  # it stays open until the job ends
        self._views[vsid] = agent  # it pushes the job's events from now on
        await self._apply(record, status)
        log.info("video %s… created in session %s… (%d frames)", vsid[:6], session.sid[:6],
                 frames)
        return vsid

    # -- find and follow ----------------------------------------------------

    async def _record(self, session: RemoteSession, vsid: str) -> JobRecord:
        """The job if ``session`` may reach it: same owner, same host account."""
        record = await self.store.get(vsid)
        if record is None or not _reachable(record, session):
            raise errors.NotFound(UNKNOWN_VIDEO, code="unknown-video",
                                  hint="Check the video id.")
        return record

    def following(self, vsid: str) -> bool:
        """Whether a running agent pushes this job's events (its status is current)."""
        agent = self._views.get(vsid)
        return agent is not None and agent.running

    async def _refresh(self, session: RemoteSession, record: JobRecord) -> JobStatus:
        """The job's true status: the stored one while an agent pushes the job's
        events, else asked of the agent once (concurrent requests share the answer)."""
        status = record.status
        if is_final(status) or self.following(record.vsid):
            return status
        asking = self._asking.get(record.vsid)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(session, record))
            self._asking[record.vsid] = asking
            asking.add_done_callback(lambda done: self._asked(record.vsid, done))
        return await asyncio.shield(asking)

    def _asked(self, vsid: str, done: asyncio.Future[JobStatus]) -> None:
        self._asking.pop(vsid, None)
        if not done.cancelled():
            done.exception()  # seen, even if every request that waited went away

    async def _ask(self, session: RemoteSession, record: JobRecord) -> JobStatus:
        agent = session.require_agent()
        status = status_of(await agent.request("video-status", {"job": record.vsid}))
        session.jobs.add(record.vsid)  # its agent follows the job from now on
        if not is_final(status):
            self._views[record.vsid] = agent
        await self._apply(record, status)
        return status

    def known_status(self, session: RemoteSession, vsid: str) -> KnownBody | None:
        """The ``GET …/status`` answer, serialized, when it is known at once: the job's
        record in memory, its status final or pushed by a running agent, no uploads
        to look up.  None means "ask :meth:`status`" (which may wait, or say 404)."""
        record = self.store.cached(vsid)
        if record is None or not _reachable(record, session) or record.hooks.get("deliver"):
            return None
        status = record.status
        if not (is_final(status) or self.following(vsid)):
            return None
        # A batch job's view counts the seconds it has waited in the queue so far.
        scheduler = scheduler_view(status.get("scheduler"),
                                   status.get("events", {}).get("completed"))
        key = (session.sid, scheduler and scheduler["waited_seconds"])
        known = self._bodies.get(vsid, status, key)
        if known is None:
            view = job_view(record, session.sid, status)
            view["request"] = record.request
            body = json.dumps(view).encode()
            known = KnownBody(body, hashlib.sha1(body).hexdigest())
            self._bodies.put(vsid, status, key, known)
        return known

    async def status(self, session: RemoteSession, vsid: str) -> JobView:
        """The job's view for ``GET …/status`` (with its uploads, if it has any)."""
        record = await self._record(session, vsid)
        body = job_view(record, session.sid, await self._refresh(session, record))
        body["request"] = record.request
        if record.hooks.get("deliver"):
            body["deliveries"] = [entry for entry in await self.webhooks.log(vsid)
                                  if entry["kind"] == "upload"]
        return body

    async def wait(self, session: RemoteSession, vsid: str, timeout: float) -> JobView:
        """Long-poll: the status once the job ends, or when ``timeout`` runs out."""
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT)
        while True:
            record = await self._record(session, vsid)
            changed = self._change(vsid)
            status = await self._refresh(session, record)
            left = deadline - time.monotonic()
            if is_final(status) or left <= 0:
                return job_view(record, session.sid, status)
            try:
                await asyncio.wait_for(changed.wait(), min(left, REFRESH_INTERVAL))
            except TimeoutError:
                pass

    async def events(self, session: RemoteSession, vsid: str,
                     after: int) -> tuple[list[StreamEvent], bool]:
        """Events after ``after``, waiting briefly for one; True once the job has ended."""
        record = await self._record(session, vsid)
        changed = self._change(vsid)
        # Seen before the read: a final status's event is stored by then (_apply).
        final = is_final(record.status)
        found = await self.store.events(vsid, after)
        if not found:
            if final:
                return [], True  # resumed after the final event: nothing will follow
            try:
                await asyncio.wait_for(changed.wait(), REFRESH_INTERVAL)
            except TimeoutError:
                await self._refresh(session, record)
            found = await self.store.events(vsid, after)
        ended = bool(found) and is_final(found[-1].data)
        return [(event.seq, job_view(record, session.sid, event.data)) for event in found], \
            ended

    async def list_jobs(self, session: RemoteSession | None, owner: str,
                        states: list[str] | None = None, ids: list[str] | None = None,
                        before: str | None = None,
                        limit: int = 1000) -> tuple[list[JobView], str | None]:
        """Jobs as their last known status: one host account's, or all of ``owner``'s.

        Newest first, ``limit`` of them after the job ``before``; the second value
        is the vsid to pass as ``before`` for the next page, or None at the end.
        """
        if ids is not None and not ids:
            return [], None
        account: dict[str, Any] = {}
        if session is not None:
            account = {"hostname": session.hostname, "port": session.port,
                       "username": session.username}
        records, more = await find_page(self.store, owner, before, limit, states=states,
                                        ids=ids, **account)
        return [job_view(record, session.sid if session else record.sid, listed=True)
                for record in records], more

    def _change(self, vsid: str) -> asyncio.Event:
        """The event that is set the next time ``vsid`` has news."""
        return self._changed.setdefault(vsid, asyncio.Event())

    def _wake(self, vsid: str) -> None:
        changed = self._changed.pop(vsid, None)
        if changed is not None:
            changed.set()

    async def _apply(self, record: JobRecord, status: JobStatus) -> None:
        """Store a status; record an event for news, progress at most twice a second.

        The event is stored before the record says the new status: a stream that
        finds the job final and no event after its last one has had the end (a stream
        reading between the two would stop one event short of it).
        """
        state, phase = JobState.of(status.get("status")), status.get("phase")
        progress = float(status.get("progress") or 0.0)
        previewed = int((status.get("preview") or {}).get("frames") or 0)
        now = time.monotonic()
        last = self._emitted.get(record.vsid)
        news = not (last is not None and (state, phase) == (last.state, last.phase) and (
            (progress, previewed) == (last.progress, last.preview)
            or now - last.at < PROGRESS_INTERVAL))
        if news and last is not None and last.state.final and not (
                state is JobState.EXPIRED and last.state is not JobState.EXPIRED):
            news = False  # the end was announced; only a later deletion follows it
        if news:
            self._emitted[record.vsid] = Emitted(state, phase, now, progress, previewed)
            await self.store.add_event(record.vsid, status)
        record.status = status
        await self.store.update(record.vsid, status)
        if state.final:
            self._views.pop(record.vsid, None)
            self.sessions.job_ended(record.vsid)
        if not news:
            return
        if last is None or last.state is not state:
            await self.webhooks.on_status(record, status, job_view(record, record.sid, status))
        self._wake(record.vsid)

    # -- outputs, cancel, delete ------------------------------------------------

    async def output(self, session: RemoteSession, vsid: str,
                     name: str | None = None) -> RemoteFile:
        """A finished output on the remote host; 409 until then.

        Without ``name``, the job's first output (Slycat's video URL).
        """
        status = await self.status(session, vsid)
        if not status["ready"]:
            raise errors.VideoNotReady(NOT_READY, hint=_not_ready_hint(status))
        record = await self._record(session, vsid)
        outputs = finished_outputs(record.status)
        chosen = outputs[0] if name is None else next(
            (output for output in outputs if output.get("name") == name), None)
        if chosen is None:
            raise errors.NotFound(
                f"Unknown output {name!r}.", code="unknown-output",
                hint="This job's outputs: " + ", ".join(o.get("name", "?") for o in outputs)
                + ".")
        return RemoteFile(chosen["path"], int(chosen["size"]),
                          chosen.get("content_type", record.content_type))

    async def preview(self, session: RemoteSession, vsid: str) -> RemoteFile:
        """A running job's preview, as far as its whole fragments go now; 404 when the
        job has none (not encoding yet, chunked, its preview off, or ended)."""
        record = await self._record(session, vsid)
        status = await self._refresh(session, record)
        found = status.get("preview") if JobState.of(status.get("status")) \
            is JobState.RUNNING else None
        if not found or not found.get("path"):
            raise errors.NotFound(NO_PREVIEW, code="no-preview",
                                  hint=_no_preview_hint(record, status, session.sid))
        return RemoteFile(found["path"], int(found.get("size", 0)),
                          found.get("content_type", record.content_type))

    async def cancel(self, session: RemoteSession, vsid: str) -> JobView:
        """Stop a running job (ffmpeg stopped, partial files removed); a no-op once ended."""
        record = await self._record(session, vsid)
        if not is_final(record.status):
            status = status_of(await session.request("cancel-video", {"job": vsid},
                                                     timeout=60))
            await self._apply(record, status)
        return job_view(record, session.sid)

    async def delete(self, session: RemoteSession, vsid: str) -> None:
        """Delete a job's files on the remote host; its record stays, as ``expired``."""
        record = await self._record(session, vsid)
        try:
            await session.request("delete-video", {"job": vsid}, timeout=60)
        except errors.UnknownJob:
            pass  # gone already: the record says so from now on
        await self._apply(record, with_changes(
            record.status, status=JobState.EXPIRED.value, phase="done", message="Deleted.",
            output=None, outputs=[]))

    async def on_agent_message(self, session: RemoteSession, message: dict[str, Any]) -> None:
        """Keep the stored status current as the agent pushes job events; when the
        agent stops, its jobs' waiters wake to find they must ask elsewhere."""
        if message.get("event") == "stopped":
            for job in [job for job, agent in self._views.items() if agent is session.agent]:
                del self._views[job]
                self._wake(job)
            return
        if message.get("event") != "job":
            return
        data = status_of(message.get("data"))
        vsid = data.get("id")
        if isinstance(vsid, str):
            record = await self.store.get(vsid)
            if record is not None and _reachable(record, session) \
                    and not is_final(record.status):
                if session.agent is not None and not is_final(data):
                    self._views[vsid] = session.agent
                await self._apply(record, data)


@dataclass(frozen=True)
class KnownBody:
    """A serialized status answer and the SHA-1 of it (hex: the answer's Etag)."""

    body: bytes
    sha1: str


class BodyCache:
    """Serialized answers by job, each valid for one status object (a new status is a
    new object) and one key; the least recently used go past ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[str, tuple[JobStatus, Any, KnownBody]] = OrderedDict()

    def get(self, vsid: str, status: JobStatus, key: Any) -> KnownBody | None:
        entry = self._entries.get(vsid)
        if entry is None or entry[0] is not status or entry[1] != key:
            return None
        self._entries.move_to_end(vsid)
        return entry[2]

    def put(self, vsid: str, status: JobStatus, key: Any, known: KnownBody) -> None:
        old = self._entries.pop(vsid, None)
        if old is not None:
            self.size -= len(old[2].body)
        if len(known.body) > self.budget:
            return
        self._entries[vsid] = (status, key, known)
        self.size += len(known.body)
        while self.size > self.budget:
            self.size -= len(self._entries.popitem(last=False)[1][2].body)


def _reachable(record: JobRecord, session: RemoteSession) -> bool:
    return (record.owner == session.owner and record.hostname == session.hostname
            and record.port == session.port and record.username == session.username)


def preview_gone(sid: str, vsid: str) -> errors.NotFound:
    """A preview that vanished as it was asked for: its job has just ended."""
    return errors.NotFound(NO_PREVIEW, code="no-preview",
                           hint="The job has just ended and its preview with it: fetch the "
                                f"video itself, GET /remotes/{sid}/videos/{vsid}, once its "
                                "status is final.")


def _no_preview_hint(record: JobRecord, status: JobStatus, sid: str) -> str:
    """Why a job has no preview to play, and what to fetch instead."""
    state = JobState.of(status.get("status"))
    video = f"/remotes/{sid}/videos/{record.vsid}"
    if state is JobState.SUCCEEDED:
        return f"The video is done: fetch the video itself, GET {video}."
    if state.final:
        return f"The job has ended ({state.value}) and its preview with it."
    chunking = status.get("chunking") or {}
    if int(chunking.get("chunks") or 1) > 1:
        return ("A job encoded in chunks has no preview; fetch the video itself, "
                f"GET {video}, once it is done.")
    return ("The preview starts once the encoder has written its first fragment (about a "
            "second of video): look again when the status's preview is not null (it stays "
            "null for a job made with \"preview\": false).")


def _not_ready_hint(status: JobView) -> str:
    state = status["status"]
    if state == "failed":
        return f"The video failed and will not be ready: {status['message']}"
    if state == "canceled":
        return "The video was canceled and will not be ready; create it again."
    if state == "expired":
        return "The video was deleted; create it again."
    return (f"The video is {state} ({status['progress']:.0f}%); "
            "poll its status until ready is true.")


def made_with(body: dict[str, Any]) -> dict[str, Any]:
    """The options a job was made with, kept for "make again": its request without
    webhooks and delivery targets (their URLs and headers may carry secrets)."""
    return {key: value for key, value in body.items()
            if key != "deliver" and key not in HOOK_FIELDS}
