"""How a job looks from outside: the one JSON view of a job (status answers, list
entries, progress events, webhook bodies), and the admin's and storage's views,
which share its summary fields."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, TypedDict

from ..records import JobEvents, JobState, JobStatus, Output, iso
from ..store import JobRecord


class OutputView(TypedDict):
    name: str
    kind: str
    content_type: str
    size: int | None
    width: int | None
    height: int | None
    url: str


class PreviewView(TypedDict):
    url: str
    frames: int
    size: int
    content_type: str
    mime: str


class JobView(TypedDict, total=False):
    """A job as the API shows it (docs/api.md, the status fields)."""

    ok: bool
    ready: bool
    message: str
    sid: str
    status: str
    phase: str | None
    progress: float
    frames_done: int
    frames_total: int
    eta_seconds: float | None
    events: JobEvents
    content_type: str
    frame_rate: str | None
    width: int | None
    height: int | None
    notes: list[str]
    runner_max_rss_kb: int | None
    executor: str  # local, or slurm
    scheduler: dict[str, Any] | None  # a batch job's: Slurm's ids, state, reason, nodes
    chunking: dict[str, Any]  # how the job is split: chunks, requested, parallel, note
    chunks: list[dict[str, Any]]  # a chunked job's tasks: index, frames, state, node
    preview: PreviewView | None  # a running job's: what is encoded so far, to play
    outputs: list[OutputView]
    request: dict[str, Any]  # GET …/status only: the options it was made with
    returncode: int | None  # failed only
    stderr: str  # failed only
    hostname: str  # list entries only
    port: int
    username: str
    created: str
    updated: str
    deliveries: list[dict[str, Any]]  # a status with uploads: their log


def job_view(record: JobRecord, sid: str, status: JobStatus | None = None, *,
             listed: bool = False) -> JobView:
    """Slycat's ``ok``/``ready``/``message`` beside framewire's richer fields, for
    ``status`` (default the job's last known one).

    URLs point through session ``sid``: the one the caller is using.  A list
    entry (``listed``) also says where the job runs and when it was made.
    """
    status = record.status if status is None else status
    state = JobState.of(status.get("status"))
    body = JobView({
        "ok": state not in (JobState.FAILED, JobState.CANCELED, JobState.EXPIRED),
        "ready": state is JobState.SUCCEEDED,
        "message": status.get("message", ""),
        "sid": record.vsid,
        "status": state.value,
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
        "executor": status.get("executor", "local"),
        "scheduler": scheduler_view(status.get("scheduler"),
                                    status.get("events", {}).get("completed")),
        "chunking": status.get("chunking") or {"chunks": 1, "requested": 1, "parallel": 1,
                                               "note": None},
        "chunks": [chunk_view(item) for item in status.get("chunks") or []],
        "preview": None,
        "outputs": [],
    })
    base = f"/remotes/{sid}/videos/{record.vsid}"
    preview = status.get("preview")
    if preview and state is JobState.RUNNING:
        body["preview"] = PreviewView({
            "url": f"{base}/preview", "frames": int(preview.get("frames", 0)),
            "size": int(preview.get("size", 0)),
            "content_type": preview.get("content_type", record.content_type),
            "mime": preview.get("mime", record.content_type)})
    if state is JobState.SUCCEEDED:
        for output in finished_outputs(status):
            name = output.get("name", "video")
            body["outputs"].append(OutputView({
                "name": name,
                "kind": output.get("kind", "video"),
                "content_type": output.get("content_type", record.content_type),
                "size": output.get("size"),
                "width": output.get("width"),
                "height": output.get("height"),
                "url": f"{base}/outputs/{name}",
            }))
    if state is JobState.FAILED:
        body["returncode"] = status.get("returncode")
        body["stderr"] = status.get("stderr", "")
    if listed:
        body.update({"hostname": record.hostname, "port": record.port,
                     "username": record.username,
                     "created": iso(record.created), "updated": iso(record.updated)})
    return body


def finished_outputs(status: JobStatus) -> list[Output]:
    """A finished job's outputs (``output`` alone for jobs recorded before ``outputs``)."""
    outputs = status.get("outputs")
    if outputs:
        return outputs
    single = status.get("output")
    return [single] if single else []


def summary(record: JobRecord) -> dict[str, Any]:
    """What every view of a job says: which, where, in what state, since when."""
    return {"sid": record.vsid, "hostname": record.hostname, "port": record.port,
            "username": record.username, "status": record.state,
            "created": iso(record.created)}


def admin_view(record: JobRecord) -> dict[str, Any]:
    """An admin's list entry: whose, and how it stands; no URLs (admins reach only
    their own sessions)."""
    return {**summary(record), "owner": record.owner, "updated": iso(record.updated),
            "message": record.status.get("message")}


def storage_view(record: JobRecord, completed: float | None, expires: float | None,
                 size: int) -> dict[str, Any]:
    """A job in its owner's storage listing."""
    return {**summary(record), "completed": iso(completed), "expires": iso(expires),
            "size": size, "delete_requested": record.delete_requested}


CHUNK_FIELDS = ("index", "name", "first_frame", "frames", "state", "frames_done", "node",
                "attempts", "message", "seconds", "cpu_seconds", "started")


def chunk_view(chunk: dict[str, Any]) -> dict[str, Any]:
    """One task of a chunked job (agent/chunks.py's view), its known fields only."""
    return {key: chunk.get(key) for key in CHUNK_FIELDS}


def scheduler_view(scheduler: dict[str, Any] | None, completed: Any = None,
                   now: float | None = None) -> dict[str, Any] | None:
    """What the batch scheduler said of a job, with the time it waited in the queue
    (so far, until it started, or until the job ended without starting): worked out
    when read, so it is never stale."""
    if not scheduler:
        return None
    view = dict(scheduler)
    submitted = _epoch(scheduler.get("submitted_at"))
    end = _epoch(scheduler.get("started_at"))
    if end is None:
        end = _epoch(completed)
    if end is None:
        end = time.time() if now is None else now
    view["waited_seconds"] = max(0, round(end - submitted)) if submitted is not None else None
    return view


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
