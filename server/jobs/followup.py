"""Follow unfinished jobs that no session follows.

A job's events, webhooks and deliveries happen when the server learns that
the job changed.  The session that started the job follows it (and stays
open while it runs), but after a dropped link, a killed agent, a deleted
session or a server restart nobody may.  Every ``[server] follow_interval``
the follower looks for such jobs: it asks about them through a live session
of their owner to the same host account when there is one, and otherwise
opens a session of its own where the server can log in without a person
(the local transport, or SSH with ``[ssh] client_keys``), follows the jobs
until they end, and closes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

from .. import background, errors
from ..config import Config
from ..records import UNFINISHED_STATES, JobState
from ..remote.routes import client_keys
from ..remote.sessions import SessionManager
from ..store import JobStore
from .service import JobService

log = logging.getLogger(__name__)
FOLLOW_INTERVAL = 5.0  # seconds between status questions while following
Account = tuple[str, str, int, str]  # owner, hostname, port, username


class FollowUp:
    def __init__(self, store: JobStore, config: Config, sessions: SessionManager,
                 jobs: JobService) -> None:
        self.store = store
        self.config = config
        self.sessions = sessions
        self.jobs = jobs
        self._tasks: set[asyncio.Task[Any]] = set()
        self._following: set[Account] = set()  # host accounts with a session of ours
        self._unreachable: set[Account] = set()
        # Jobs the host's agent does not know (their directory is gone, or the agent
        # runs with another work directory): not looked for again until a restart.
        self._unknown: set[str] = set()

    def start(self) -> None:
        self._spawn(self._watch())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        await background.stop(list(self._tasks))

    def can_log_in(self, owner: str, hostname: str) -> bool:
        return self.sessions.is_local(hostname) or bool(client_keys(self.config, owner,
                                                                      hostname))

    async def _watch(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the store failed; look again next time
                log.exception("looking for unfollowed jobs failed")
            await asyncio.sleep(self.config.server.follow_interval)

    async def sweep(self) -> None:
        """Hand every unfinished job that no session follows to one that can."""
        followed = {vsid for session in self.sessions.live() for vsid in session.jobs}
        accounts: dict[Account, list[str]] = {}
        for record in await self.store.find_all(
                states=[state.value for state in UNFINISHED_STATES]):
            account = (record.owner, record.hostname, record.port, record.username)
            if record.vsid in followed or record.vsid in self._unknown \
                    or account in self._following:
                continue
            session = self.sessions.live_for(*account)
            if session is not None:
                try:  # its agent follows the job from now on, and the session holds it
                    await self.jobs.status(session, record.vsid)
                except errors.FramewireError as error:
                    self._failed(record.vsid, error)
            elif self.can_log_in(record.owner, record.hostname):
                accounts.setdefault(account, []).append(record.vsid)
        for account, jobs in accounts.items():
            self._following.add(account)
            self._spawn(self._follow(account, jobs))

    async def _follow(self, account: Account, jobs: list[str]) -> None:
        try:
            await self._follow_with_own_session(account, jobs)
        finally:
            self._following.discard(account)

    async def _follow_with_own_session(self, account: Account, jobs: list[str]) -> None:
        owner, hostname, port, username = account
        try:
            session = await self.sessions.create(owner, hostname, port, username, None, True,
                                                 interactive=False)
        except errors.FramewireError as error:
            # Tried again at the next sweep; said once until it works.
            level = logging.DEBUG if account in self._unreachable else logging.WARNING
            self._unreachable.add(account)
            log.log(level, "cannot re-attach to %s@%s: %s", username, hostname, error.message)
            return
        self._unreachable.discard(account)
        log.info("re-attached to %s@%s for %d unfinished job(s)", username, hostname,
                 len(jobs))
        try:
            while jobs:
                for vsid in list(jobs):
                    try:
                        status = await self.jobs.status(session, vsid)
                    except errors.FramewireError as error:
                        self._failed(vsid, error)
                        jobs.remove(vsid)
                        continue
                    if JobState.of(status["status"]).final:
                        jobs.remove(vsid)
                self.sessions.get(owner, session.sid)  # keep the session from idling out
                if jobs:
                    await asyncio.sleep(FOLLOW_INTERVAL)
        finally:
            try:
                await self.sessions.delete(owner, session.sid)
            except errors.FramewireError:
                pass

    def _failed(self, vsid: str, error: errors.FramewireError) -> None:
        """A status question failed: a job the agent does not know is left alone;
        anything else is asked again at the next sweep."""
        if error.code == "unknown-video":
            self._unknown.add(vsid)
            log.warning("video %s… is unfinished, but its host's agent does not know it; "
                        "not following it", vsid[:6])
        else:
            log.warning("video %s…: %s", vsid[:6], error.message)
