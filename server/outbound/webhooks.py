"""Webhooks: tell a job's owner when it ends, signed, retried, never dropped.

Per job: ``url_callback`` (on success), ``url_errback`` (on failure or
cancel), ``webhook_event_url`` with ``webhook_event_failover_url`` (every
change of state) and ``webhook_timeout_secs``.  Each message is signed the
Standard Webhooks way with a per-user secret derived from the server's key
(so it is never stored): ``webhook-id`` stays the same across retries,
``webhook-signature`` is ``v1,`` + base64 HMAC-SHA256 of
``id.timestamp.body``.  Pending deliveries live in the job store, so a
restart resumes them; only a 2xx answer counts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse

from .. import background, errors
from ..auth import server_secret
from ..config import Config
from ..records import Delivery, JobHooks, JobState, JobStatus, UploadPlan
from ..store import JobRecord, JobStore
from .policy import Denied, OutgoingPolicy
from .uploads import Uploader, upload_id

log = logging.getLogger(__name__)

HOOK_FIELDS = ("url_callback", "url_errback", "webhook_event_url",
               "webhook_event_failover_url", "webhook_timeout_secs")
MAX_TIMEOUT = 30.0
REDIRECTS = (307, 308)


def validate_hooks(body: dict[str, Any], default_timeout: float,
                   policy: OutgoingPolicy) -> JobHooks:
    """The webhook fields of a video request, checked; they are the server's, not the agent's."""
    hooks = JobHooks()
    for name in HOOK_FIELDS[:4]:
        url = body.get(name)
        if url is None:
            continue
        hooks[name] = policy.check_url(url, name)  # type: ignore[literal-required]
    if "webhook_event_failover_url" in hooks and "webhook_event_url" not in hooks:
        raise errors.ValidationError("webhook_event_failover_url",
                                     "webhook_event_failover_url needs webhook_event_url.")
    timeout = body.get("webhook_timeout_secs", min(default_timeout, MAX_TIMEOUT))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout <= MAX_TIMEOUT:
        raise errors.ValidationError("webhook_timeout_secs",
                                     f"webhook_timeout_secs must be a number of seconds "
                                     f"above 0 and at most {MAX_TIMEOUT:g}.")
    if hooks:
        hooks["webhook_timeout_secs"] = float(timeout)
    return hooks


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sign(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookService:
    def __init__(self, store: JobStore, config: Config, uploader: Uploader,
                 policy: OutgoingPolicy) -> None:
        self.store = store
        self.config = config
        self.uploader = uploader
        self.policy = policy
        self._worker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Attempts in flight, by job: one per job at a time, up to the concurrency.
        # Each task is named after its delivery's id.
        self._sending: dict[str, asyncio.Task[None]] = {}
        self._replay_after: set[str] = set()  # replayed while in flight: once more after
        self._key = server_secret(config)

    def secret(self, owner: str) -> bytes:
        return hmac.new(self._key, b"framewire-webhooks:" +
                        owner.encode(), hashlib.sha256).digest()[:24]

    def secret_text(self, owner: str) -> str:
        return "whsec_" + base64.b64encode(self.secret(owner)).decode()

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run())

    async def close(self) -> None:
        # A cut attempt stays pending in the store and is made again after a restart.
        await background.stop([self._worker, *self._sending.values()])

    async def on_status(self, record: JobRecord, status: JobStatus,
                        body: Mapping[str, object]) -> None:
        """Queue the deliveries a change of state calls for (each at most once)."""
        hooks = record.hooks
        if not hooks:
            return
        state = JobState.of(status.get("status"))
        targets: list[tuple[str, list[str]]] = []
        if "webhook_event_url" in hooks:
            urls = [hooks["webhook_event_url"]]
            if "webhook_event_failover_url" in hooks:
                urls.append(hooks["webhook_event_failover_url"])
            targets.append((f"job.{state.value}", urls))
        if state is JobState.SUCCEEDED and "url_callback" in hooks:
            targets.append(("callback", [hooks["url_callback"]]))
        if state in (JobState.FAILED, JobState.CANCELED) and "url_errback" in hooks:
            targets.append(("errback", [hooks["url_errback"]]))
        now = time.time()
        if state is JobState.SUCCEEDED:
            for index, target in enumerate(hooks.get("deliver", [])):
                await self.store.add_delivery(Delivery(
                    id=upload_id(record.vsid, index), vsid=record.vsid, owner=record.owner,
                    kind="upload", urls=[target["url"]], timeout=600.0, next_at=now,
                    created=now, plan=UploadPlan(
                        target["url"], target.get("method", "PUT"), target.get("chunk_size"),
                        target.get("output"),
                        has_headers=self.uploader.has_headers(record.vsid, index))))
                self._wake.set()
        for kind, urls in targets:
            payload = {"type": kind if kind.startswith("job.") else f"job.{state.value}",
                       "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                       "data": body}
            await self.store.add_delivery(Delivery(
                id=f"msg_{record.vsid}_{kind.replace('.', '_')}", vsid=record.vsid,
                owner=record.owner, kind=kind, urls=urls, body=json.dumps(payload),
                timeout=hooks.get("webhook_timeout_secs", 10.0), next_at=now, created=now))
        if targets:
            self._wake.set()

    async def log(self, vsid: str) -> list[dict[str, Any]]:
        found = []
        for delivery in await self.store.deliveries(vsid=vsid):
            entry: dict[str, Any] = {
                "id": delivery.id, "kind": delivery.kind, "urls": delivery.urls,
                "state": delivery.state, "attempts": delivery.attempts,
                "next_attempt": delivery.next_at if delivery.state == "pending" else None}
            if delivery.plan is not None:
                entry.update({"output": delivery.plan.output, "method": delivery.plan.method,
                              "chunk_size": delivery.plan.chunk_size,
                              "bytes_sent": delivery.plan.sent})
            found.append(entry)
        return found

    async def replay(self, vsid: str, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again (same webhook-id), whatever became of it."""
        for delivery in await self.store.deliveries(vsid=vsid):
            if delivery.id == delivery_id:
                delivery.state, delivery.next_at = "pending", time.time()
                if any(task.get_name() == delivery_id for task in self._sending.values()):
                    self._replay_after.add(delivery_id)  # its outcome would overwrite this
                else:
                    await self.store.save_delivery(delivery)
                    self._wake.set()
                return {"id": delivery.id, "kind": delivery.kind, "urls": delivery.urls,
                        "state": delivery.state}
        raise errors.NotFound(f"Unknown delivery {delivery_id!r}.", code="unknown-delivery",
                              hint="GET the job's webhooks for the ids of its deliveries.")

    async def _run(self) -> None:
        """Start due attempts: jobs in parallel, each job's deliveries in order."""
        while True:
            try:
                for delivery in await self.store.deliveries(due=time.time()):
                    if len(self._sending) >= self.config.webhooks.concurrency:
                        break
                    if delivery.vsid not in self._sending:
                        self._sending[delivery.vsid] = asyncio.create_task(
                            self._send(delivery), name=delivery.id)
            except Exception:  # the store failed; look again at the next wake
                log.exception("webhook worker")
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.webhooks.poll_interval)
            except TimeoutError:
                pass

    async def _send(self, delivery: Delivery) -> None:
        try:
            await self._attempt(delivery)
            if delivery.id in self._replay_after:
                delivery.state, delivery.next_at = "pending", time.time()
                await self.store.save_delivery(delivery)
        except Exception as error:  # one bad delivery must not stop the others
            log.exception("delivery %s", delivery.id)
            try:  # count it as a failed attempt, so it follows the retry schedule
                self._settle(delivery, {"at": _now_iso(), "error": f"internal error: {error}"},
                             False)
                await self.store.save_delivery(delivery)
            except Exception:
                log.exception("delivery %s: could not record the failure", delivery.id)
        finally:
            self._replay_after.discard(delivery.id)
            del self._sending[delivery.vsid]
            self._wake.set()  # the job's next delivery, or another job's, may be due

    async def _attempt(self, delivery: Delivery) -> None:
        if delivery.is_upload:
            result = await self.uploader.attempt(delivery)
            ok, final = bool(result.get("ok")), bool(result.get("final"))
            self._settle(delivery, {"at": _now_iso(), **result},
                         ok, final)
            await self.store.save_delivery(delivery)
            return
        attempts = delivery.attempts
        urls = delivery.urls
        url = urls[len(attempts) % len(urls)]  # primary, then failover, alternating
        timestamp = int(time.time())
        body = delivery.body.encode()
        request = HTTPRequest(url, method="POST", body=body, follow_redirects=False,
                              request_timeout=delivery.timeout,
                              connect_timeout=delivery.timeout, headers={
                                  "Content-Type": "application/json",
                                  "User-Agent": "framewire-webhooks",
                                  "webhook-id": delivery.id,
                                  "webhook-timestamp": str(timestamp),
                                  "webhook-signature": sign(self.secret(delivery.owner),
                                                            delivery.id, timestamp, body)})
        outcome: dict[str, Any] = {"at": _now_iso(), "url": url}
        try:
            response = await self._post(request)
            outcome["status"] = response.code
            delivered = 200 <= response.code < 300
            if response.code == 599:
                outcome["error"] = str(response.error)
            elif response.code in REDIRECTS:
                outcome["error"] = (f"too many redirects (the last to "
                                    f"{response.headers.get('Location', '?')})")
        except (HTTPClientError, OSError) as error:
            outcome["error"] = str(error)
            delivered = False
        self._settle(delivery, outcome, delivered)
        await self.store.save_delivery(delivery)

    async def _post(self, request: HTTPRequest) -> HTTPResponse:
        """POST, following 307/308 redirects (same body) while the policy allows."""
        for _ in range(self.config.outgoing.max_redirects):
            response = await self.policy.client.fetch(request, raise_error=False)
            location = response.headers.get("Location") if response.code in REDIRECTS else None
            if not location:
                return response
            target = urljoin(request.url, location)
            try:
                self.policy.check_url(target, "Location")
            except errors.ValidationError as refusal:
                raise Denied(f"redirect to {target} refused: {refusal.message}") from None
            request = HTTPRequest(target, method="POST", body=request.body,
                                  headers=request.headers, follow_redirects=False,
                                  request_timeout=request.request_timeout,
                                  connect_timeout=request.connect_timeout)
        return await self.policy.client.fetch(request, raise_error=False)

    def _settle(self, delivery: Delivery, outcome: dict[str, Any], delivered: bool,
                final: bool = False) -> None:
        """Log an attempt; then delivered, given up, or when to try next."""
        outcome.pop("ok", None)
        outcome.pop("final", None)
        delivery.attempts.append(outcome)
        schedule = self.config.webhooks.retry_schedule
        if delivered:
            delivery.state = "delivered"
        elif final or len(delivery.attempts) > len(schedule):
            delivery.state = "failed"
            log.warning("delivery %s gave up after %d attempts", delivery.id,
                        len(delivery.attempts))
        else:
            delivery.next_at = time.time() + schedule[len(delivery.attempts) - 1]
        if delivery.is_upload and delivery.state != "pending":
            self.uploader.done_with(delivery)
