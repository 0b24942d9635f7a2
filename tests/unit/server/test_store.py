"""The job store: records by column name, pages that neither overlap nor skip,
events served from memory and from SQLite, deliveries, and an older store migrated."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

from server.records import Delivery, UploadPlan
from server.store import CACHED_EVENTS, JobRecord, JobStore


def record(vsid: str, created: float, state: str = "running", owner: str = "alice",
           hostname: str = "cluster") -> JobRecord:
    return JobRecord(vsid=vsid, sid="s" * 32, owner=owner, hostname=hostname, port=22,
                     username="fred", content_type="video/mp4", frames=10, state=state,
                     status={"status": state, "frames_total": 10},  # type: ignore[typeddict-item]
                     created=created, updated=created, hooks={"url_callback": "https://x/"})


def test_records_round_trip_and_updates_write_through(tmp_path: Path) -> None:
    async def run() -> None:
        store = JobStore(str(tmp_path / "jobs.sqlite3"))
        await store.add(record("a" * 32, 1.0))
        await store.update("a" * 32, {"status": "succeeded", "message": "Video ready."})
        got = await store.get("a" * 32)
        assert got is not None and got.state == "succeeded"
        assert got.status["message"] == "Video ready." and got.hooks["url_callback"]
        await store.close()
        again = JobStore(str(tmp_path / "jobs.sqlite3"))  # from SQLite, not memory
        fresh = await again.get("a" * 32)
        assert fresh is not None and (fresh.state, fresh.port, fresh.delete_requested) == (
            "succeeded", 22, False)
        await again.request_deletion("a" * 32)
        assert (await again.get("a" * 32)).delete_requested  # type: ignore[union-attr]
        assert await again.get("b" * 32) is None
        await again.close()
    asyncio.run(run())


def test_pages_follow_creation_time_then_vsid(tmp_path: Path) -> None:
    async def run() -> None:
        store = JobStore(str(tmp_path / "jobs.sqlite3"))
        for index in range(7):  # two pairs created in the same instant
            await store.add(record(f"{index:032x}", float(index // 2)))
        await store.add(record("f" * 32, 9.0, owner="bob"))
        seen: list[str] = []
        after = None
        while True:
            page = await store.find("alice", after=after, limit=3)
            seen += [item.vsid for item in page]
            if len(page) < 3:
                break
            after = page[-1]
        assert seen == [f"{index:032x}" for index in (6, 5, 4, 3, 2, 1, 0)]
        assert [item.vsid for item in await store.find(None, states=["running"], limit=1)] \
            == ["f" * 32]
        await store.close()
    asyncio.run(run())


def test_events_from_memory_and_from_sqlite_agree(tmp_path: Path) -> None:
    async def run() -> None:
        store = JobStore(str(tmp_path / "jobs.sqlite3"))
        await store.add(record("a" * 32, 1.0))
        count = CACHED_EVENTS + 5
        for index in range(count):
            await store.add_event("a" * 32, {"status": "running", "frames_done": index})
        recent = await store.events("a" * 32, after=count - 3)  # from memory
        assert [event.seq for event in recent] == [count - 2, count - 1, count]
        recent[0].data = {"status": "changed by a caller"}
        assert (await store.events("a" * 32, after=count - 3))[0].data["frames_done"] == \
            count - 3
        early = await store.events("a" * 32, after=0)  # older than memory: SQLite
        assert [event.data["frames_done"] for event in early] == list(range(count))
        await store.close()
        reopened = JobStore(str(tmp_path / "jobs.sqlite3"))
        await reopened.add_event("a" * 32, {"status": "succeeded"})
        assert (await reopened.events("a" * 32, after=count))[0].seq == count + 1
        await reopened.close()
    asyncio.run(run())


def test_deliveries_keep_their_plan(tmp_path: Path) -> None:
    async def run() -> None:
        store = JobStore(str(tmp_path / "jobs.sqlite3"))
        upload = Delivery(id="upload_" + "a" * 32 + "_0", vsid="a" * 32, owner="alice",
                          kind="upload", urls=["https://bucket/x"], timeout=600.0,
                          next_at=1.0, created=1.0,
                          plan=UploadPlan("https://bucket/x", "PUT", 1024, "video"))
        message = Delivery(id="msg_" + "a" * 32 + "_callback", vsid="a" * 32, owner="alice",
                           kind="callback", urls=["https://hook/"], timeout=10.0,
                           next_at=2.0, created=2.0, body='{"type": "job.succeeded"}')
        for delivery in (upload, message, upload):  # the second upload is ignored
            await store.add_delivery(delivery)
        upload.plan.sent = 2048  # type: ignore[union-attr]
        upload.attempts.append({"status": 500})
        await store.save_delivery(upload)
        kept = await store.deliveries(vsid="a" * 32)
        assert [item.kind for item in kept] == ["upload", "callback"]
        assert kept[0].plan == UploadPlan("https://bucket/x", "PUT", 1024, "video", 2048)
        assert kept[0].attempts == [{"status": 500}] and kept[1].plan is None
        assert [item.id for item in await store.deliveries(due=1.5)] == [upload.id]
        await store.close()
    asyncio.run(run())


def test_an_older_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as an earlier version wrote it
        db.executescript("""
CREATE TABLE jobs (vsid TEXT PRIMARY KEY, sid TEXT NOT NULL, owner TEXT NOT NULL,
    hostname TEXT NOT NULL, username TEXT NOT NULL, content_type TEXT NOT NULL,
    frames INTEGER NOT NULL, state TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE deliveries (id TEXT PRIMARY KEY, vsid TEXT NOT NULL, owner TEXT NOT NULL,
    kind TEXT NOT NULL, urls TEXT NOT NULL, body TEXT NOT NULL, timeout REAL NOT NULL,
    state TEXT NOT NULL, attempts TEXT NOT NULL, next_at REAL NOT NULL,
    created REAL NOT NULL);""")
        db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   ("a" * 32, "s", "alice", "cluster", "fred", "video/mp4", 3, "succeeded",
                    json.dumps({"status": "succeeded", "delete_requested": True}), 1.0, 1.0))
        db.execute("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   ("upload_x_0", "a" * 32, "alice", "upload", '["https://b/"]',
                    json.dumps({"url": "https://b/", "method": "POST", "sent": 7}), 600.0,
                    "pending", "[]", 1.0, 1.0))

    async def run() -> None:
        store = JobStore(str(path))
        job = await store.get("a" * 32)
        assert job is not None and (job.port, job.hooks, job.delete_requested) == (22, {},
                                                                                   True)
        assert "delete_requested" not in job.status
        (upload,) = await store.deliveries(vsid="a" * 32)
        assert upload.plan == UploadPlan("https://b/", "POST", sent=7) and upload.body == ""
        await store.close()
    asyncio.run(run())
