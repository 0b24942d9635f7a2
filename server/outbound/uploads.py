"""Delivery: upload a finished job's outputs where the job asked, by PUT or POST.

Each ``deliver`` target names a URL, a method, optional extra headers and an
optional ``chunk_size``: without it the output streams in one request (a
presigned S3 URL takes exactly that PUT); with it, the output goes in
chunks, each with ``Content-Range: bytes a-b/size`` as in Valt's resumable
upload, and a retry resumes at the first chunk not yet accepted.  Bytes come
from the remote host on the session's byte channel and are never held whole.
Targets are kept in the job store; their extra headers (often credentials)
are kept in memory only, never on disk.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from tornado.httpclient import HTTPClientError, HTTPRequest

from .. import errors
from ..records import DeliverTarget, Delivery, JobState
from ..remote.sessions import RemoteSession, SessionManager
from ..store import JobRecord, JobStore
from .policy import OutgoingPolicy

MAX_TARGETS = 10
MIN_CHUNK = 1024
MAX_CHUNK = 1 << 30
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
RESERVED = {"host", "content-length", "content-range", "transfer-encoding", "connection"}


def validate_targets(value: Any, policy: OutgoingPolicy
                     ) -> tuple[list[DeliverTarget], list[dict[str, str]]]:
    """``deliver`` checked: the targets to keep, and their headers (kept apart)."""
    if value is None:
        return [], []
    if not isinstance(value, list) or not 0 < len(value) <= MAX_TARGETS:
        raise errors.ValidationError("deliver", f"deliver must list 1 to {MAX_TARGETS} "
                                     "targets such as {\"url\": \"https://...\"}.")
    targets, headers = [], []
    for index, item in enumerate(value):
        where = f"deliver.{index}"
        if not isinstance(item, dict):
            raise errors.ValidationError(where, f"{where} must be an object with a url.")
        unknown = set(item) - {"url", "method", "chunk_size", "headers", "output"}
        if unknown:
            raise errors.ValidationError(f"{where}.{sorted(unknown)[0]}",
                                         f"Unknown option {where}.{sorted(unknown)[0]}; "
                                         "allowed: chunk_size, headers, method, output, url.")
        url = policy.check_url(item.get("url"), f"{where}.url")
        method = item.get("method", "PUT")
        if method not in ("PUT", "POST"):
            raise errors.ValidationError(f"{where}.method",
                                         f"{where}.method must be PUT or POST.")
        chunk = item.get("chunk_size")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                                  or not MIN_CHUNK <= chunk <= MAX_CHUNK):
            raise errors.ValidationError(f"{where}.chunk_size", f"{where}.chunk_size must be "
                                         f"a number of bytes from {MIN_CHUNK} to {MAX_CHUNK}.")
        extra = item.get("headers") or {}
        if not isinstance(extra, dict) or not all(
                isinstance(k, str) and _TOKEN.match(k) and k.lower() not in RESERVED
                and isinstance(v, str) and "\r" not in v and "\n" not in v
                for k, v in extra.items()):
            raise errors.ValidationError(f"{where}.headers", f"{where}.headers must map "
                                         "header names to one-line values (not Host, "
                                         "Content-Length, Content-Range or Transfer-Encoding).")
        output = item.get("output")
        if output is not None and not isinstance(output, str):
            raise errors.ValidationError(f"{where}.output", f"{where}.output must be the "
                                         "name of one of the job's outputs.")
        targets.append(DeliverTarget(url=url, method=method, chunk_size=chunk, output=output))
        headers.append(dict(extra))
    return targets, headers


class Uploader:
    """Uploads a finished job's outputs; the only keeper of their targets' extra
    headers (often credentials), in memory only, from the job's start until its
    upload is done or given up."""

    def __init__(self, store: JobStore, sessions: SessionManager,
                 policy: OutgoingPolicy) -> None:
        self.store = store
        self.sessions = sessions
        self.policy = policy
        self._headers: dict[tuple[str, int], dict[str, str]] = {}  # (vsid, target) -> headers

    def keep_headers(self, vsid: str, headers: list[dict[str, str]]) -> None:
        """The extra headers of a new job's targets, in target order."""
        for index, extra in enumerate(headers):
            if extra:
                self._headers[(vsid, index)] = extra

    def done_with(self, delivery: Delivery) -> None:
        """The upload ended (delivered or given up): its headers go."""
        self._headers.pop(_target_of(delivery), None)

    def has_headers(self, vsid: str, index: int) -> bool:
        return (vsid, index) in self._headers

    async def attempt(self, delivery: Delivery) -> dict[str, Any]:
        """One try at a delivery; an outcome for its log (``ok`` when all is sent)."""
        plan = delivery.plan
        assert plan is not None
        url = delivery.urls[0]
        outcome: dict[str, Any] = {"url": url}
        record = await self.store.get(delivery.vsid)
        if record is None or record.job_state is not JobState.SUCCEEDED:
            return {**outcome, "error": "The job has no finished output any more."}
        outputs = record.status.get("outputs") or []
        name = plan.output or (outputs[0].get("name") if outputs else None)
        output = next((o for o in outputs if o.get("name") == name), None)
        if output is None:
            return {**outcome, "error": f"The job has no output named {name!r}."}
        extra = self._headers.get(_target_of(delivery))
        if plan.has_headers and extra is None:
            return {**outcome, "final": True, "error": "The target's headers were not kept "
                    "across a server restart (they are never stored); deliver again."}
        session = self._session(record)
        if session is None:
            return {**outcome, "error": f"No live session to {record.hostname}; the upload "
                    "resumes when one exists."}
        size = int(output.get("size", 0))
        sent = plan.sent
        chunk = plan.chunk_size or size or 1
        headers = {"Content-Type": output.get("content_type", "application/octet-stream"),
                   "User-Agent": "framewire", **(extra or {})}
        client = self.policy.client
        while sent < size or (size == 0 and sent == 0):
            length = min(chunk, size - sent)
            request_headers = dict(headers)
            if plan.chunk_size:
                request_headers["Content-Range"] = f"bytes {sent}-{sent + length - 1}/{size}"
            request_headers["Content-Length"] = str(length)
            body = await self._producer(session, output.get("path", ""), sent, length)
            try:
                response = await client.fetch(HTTPRequest(
                    url, method=plan.method, headers=request_headers,
                    body_producer=body,  # type: ignore[arg-type]  # tornado's write is awaitable
                    follow_redirects=False, request_timeout=600), raise_error=False)
            except (HTTPClientError, OSError) as error:
                return {**outcome, "error": str(error), "sent": sent}
            if not 200 <= response.code < 300:
                return {**outcome, "status": response.code, "sent": sent,
                        **({"error": str(response.error)} if response.code == 599 else {})}
            sent += length
            plan.sent = sent
            await self.store.save_delivery(delivery)
            if size == 0:
                break
        return {**outcome, "status": response.code, "sent": sent, "ok": True}

    def _session(self, record: JobRecord) -> RemoteSession | None:
        return self.sessions.live_for(record.owner, record.hostname, record.port,
                                      record.username)

    async def _producer(self, session: RemoteSession, path: str, offset: int,
                        length: int) -> Callable[[Callable[[bytes], Awaitable[None]]],
                                                 Awaitable[None]]:
        async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
            if length == 0:
                return
            channel = await session.transport.open_stream(path, offset, length)
            left = length
            try:
                while left > 0:
                    data = await channel.read(min(1 << 20, left))
                    if not data:
                        raise OSError(f"the remote file ended {left} bytes early")
                    await write(data)
                    left -= len(data)
            finally:
                channel.close()
        return produce


def upload_id(vsid: str, index: int) -> str:
    """The delivery id of a job's ``index``-th upload target."""
    return f"upload_{vsid}_{index}"


def _target_of(delivery: Delivery) -> tuple[str, int]:
    return delivery.vsid, int(delivery.id.rsplit("_", 1)[1])
