"""Video jobs on the server side: create, follow, fetch, cancel and delete.

The agent's job directory is the source of truth for a job's progress; the
server keeps each job's record and event history in the job store (SQLite),
so a job stays listed and reachable across dropped SSH links and server
restarts: any live session of its owner to the same host account reaches it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from typing import Any

from . import errors
from .agent_client import AgentClient, AgentError
from .config import LimitsConfig, OutgoingConfig
from .delivery import validate_targets
from .outgoing import OutgoingPolicy
from .sessions import RemoteSession, SessionManager, agent_error, iso
from .store import JobEvent, JobRecord, JobStore
from .webhooks import HOOK_FIELDS, WebhookService, validate_hooks

log = logging.getLogger(__name__)

UNKNOWN_VIDEO = "Unknown video."
NOT_READY = "Video not ready."
FINAL = ("succeeded", "failed", "canceled", "expired")
PROGRESS_INTERVAL = 0.5  # at most two progress events a second per job
REFRESH_INTERVAL = 5.0   # a waiter asks the agent itself when no event came for this long
MAX_WAIT = 300.0
IDEMPOTENCY_WINDOW = 24 * 3600.0


def public_status(record: JobRecord, status: dict[str, Any], sid: str) -> dict[str, Any]:
    """Slycat's ``ok``/``ready``/``message`` beside framewire's richer fields.

    URLs point through session ``sid``: the one the caller is using.
    """
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
    base = f"/remotes/{sid}/videos/{record.vsid}"
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


class VideoService:
    def __init__(self, store: JobStore, webhooks: WebhookService | None = None,
                 webhook_timeout: float = 10.0, limits: LimitsConfig | None = None) -> None:
        self.store = store
        self.limits = limits or LimitsConfig()
        self.policy = webhooks.policy if webhooks else OutgoingPolicy(OutgoingConfig())
        self.webhooks = webhooks
        self.webhook_timeout = webhook_timeout
        self._changed: dict[str, asyncio.Event] = {}
        self._emitted: dict[str, tuple[str, str | None, float, float]] = {}
        # The agent that pushes each unfinished job's events: while it runs, the
        # stored status is current and status requests need not ask it.
        self._views: dict[str, AgentClient] = {}
        # A status question on its way to an agent, shared by concurrent requests.
        self._asking: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Set once the session manager exists (it needs this service first).
        self.sessions: SessionManager | None = None

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
        hooks = validate_hooks(body, self.webhook_timeout, self.policy)
        targets, target_headers = validate_targets(body.get("deliver"), self.policy)
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
        active = await self.store.find(session.owner, states=["queued", "running"],
                                       limit=self.limits.jobs_per_user)
        if len(active) >= self.limits.jobs_per_user:
            if idempotency_key is not None:
                await self.store.forget_key(session.owner, idempotency_key)
            raise errors.TooManyRequests(
                f"You have {len(active)} jobs queued or running; the limit is "
                f"{self.limits.jobs_per_user}.", code="too-many-jobs",
                hint="Wait for one to end or cancel one (POST …/videos/(vsid)/cancel).")
        args = {key: value for key, value in body.items()
                if key not in ("job", "deliver") and key not in HOOK_FIELDS}
        args["max-images"] = self.limits.max_images
        try:
            status = await agent.request("create-video", {**args, "job": vsid})
        except BaseException as failure:
            if idempotency_key is not None:
                await self.store.forget_key(session.owner, idempotency_key)
            if isinstance(failure, AgentError):
                if failure.code == "bad-images":
                    raise _bad_images(failure) from None
                raise agent_error(failure) from None
            raise
        now = time.time()
        frames = int(status.get("frames_total", 0))
        record = JobRecord(vsid, session.sid, session.owner, session.hostname,
                           session.username, str(status.get("content_type", "")), frames,
                           status.get("status", "queued"), status, now, now, session.port,
                           hooks)
        if self.webhooks is not None:
            for index, headers in enumerate(target_headers):
                if headers:
                    self.webhooks.pending_headers[(vsid, index)] = headers
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

    async def _refresh(self, session: RemoteSession, record: JobRecord) -> dict[str, Any]:
        """The job's true status: the stored one while an agent pushes the job's
        events, else asked of the agent once (concurrent requests share the answer)."""
        status = record.status
        if status.get("status") in FINAL or self.following(record.vsid):
            return status
        asking = self._asking.get(record.vsid)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(session, record))
            self._asking[record.vsid] = asking
            asking.add_done_callback(lambda done: self._asked(record.vsid, done))
        return await asyncio.shield(asking)

    def _asked(self, vsid: str, done: asyncio.Future[dict[str, Any]]) -> None:
        self._asking.pop(vsid, None)
        if not done.cancelled():
            done.exception()  # seen, even if every request that waited went away

    async def _ask(self, session: RemoteSession, record: JobRecord) -> dict[str, Any]:
        agent = session.require_agent()
        try:
            status = await agent.request("video-status", {"job": record.vsid})
        except AgentError as error:
            raise agent_error(error) from None
        session.jobs.add(record.vsid)  # its agent follows the job from now on
        if status.get("status") not in FINAL:
            self._views[record.vsid] = agent
        await self._apply(record, status)
        return status

    async def status(self, session: RemoteSession, vsid: str) -> dict[str, Any]:
        record = await self._record(session, vsid)
        body = public_status(record, await self._refresh(session, record), session.sid)
        if record.hooks.get("deliver") and self.webhooks is not None:
            body["deliveries"] = [entry for entry in await self.webhooks.log(vsid)
                                  if entry["kind"] == "upload"]
        return body

    async def wait(self, session: RemoteSession, vsid: str, timeout: float) -> dict[str, Any]:
        """Long-poll: the status once the job ends, or when ``timeout`` runs out."""
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT)
        while True:
            record = await self._record(session, vsid)
            changed = self._change(vsid)
            status = await self._refresh(session, record)
            left = deadline - time.monotonic()
            if status.get("status") in FINAL or left <= 0:
                return public_status(record, status, session.sid)
            try:
                await asyncio.wait_for(changed.wait(), min(left, REFRESH_INTERVAL))
            except TimeoutError:
                pass

    async def events(self, session: RemoteSession, vsid: str,
                     after: int) -> tuple[list[JobEvent], bool]:
        """Events after ``after``, waiting briefly for one; True once the job has ended."""
        record = await self._record(session, vsid)
        changed = self._change(vsid)
        found = await self.store.events(vsid, after)
        if not found:
            if record.status.get("status") in FINAL:
                return [], True  # resumed after the final event: nothing will follow
            try:
                await asyncio.wait_for(changed.wait(), REFRESH_INTERVAL)
            except TimeoutError:
                await self._refresh(session, record)
            found = await self.store.events(vsid, after)
        for event in found:
            event.data = public_status(record, event.data, session.sid)
        ended = bool(found) and found[-1].data["status"] in FINAL
        return found, ended

    async def list_jobs(self, session: RemoteSession | None, owner: str,
                        states: list[str] | None = None, ids: list[str] | None = None,
                        before: str | None = None,
                        limit: int = 1000) -> tuple[list[dict[str, Any]], str | None]:
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
        listed = []
        for record in records:
            body = public_status(record, record.status, session.sid if session else record.sid)
            body.update({"hostname": record.hostname, "username": record.username,
                         "created": iso(record.created), "updated": iso(record.updated)})
            listed.append(body)
        return listed, more

    def _change(self, vsid: str) -> asyncio.Event:
        """The event that is set the next time ``vsid`` has news."""
        return self._changed.setdefault(vsid, asyncio.Event())

    async def _apply(self, record: JobRecord, status: dict[str, Any]) -> None:
        """Store a status; record an event for news, progress at most twice a second."""
        record.status = status
        await self.store.update(record.vsid, status)
        state, phase = status.get("status", "queued"), status.get("phase")
        if state in FINAL:
            self._views.pop(record.vsid, None)
            if self.sessions is not None:
                self.sessions.job_ended(record.vsid)
        progress = float(status.get("progress") or 0.0)
        now = time.monotonic()
        last = self._emitted.get(record.vsid)
        if last is not None and (state, phase) == last[:2] and (
                progress == last[3] or now - last[2] < PROGRESS_INTERVAL):
            return
        if last is not None and last[0] in FINAL and not (
                state == "expired" and last[0] != "expired"):
            return  # the end was announced; only a later deletion follows it
        self._emitted[record.vsid] = (state, phase, now, progress)
        await self.store.add_event(record.vsid, status)
        if self.webhooks is not None and (last is None or last[0] != state):
            await self.webhooks.on_status(record, status,
                                          public_status(record, status, record.sid))
        changed = self._changed.pop(record.vsid, None)
        if changed is not None:
            changed.set()

    # -- outputs, cancel, delete ------------------------------------------------

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

    async def cancel(self, session: RemoteSession, vsid: str) -> dict[str, Any]:
        """Stop a running job (ffmpeg stopped, partial files removed); a no-op once ended."""
        record = await self._record(session, vsid)
        if record.status.get("status") not in FINAL:
            try:
                status = await session.request("cancel-video", {"job": vsid}, timeout=60)
            except AgentError as error:
                raise agent_error(error) from None
            await self._apply(record, status)
        return public_status(record, record.status, session.sid)

    async def delete(self, session: RemoteSession, vsid: str) -> None:
        """Delete a job's files on the remote host; its record stays, as ``expired``."""
        record = await self._record(session, vsid)
        try:
            await session.request("delete-video", {"job": vsid}, timeout=60)
        except AgentError as error:
            if error.code != "unknown-job":
                raise agent_error(error) from None
        await self._apply(record, {**record.status, "status": "expired", "phase": "done",
                                   "message": "Deleted.", "output": None, "outputs": []})

    async def on_agent_event(self, session: RemoteSession, message: dict[str, Any]) -> None:
        """Keep the stored status current as the agent pushes job events; when the
        agent stops, its jobs' waiters wake to find they must ask elsewhere."""
        if message.get("event") == "stopped":
            for job in [job for job, agent in self._views.items() if agent is session.agent]:
                del self._views[job]
                changed = self._changed.pop(job, None)
                if changed is not None:
                    changed.set()
            return
        if message.get("event") != "job":
            return
        data = message.get("data") or {}
        vsid = data.get("id")
        if isinstance(vsid, str):
            record = await self.store.get(vsid)
            if record is not None and _reachable(record, session) \
                    and record.status.get("status") not in FINAL:
                if session.agent is not None and data.get("status") not in FINAL:
                    self._views[vsid] = session.agent
                await self._apply(record, data)


def _reachable(record: JobRecord, session: RemoteSession) -> bool:
    return (record.owner == session.owner and record.hostname == session.hostname
            and record.port == session.port and record.username == session.username)



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
