"""After a restart, follow unfinished jobs on hosts the server can log in to itself.

A job's webhooks and deliveries fire when the server learns that the job
ended.  Normally a user's session tells it; after a server restart nobody
may come back.  When the server has its own key credentials (``[ssh]
client_keys``) or the job ran on the local transport, it opens a session of
its own for each host account with unfinished jobs, follows them until they
end, and closes the session.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import errors, ssh
from .config import Config
from .jobs import FINAL, VideoService
from .sessions import SessionManager
from .store import JobStore

log = logging.getLogger(__name__)
FOLLOW_INTERVAL = 5.0


class Reattacher:
    def __init__(self, store: JobStore, config: Config, sessions: SessionManager,
                 videos: VideoService) -> None:
        self.store = store
        self.config = config
        self.sessions = sessions
        self.videos = videos
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        task = asyncio.create_task(self._start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def can_log_in(self, owner: str, hostname: str) -> bool:
        return self.sessions.is_local(hostname) or bool(ssh.client_keys(self.config, owner,
                                                                          hostname))

    async def _start(self) -> None:
        accounts: dict[tuple[str, str, int, str], list[str]] = {}
        for state in ("queued", "running"):
            for record in await self.store.find_all(states=[state]):
                if self.can_log_in(record.owner, record.hostname):
                    key = (record.owner, record.hostname, record.port, record.username)
                    accounts.setdefault(key, []).append(record.vsid)
        for account, jobs in accounts.items():
            task = asyncio.create_task(self._follow(account, jobs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _follow(self, account: tuple[str, str, int, str], jobs: list[str]) -> None:
        owner, hostname, port, username = account
        try:
            session = await self.sessions.create(owner, hostname, port, username, None, True,
                                                 interactive=False)
        except errors.FramewireError as error:
            log.warning("cannot re-attach to %s@%s: %s", username, hostname, error.message)
            return
        log.info("re-attached to %s@%s for %d unfinished job(s)", username, hostname,
                 len(jobs))
        try:
            while jobs:
                for vsid in list(jobs):
                    try:
                        status = await self.videos.status(session, vsid)
                    except errors.FramewireError:
                        jobs.remove(vsid)
                        continue
                    if status["status"] in FINAL:
                        jobs.remove(vsid)
                self.sessions.get(owner, session.sid)  # keep the session from idling out
                if jobs:
                    await asyncio.sleep(FOLLOW_INTERVAL)
        finally:
            try:
                await self.sessions.delete(owner, session.sid)
            except errors.FramewireError:
                pass
