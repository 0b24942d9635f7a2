"""The job store: every job's record and its event history, in SQLite.

SQLite runs behind one worker thread, so the event loop never waits on disk.
A job's record is what survives a server restart: owner, host, the session
that created it, and the last status the agent reported.  Events are the
numbered history that progress streams replay (``Last-Event-ID``).

This process is the only writer, so recently used records and each job's
latest events are also kept in memory, written through: a status request or
a progress stream's next event costs no trip to the database thread.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from .records import Delivery, JobHooks, JobState, JobStatus, UploadPlan

T = TypeVar("T")

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
    updated REAL NOT NULL,
    port INTEGER NOT NULL DEFAULT 22,
    hooks TEXT NOT NULL DEFAULT '{}',
    delete_requested INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created);
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    vsid TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    urls TEXT NOT NULL,
    body TEXT NOT NULL,
    timeout REAL NOT NULL,
    state TEXT NOT NULL,
    attempts TEXT NOT NULL,
    next_at REAL NOT NULL,
    created REAL NOT NULL,
    plan TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL,
    vsid TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS user_settings (
    owner TEXT PRIMARY KEY,
    expiration_days REAL
);
CREATE TABLE IF NOT EXISTS job_events (
    vsid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (vsid, seq)
);
"""
_COLUMNS = ("vsid, sid, owner, hostname, username, content_type, frames, state, status, "
            "created, updated, port, hooks, delete_requested, request")
_DELIVERY_COLUMNS = ("id, vsid, owner, kind, urls, body, timeout, state, attempts, next_at, "
                     "created, plan")
CACHED_RECORDS = 4096     # job records kept in memory, least recently used dropped
CACHED_EVENT_JOBS = 1024  # jobs whose latest events are kept in memory
CACHED_EVENTS = 16        # latest events kept per job (older ones come from SQLite)


def _migrate(db: sqlite3.Connection) -> None:
    """Add what a store written by an earlier version lacks."""
    present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
    for column, kind in (("port", "INTEGER NOT NULL DEFAULT 22"),
                         ("hooks", "TEXT NOT NULL DEFAULT '{}'"),
                         ("delete_requested", "INTEGER NOT NULL DEFAULT 0"),
                         ("request", "TEXT NOT NULL DEFAULT '{}'")):
        if column not in present:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
    if "delete_requested" not in present:  # it used to ride inside the status
        for row in db.execute("SELECT vsid, status FROM jobs WHERE status LIKE "
                              "'%\"delete_requested\": true%'").fetchall():
            status = json.loads(row["status"])
            status.pop("delete_requested", None)
            db.execute("UPDATE jobs SET status = ?, delete_requested = 1 WHERE vsid = ?",
                       (json.dumps(status), row["vsid"]))
    delivered = {row["name"] for row in db.execute("PRAGMA table_info(deliveries)")}
    if "plan" not in delivered:  # upload plans used to be JSON inside the body
        db.execute("ALTER TABLE deliveries ADD COLUMN plan TEXT")
        db.execute("UPDATE deliveries SET plan = body, body = '' WHERE kind = 'upload'")


@dataclass
class JobRecord:
    """A job as the server keeps it: who, where, and the last status it knows."""

    vsid: str
    sid: str  # the session that created it
    owner: str
    hostname: str
    port: int
    username: str
    content_type: str
    frames: int
    state: str
    status: JobStatus
    created: float
    updated: float
    hooks: JobHooks = field(default_factory=lambda: JobHooks())
    delete_requested: bool = False  # deletion asked while no session could do it
    # The options it was made with (no webhooks or delivery targets): "make again".
    request: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        return cls(vsid=row["vsid"], sid=row["sid"], owner=row["owner"],
                   hostname=row["hostname"], port=row["port"], username=row["username"],
                   content_type=row["content_type"], frames=row["frames"],
                   state=row["state"], status=json.loads(row["status"]),
                   created=row["created"], updated=row["updated"],
                   hooks=json.loads(row["hooks"]),
                   delete_requested=bool(row["delete_requested"]),
                   request=json.loads(row["request"]))

    @property
    def job_state(self) -> JobState:
        return JobState.of(self.state)


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(id=row["id"], vsid=row["vsid"], owner=row["owner"], kind=row["kind"],
                    urls=json.loads(row["urls"]), timeout=row["timeout"],
                    state=row["state"], attempts=json.loads(row["attempts"]),
                    next_at=row["next_at"], created=row["created"], body=row["body"],
                    plan=UploadPlan.from_json(row["plan"]) if row["plan"] else None)


@dataclass
class JobEvent:
    seq: int
    at: float
    data: JobStatus


class JobStore:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobstore")
        self._db: sqlite3.Connection | None = None
        self._path = path
        self._records: collections.OrderedDict[str, JobRecord] = collections.OrderedDict()
        self._writes = 0  # record updates so far: a read that raced one is not cached
        self._events: collections.OrderedDict[str, collections.deque[JobEvent]] = \
            collections.OrderedDict()
        self._last_seq: dict[str, int] = {}

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            if self._db is None:
                self._db = sqlite3.connect(self._path, check_same_thread=False)
                self._db.row_factory = sqlite3.Row
                self._db.executescript(_SCHEMA)
                with self._db:
                    _migrate(self._db)
            with self._db:
                return work(self._db)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _remember(self, record: JobRecord) -> JobRecord:
        self._records[record.vsid] = record
        self._records.move_to_end(record.vsid)
        while len(self._records) > CACHED_RECORDS:
            self._records.popitem(last=False)
        return record

    async def add(self, record: JobRecord) -> None:
        await self._run(lambda db: db.execute(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (:vsid, :sid, :owner, :hostname, "
            ":username, :content_type, :frames, :state, :status, :created, :updated, :port, "
            ":hooks, :delete_requested, :request)",
            {"vsid": record.vsid, "sid": record.sid, "owner": record.owner,
             "hostname": record.hostname, "username": record.username,
             "content_type": record.content_type, "frames": record.frames,
             "state": record.state, "status": json.dumps(record.status),
             "created": record.created, "updated": record.updated, "port": record.port,
             "hooks": json.dumps(record.hooks),
             "delete_requested": int(record.delete_requested),
             "request": json.dumps(record.request)}))
        self._remember(record)

    def cached(self, vsid: str) -> JobRecord | None:
        """The job's record if it is in memory (no database read), else None."""
        record = self._records.get(vsid)
        if record is not None:
            self._records.move_to_end(vsid)
        return record

    async def get(self, vsid: str) -> JobRecord | None:
        """The job's record; the same object for every caller while it is cached."""
        cached = self.cached(vsid)
        if cached is not None:
            return cached
        writes = self._writes
        row = await self._run(lambda db: db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE vsid = ?", (vsid,)).fetchone())
        if row is None:
            return None
        if vsid in self._records:  # another reader got there first
            return self._records[vsid]
        record = JobRecord.from_row(row)
        return self._remember(record) if writes == self._writes else record

    async def find(self, owner: str | None, *, hostname: str | None = None, port: int | None = None,
                   username: str | None = None, states: list[str] | None = None,
                   ids: list[str] | None = None, after: JobRecord | None = None,
                   limit: int = 1000) -> list[JobRecord]:
        """The owner's (None: everybody's) jobs, newest first, optionally on one host
        account, in some states, among ``ids``, or listed after ``after`` (a page's
        last job: the order is creation time, then vsid, so pages never overlap)."""
        clauses: list[str] = ["1 = 1"]
        values: list[Any] = []
        for column, value in (("owner", owner), ("hostname", hostname), ("port", port),
                              ("username", username)):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        for column, chosen in (("state", states), ("vsid", ids)):
            if chosen:
                clauses.append(f"{column} IN ({','.join('?' * len(chosen))})")
                values.extend(chosen)
        if after is not None:
            clauses.append("(created < ? OR (created = ? AND vsid < ?))")
            values.extend((after.created, after.created, after.vsid))
        query = (f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(clauses)} "
                 "ORDER BY created DESC, vsid DESC LIMIT ?")
        rows = await self._run(lambda db: db.execute(query, (*values, limit)).fetchall())
        return [JobRecord.from_row(row) for row in rows]

    async def find_all(self, states: list[str]) -> list[JobRecord]:
        """Every owner's jobs in ``states`` (for the server's own follow-up)."""
        query = (f"SELECT {_COLUMNS} FROM jobs WHERE state IN ({','.join('?' * len(states))}) "
                 "ORDER BY created")
        rows = await self._run(lambda db: db.execute(query, states).fetchall())
        return [JobRecord.from_row(row) for row in rows]

    async def request_deletion(self, vsid: str) -> None:
        """Remember that a finished job's outputs are to be deleted at the next
        session to its host account."""
        cached = self._records.get(vsid)
        if cached is not None:
            cached.delete_requested = True
        self._writes += 1
        await self._run(lambda db: db.execute(
            "UPDATE jobs SET delete_requested = 1 WHERE vsid = ?", (vsid,)))

    async def update(self, vsid: str, status: JobStatus) -> None:
        now = time.time()
        self._writes += 1
        cached = self._records.get(vsid)
        if cached is not None:
            cached.status, cached.state, cached.updated = \
                status, status.get("status", "unknown"), now
        await self._run(lambda db: db.execute(
            "UPDATE jobs SET state = ?, status = ?, updated = ? WHERE vsid = ?",
            (status.get("status", "unknown"), json.dumps(status), now, vsid)))

    async def add_event(self, vsid: str, data: JobStatus) -> JobEvent:
        """Append an event to a job's history; its ``seq`` is the next number."""
        counters = self._last_seq  # touched on the database thread only

        def insert(db: sqlite3.Connection) -> JobEvent:
            seq = counters.get(vsid)
            if seq is None:
                seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM job_events "
                                     "WHERE vsid = ?", (vsid,)).fetchone()[0])
            event = JobEvent(seq + 1, time.time(), data)
            db.execute("INSERT INTO job_events VALUES (?,?,?,?)",
                       (vsid, event.seq, event.at, json.dumps(data)))
            if len(counters) > CACHED_RECORDS:
                counters.clear()
            counters[vsid] = event.seq
            return event
        event = await self._run(insert)
        recent = self._events.get(vsid)
        if recent is None or (recent and recent[-1].seq != event.seq - 1):
            recent = self._events[vsid] = collections.deque(maxlen=CACHED_EVENTS)
        recent.append(event)
        self._events.move_to_end(vsid)
        while len(self._events) > CACHED_EVENT_JOBS:
            self._events.popitem(last=False)
        return JobEvent(event.seq, event.at, event.data)

    async def events(self, vsid: str, after: int = 0) -> list[JobEvent]:
        """The job's events after ``after``, oldest first (new objects: callers may
        change them)."""
        recent = self._events.get(vsid)
        if recent and after >= recent[0].seq - 1:
            return [JobEvent(event.seq, event.at, event.data) for event in recent
                    if event.seq > after]
        rows = await self._run(lambda db: db.execute(
            "SELECT seq, at, data FROM job_events WHERE vsid = ? AND seq > ? ORDER BY seq",
            (vsid, after)).fetchall())
        return [JobEvent(row["seq"], row["at"], json.loads(row["data"])) for row in rows]

    # -- per-user settings --------------------------------------------------------

    async def expiration_days(self, owner: str) -> float | None:
        row = await self._run(lambda db: db.execute(
            "SELECT expiration_days FROM user_settings WHERE owner = ?", (owner,)).fetchone())
        return None if row is None else float(row["expiration_days"])

    async def set_expiration_days(self, owner: str, days: float) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO user_settings (owner, expiration_days) VALUES (?, ?) "
            "ON CONFLICT (owner) DO UPDATE SET expiration_days = excluded.expiration_days",
            (owner, days)))

    # -- idempotency keys ------------------------------------------------------

    async def remember_key(self, owner: str, key: str, digest: str, vsid: str,
                           max_age: float) -> tuple[str, str] | None:
        """Claim ``key`` for ``vsid``; or the (vsid, digest) that holds it already."""
        def claim(db: sqlite3.Connection) -> tuple[str, str] | None:
            db.execute("DELETE FROM idempotency WHERE created < ?", (time.time() - max_age,))
            row = db.execute("SELECT vsid, digest FROM idempotency WHERE owner = ? AND key = ?",
                             (owner, key)).fetchone()
            if row is not None:
                return str(row["vsid"]), str(row["digest"])
            db.execute("INSERT INTO idempotency VALUES (?,?,?,?,?)",
                       (owner, key, digest, vsid, time.time()))
            return None
        return await self._run(claim)

    async def forget_key(self, owner: str, key: str) -> None:
        await self._run(lambda db: db.execute(
            "DELETE FROM idempotency WHERE owner = ? AND key = ?", (owner, key)))

    # -- webhook deliveries --------------------------------------------------------

    async def add_delivery(self, delivery: Delivery) -> None:
        """Keep a new delivery (one with the same id already kept is left as it is)."""
        await self._run(lambda db: db.execute(
            f"INSERT OR IGNORE INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (:id, :vsid, "
            ":owner, :kind, :urls, :body, :timeout, :state, :attempts, :next_at, :created, "
            ":plan)", _delivery_row(delivery)))

    async def save_delivery(self, delivery: Delivery) -> None:
        await self._run(lambda db: db.execute(
            "UPDATE deliveries SET state = :state, attempts = :attempts, next_at = :next_at, "
            "plan = :plan WHERE id = :id", _delivery_row(delivery)))

    async def deliveries(self, *, vsid: str | None = None, due: float | None = None
                         ) -> list[Delivery]:
        """A job's deliveries, or every pending one due by ``due``."""
        values: tuple[Any, ...]
        if vsid is not None:
            query = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE vsid = ? ORDER BY created"
            values = (vsid,)
        else:
            query = (f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE state = 'pending' "
                     "AND next_at <= ? ORDER BY next_at LIMIT 100")
            values = (due if due is not None else time.time(),)
        rows = await self._run(lambda db: db.execute(query, values).fetchall())
        return [_delivery(row) for row in rows]

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


def _delivery_row(delivery: Delivery) -> dict[str, Any]:
    return {"id": delivery.id, "vsid": delivery.vsid, "owner": delivery.owner,
            "kind": delivery.kind, "urls": json.dumps(delivery.urls), "body": delivery.body,
            "timeout": delivery.timeout, "state": delivery.state,
            "attempts": json.dumps(delivery.attempts), "next_at": delivery.next_at,
            "created": delivery.created,
            "plan": delivery.plan.to_json() if delivery.plan is not None else None}
