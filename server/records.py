"""The records that cross the server's modules: a job's state, the status the agent
reports, the agent's hello, a webhook or upload delivery.

The agent's status and hello arrive as JSON and are kept as JSON (in the job
store, in events): TypedDicts name their fields without converting them.
"""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict, overload


@overload
def iso(moment: float) -> str: ...
@overload
def iso(moment: None) -> None: ...
def iso(moment: float | None) -> str | None:
    """A UTC time as the API writes it (``2026-11-23T22:41:07Z``); None stays None."""
    return None if moment is None else time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                     time.gmtime(moment))


class JobState(str, enum.Enum):
    """A job's state.  The agent knows the first five; ``expired`` (outputs deleted,
    the record kept) exists only on the server."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @classmethod
    def of(cls, value: Any) -> JobState:
        """The state a status names; an unknown one is ``queued`` (never a success)."""
        try:
            return cls(value)
        except ValueError:
            return cls.QUEUED


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED,
                          JobState.EXPIRED})
UNFINISHED_STATES = (JobState.QUEUED, JobState.RUNNING)
AGENT_STATES = tuple(state for state in JobState if state is not JobState.EXPIRED)


def is_final(status: JobStatus | dict[str, Any]) -> bool:
    """Whether a status is a job's last word."""
    return JobState.of(status.get("status")).final


class FfmpegInfo(TypedDict, total=False):
    path: str | None
    version: str | None
    encoders: dict[str, str]  # codec -> the encoder used for it
    filters: list[str]
    fps_mode: bool


class Partition(TypedDict, total=False):
    name: str
    default: bool
    state: str
    max_time: int | None  # seconds; None: unlimited
    max_time_text: str
    max_nodes: int | None
    max_cpus_per_node: int | None
    cpus: int | None
    nodes: int | None


class SlurmInfo(TypedDict, total=False):
    """What a host's Slurm offers its user (the hello's ``slurm``)."""

    version: str | None
    partitions: list[Partition]
    default_partition: str | None
    sacct: bool
    user: str
    error: str


class Hello(TypedDict, total=False):
    """The agent's first message (docs/protocol.md, section 2)."""

    protocol: int
    agent: str
    python: str
    platform: dict[str, str]
    pid: int
    work_dir: str
    work_dir_free: int | None
    encode_nice: int
    slurm: SlurmInfo | None
    ffmpeg: FfmpegInfo
    capabilities: dict[str, list[str]]


class Output(TypedDict, total=False):
    name: str
    kind: str  # video, poster, contact-sheet, gif
    path: str
    size: int
    content_type: str
    width: int
    height: int


class JobEvents(TypedDict, total=False):
    queued: str | None
    started: str | None
    completed: str | None


class JobStatus(TypedDict, total=False):
    """A job's status as the agent writes it (docs/protocol.md, section 7), and as
    the server keeps it (``status`` may then also be ``expired``)."""

    id: str
    status: str
    phase: str | None
    message: str
    progress: float
    frames_done: int
    frames_total: int
    eta_seconds: float | None
    events: JobEvents
    content_type: str
    width: int
    height: int
    frame_rate: str
    notes: list[str]
    output: Output | None
    outputs: list[Output]
    pid: int | None
    returncode: int | None
    stderr: str
    runner_max_rss_kb: int
    scheduler: dict[str, Any]  # a batch job's: Slurm's ids, state, reason, nodes
    executor: str  # where its work runs: local, or slurm
    chunking: dict[str, Any]  # how it is split into chunks (agent/chunks.py)
    chunks: list[dict[str, Any]]  # a chunked job's tasks
    join_seconds: float  # a chunked job's join
    preview: Preview | None  # while it encodes: the part of its first video written so far


class Preview(TypedDict, total=False):
    """A running job's growing preview (agent/preview.py): its whole fragments."""

    path: str
    frames: int
    size: int  # bytes up to the end of the last whole fragment
    content_type: str
    mime: str  # with the codecs parameter, for MediaSource.addSourceBuffer


def with_changes(base: JobStatus, **changes: Any) -> JobStatus:
    """A copy of ``status`` with some fields changed (the server's own ends: deleted)."""
    merged: dict[str, Any] = {**base, **changes}
    return merged  # type: ignore[return-value]  # the same fields, named by the TypedDict


def status_of(data: Any) -> JobStatus:
    """A status from JSON the agent sent (anything but an object is no status)."""
    return data if isinstance(data, dict) else JobStatus()  # type: ignore[return-value]


class DeliverTarget(TypedDict, total=False):
    """One ``deliver`` entry of a video request, checked (its headers kept apart)."""

    url: str
    method: str
    chunk_size: int | None
    output: str | None


class JobHooks(TypedDict, total=False):
    """What a job's owner asked to be told, and where its outputs go."""

    url_callback: str
    url_errback: str
    webhook_event_url: str
    webhook_event_failover_url: str
    webhook_timeout_secs: float
    deliver: list[DeliverTarget]


@dataclass
class UploadPlan:
    """Where and how one output is uploaded, and how far it got."""

    url: str
    method: str = "PUT"
    chunk_size: int | None = None
    output: str | None = None  # the output's name; None: the job's first
    sent: int = 0  # bytes accepted so far (a retry resumes there)
    has_headers: bool = False  # extra headers were given (kept in memory only)

    def to_json(self) -> str:
        return json.dumps({"url": self.url, "method": self.method,
                           "chunk_size": self.chunk_size, "output": self.output,
                           "sent": self.sent, "has_headers": self.has_headers})

    @classmethod
    def from_json(cls, text: str) -> UploadPlan:
        data = json.loads(text)
        return cls(data["url"], data.get("method", "PUT"), data.get("chunk_size"),
                   data.get("output"), int(data.get("sent", 0)),
                   bool(data.get("has_headers")))


@dataclass
class Delivery:
    """One webhook message or one output upload, and every attempt made for it."""

    id: str
    vsid: str
    owner: str
    kind: str  # "job.STATE", "callback", "errback" or "upload"
    urls: list[str]
    timeout: float
    state: str = "pending"  # pending, delivered, failed
    attempts: list[dict[str, Any]] = field(default_factory=list)
    next_at: float = 0.0
    created: float = 0.0
    body: str = ""  # a message's JSON payload
    plan: UploadPlan | None = None  # an upload's

    @property
    def is_upload(self) -> bool:
        return self.plan is not None
