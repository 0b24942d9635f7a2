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
    hooks TEXT NOT NULL DEFAULT '{}'
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
    created REAL NOT NULL
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
            "created, updated, port, hooks")
CACHED_RECORDS = 4096     # job records kept in memory, least recently used dropped
CACHED_EVENT_JOBS = 1024  # jobs whose latest events are kept in memory
CACHED_EVENTS = 16        # latest events kept per job (older ones come from SQLite)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a store written by an earlier version lacks."""
    present = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    for column, kind in (("port", "INTEGER NOT NULL DEFAULT 22"),
                         ("hooks", "TEXT NOT NULL DEFAULT '{}'")):
        if column not in present:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")


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
    port: int = 22
    hooks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobRecord:
        values = list(row)
        values[8] = json.loads(values[8])
        values[12] = json.loads(values[12])
        return cls(*values)


@dataclass
class JobEvent:
    seq: int
    at: float
    data: dict[str, Any]


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
                self._db.executescript(_SCHEMA)
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
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (record.vsid, record.sid, record.owner, record.hostname, record.username,
             record.content_type, record.frames, record.state, json.dumps(record.status),
             record.created, record.updated, record.port, json.dumps(record.hooks))))
        self._remember(record)

    async def get(self, vsid: str) -> JobRecord | None:
        """The job's record; the same object for every caller while it is cached."""
        cached = self._records.get(vsid)
        if cached is not None:
            self._records.move_to_end(vsid)
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

    async def update(self, vsid: str, status: dict[str, Any]) -> None:
        now = time.time()
        self._writes += 1
        cached = self._records.get(vsid)
        if cached is not None:
            cached.status, cached.state, cached.updated = \
                status, status.get("status", "unknown"), now
        await self._run(lambda db: db.execute(
            "UPDATE jobs SET state = ?, status = ?, updated = ? WHERE vsid = ?",
            (status.get("status", "unknown"), json.dumps(status), now, vsid)))

    async def add_event(self, vsid: str, data: dict[str, Any]) -> JobEvent:
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
        return [JobEvent(seq, at, json.loads(data)) for seq, at, data in rows]

    # -- per-user settings --------------------------------------------------------

    async def expiration_days(self, owner: str) -> float | None:
        row = await self._run(lambda db: db.execute(
            "SELECT expiration_days FROM user_settings WHERE owner = ?", (owner,)).fetchone())
        return None if row is None else float(row[0])

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
                return str(row[0]), str(row[1])
            db.execute("INSERT INTO idempotency VALUES (?,?,?,?,?)",
                       (owner, key, digest, vsid, time.time()))
            return None
        return await self._run(claim)

    async def forget_key(self, owner: str, key: str) -> None:
        await self._run(lambda db: db.execute(
            "DELETE FROM idempotency WHERE owner = ? AND key = ?", (owner, key)))

    # -- webhook deliveries --------------------------------------------------------

    async def add_delivery(self, delivery: dict[str, Any]) -> None:
        await self._run(lambda db: db.execute(
            "INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (delivery["id"], delivery["vsid"], delivery["owner"], delivery["kind"],
             json.dumps(delivery["urls"]), delivery["body"], delivery["timeout"],
             delivery["state"], json.dumps(delivery["attempts"]), delivery["next_at"],
             delivery["created"])))

    async def save_delivery(self, delivery: dict[str, Any]) -> None:
        await self._run(lambda db: db.execute(
            "UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, body = ? WHERE id = ?",
            (delivery["state"], json.dumps(delivery["attempts"]), delivery["next_at"],
             delivery["body"], delivery["id"])))

    async def deliveries(self, *, vsid: str | None = None, due: float | None = None
                         ) -> list[dict[str, Any]]:
        """A job's deliveries, or every pending one due by ``due``."""
        values: tuple[Any, ...]
        if vsid is not None:
            query, values = "SELECT * FROM deliveries WHERE vsid = ? ORDER BY created", (vsid,)
        else:
            query = ("SELECT * FROM deliveries WHERE state = 'pending' AND next_at <= ? "
                     "ORDER BY next_at LIMIT 100")
            values = (due if due is not None else time.time(),)
        rows = await self._run(lambda db: db.execute(query, values).fetchall())
        names = ("id", "vsid", "owner", "kind", "urls", "body", "timeout", "state", "attempts",
                 "next_at", "created")
        found = []
        for row in rows:
            delivery = dict(zip(names, row, strict=True))
            delivery["urls"] = json.loads(delivery["urls"])
            delivery["attempts"] = json.loads(delivery["attempts"])
            found.append(delivery)
        return found

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None
        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)
