"""Remote sessions: one transport and one agent per session, with an owner."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .. import errors
from ..audit import short
from ..config import Config
from ..events import Events
from ..records import iso
from . import ssh
from .agent_client import AgentClient
from .local import LocalTransport, local_ffmpeg
from .relay import Relay
from .transport import Transport

log = logging.getLogger(__name__)

UNKNOWN_SESSION = "Unknown or expired remote session."
CHALLENGE_SECONDS = 120


@dataclass
class RemoteSession:
    sid: str
    owner: str
    hostname: str
    port: int
    username: str
    transport: Transport
    agent: AgentClient | None
    created: float = field(default_factory=time.time)
    last_access: float = field(default_factory=time.time)
    # Unfinished jobs this session's agent follows: while there are any, the
    # session does not expire, so their end is seen (events, webhooks, uploads).
    jobs: set[str] = field(default_factory=set)
    # Where a video runs when its request does not say: the host profile's executor.
    executor: str = "local"

    @property
    def transport_kind(self) -> str:
        """How the host is reached: ``ssh`` or ``local``."""
        return self.transport.kind

    def admin_view(self) -> dict[str, Any]:
        """The session in an admin's list: whose and where, its id shortened (never usable)."""
        return {"sid": short(self.sid), "owner": self.owner, "hostname": self.hostname,
                "port": self.port, "username": self.username, "transport": self.transport.kind,
                "created": iso(self.created), "last_access": iso(self.last_access)}

    @property
    def held(self) -> bool:
        return bool(self.jobs) and self.agent is not None and self.agent.running

    def require_agent(self) -> AgentClient:
        if self.agent is None:
            raise errors.AgentRequired()
        if not self.agent.running:
            raise errors.AgentRequired(
                "Agent required.", hint="The session's agent stopped; create a new session.")
        return self.agent

    async def request(self, command: str, args: dict[str, Any],
                      timeout: float | None = 300.0) -> dict[str, Any]:
        return await self.require_agent().request(command, args, timeout)

    def notes(self) -> list[str]:
        """What the person should know about this host: fallbacks the login took,
        and an ffmpeg that is missing or cannot encode."""
        notes = list(self.transport.notes)
        if self.agent is None:
            return notes
        label = self.hostname if self.port == 22 else f"{self.hostname}:{self.port}"
        ffmpeg = self.agent.hello.get("ffmpeg") or {}
        if not ffmpeg.get("path"):
            notes.append(f"No ffmpeg on {label}: no video can be made there. Install ffmpeg, "
                         "set ffmpeg in this host's profile, or let the server provide its own "
                         "([ssh] provision_ffmpeg = true).")
        elif not ffmpeg.get("encoders"):
            notes.append(f"The ffmpeg on {label} ({ffmpeg['path']}) has no H.264, VP9 or AV1 "
                         "encoder: no video can be made with it.")
        return notes

    def info(self, idle_timeout: float) -> dict[str, Any]:
        agent: dict[str, Any] = {"state": "none"}
        if self.agent is not None:
            hello = self.agent.hello
            agent = {
                "state": "running" if self.agent.running else "stopped",
                "version": hello.get("agent"),
                "pid": hello.get("pid"),
                "protocol": hello.get("protocol"),
                "python": hello.get("python"),
                "platform": hello.get("platform"),
                "work_dir": hello.get("work_dir"),
                "work_dir_free": hello.get("work_dir_free"),
                "ffmpeg": hello.get("ffmpeg"),
                "encode_nice": hello.get("encode_nice"),
                "slurm": hello.get("slurm"),
                "executor": self.executor,
                "capabilities": hello.get("capabilities"),
                **self.transport.describe(),
            }
        return {
            "sid": self.sid,
            "notes": self.notes(),
            "hostname": self.hostname,
            "port": self.port,
            "username": self.username,
            "transport": self.transport.kind,
            "agent": agent,
            "created": iso(self.created),
            "last_access": iso(self.last_access),
            "expires": None if self.held else iso(self.last_access + idle_timeout),
            "running_jobs": len(self.jobs),
        }


@dataclass
class PendingLogin:
    """A login waiting for a person's answers to a keyboard-interactive question."""

    owner: str
    task: asyncio.Task[RemoteSession]
    relay: Relay
    expiry: asyncio.TimerHandle


class SessionManager:
    def __init__(self, config: Config, events: Events) -> None:
        self.config = config
        self.events = events  # it tells: agent messages, sessions opened
        self._sessions: dict[str, RemoteSession] = {}
        self._pending: dict[str, PendingLogin] = {}
        self._reaper: asyncio.Task[None] | None = None
        # Expired sessions being closed: a stop waits for them (cancelling the reaper
        # must not leave a session half closed, its agent's pipes open).
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def idle_timeout(self) -> float:
        return self.config.server.session_idle_timeout

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever())

    def is_local(self, hostname: str) -> bool:
        return self.config.local_enabled and hostname in self.config.local.hostnames

    async def create(self, owner: str, hostname: str, port: int, username: str,
                     password: str | None, want_agent: bool,
                     interactive: bool = True) -> RemoteSession:
        """A new session, or :class:`errors.AuthChallenge` when the host asks
        keyboard-interactive questions (answer them with :meth:`answer`).

        ``interactive=False`` (the server's own logins) tries the server's
        keys only: nobody is there to answer questions.
        """
        self._check_limit(owner)
        if self.is_local(hostname):
            own = getpass.getuser()
            if username and username != own:
                raise errors.ValidationError(
                    "username", f"{hostname} is this machine through the local transport, "
                                f"which reads files as the server's own account ({own}), "
                                f"not as {username}.",
                    hint=f"Leave out username (or send {own!r}) for {hostname}; to work as "
                         f"{username}, connect over SSH to this machine's name or address "
                         "(its host key must be known).")
            cache = os.path.join(self.config.server.data_dir, "agent")
            transport: Transport = LocalTransport(
                cache, local_ffmpeg(self.config.local.ffmpeg), self.config.local.work_dir,
                self.config.local.nice)
            return await self._open(owner, hostname, port, username or getpass.getuser(),
                                    transport, want_agent)
        if not interactive:
            transport = await ssh.connect(self.config, owner, hostname, port, username, None)
            return await self._open(owner, hostname, port,
                                    transport.remote_username or username, transport,
                                    want_agent)
        relay = Relay(password)
        del password
        task = asyncio.create_task(self._connect(owner, hostname, port, username, relay,
                                                 want_agent))
        return await self._progress(owner, task, relay)

    async def answer(self, owner: str, challenge_id: str, responses: Any) -> RemoteSession:
        """Answers to a challenge: the session, or the host's next challenge."""
        pending = self._pending.get(challenge_id)
        if pending is None or pending.owner != owner:
            raise errors.NotFound("Unknown or expired challenge.", code="unknown-challenge",
                                  hint="Start again with POST /remotes and the hostname.")
        prompts = (pending.relay.question or {}).get("prompts", [])
        if not isinstance(responses, list) or len(responses) != len(prompts) or not all(
                isinstance(item, str) and len(item) <= 1024 for item in responses):
            raise errors.ValidationError(
                "responses", f"responses must list {len(prompts)} answer(s), one string per "
                             "prompt, in order.")
        del self._pending[challenge_id]
        pending.expiry.cancel()
        pending.relay.answer(responses)
        return await self._progress(owner, pending.task, pending.relay)

    async def _progress(self, owner: str, task: asyncio.Task[RemoteSession],
                        relay: Relay) -> RemoteSession:
        """Wait until ``task`` ends or asks a question; a question becomes a challenge."""
        asked = relay.asked()
        waiting: set[asyncio.Future[Any]] = {task, asked}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
        if task.done():
            return task.result()
        challenge_id = secrets.token_hex(16)
        expiry = asyncio.get_running_loop().call_later(
            CHALLENGE_SECONDS, self._expire_challenge, challenge_id)
        self._pending[challenge_id] = PendingLogin(owner, task, relay, expiry)
        question = relay.question or {}
        raise errors.AuthChallenge({"id": challenge_id, "name": question.get("name", ""),
                                    "instructions": question.get("instructions", ""),
                                    "prompts": question.get("prompts", []),
                                    "expires_in": CHALLENGE_SECONDS})

    def _expire_challenge(self, challenge_id: str) -> None:
        pending = self._pending.pop(challenge_id, None)
        if pending is not None:
            pending.task.cancel()
            log.info("a keyboard-interactive challenge expired unanswered")

    def _check_limit(self, owner: str) -> None:
        limit = self.config.limits.sessions_per_user
        if sum(1 for s in self._sessions.values() if s.owner == owner
               and not self._expired(s)) >= limit:
            raise errors.TooManyRequests(
                f"You have {limit} open sessions, the limit.", code="too-many-sessions",
                hint="Close one with DELETE /remotes/(sid), or reuse it.")

    async def _connect(self, owner: str, hostname: str, port: int, username: str,
                       relay: Relay, want_agent: bool) -> RemoteSession:
        transport = await ssh.connect(self.config, owner, hostname, port, username, relay)
        return await self._open(owner, hostname, port, transport.remote_username or username,
                                transport, want_agent)

    async def _open(self, owner: str, hostname: str, port: int, username: str,
                    transport: Transport, want_agent: bool) -> RemoteSession:
        sid = secrets.token_hex(16)
        agent = None
        if want_agent:
            try:
                agent = await self._start_agent(sid, transport)
                if await transport.provide_ffmpeg(agent.hello):
                    await agent.close()  # a new agent finds the ffmpeg it was given
                    agent = await self._start_agent(sid, transport)
            except BaseException:
                await transport.close()
                raise
        session = RemoteSession(sid, owner, hostname, port, username, transport, agent,
                                executor=self.config.host(hostname).executor or "local")
        self._sessions[sid] = session
        if agent is not None:
            self.events.session_opened(session)
        log.info("session %s… opened: %s@%s (%s)", sid[:6], username, hostname,
                 transport.kind)
        return session

    async def _start_agent(self, sid: str, transport: Transport) -> AgentClient:
        nonce = secrets.token_hex(8)
        channel = await transport.start_agent(nonce)

        async def forward(message: dict[str, Any]) -> None:
            session = self._sessions.get(sid)
            if session is not None:
                await self.events.agent_message(session, message)

        agent = AgentClient(channel, forward)
        await agent.start(nonce, self.config.ssh.agent_start_timeout)
        return agent

    def get(self, owner: str, sid: str) -> RemoteSession:
        """The caller's live session ``sid``; 404 for anything else."""
        session = self._sessions.get(sid)
        if session is None or session.owner != owner or self._expired(session):
            raise errors.NotFound(UNKNOWN_SESSION, code="unknown-session",
                                  hint="Create a new session with POST /remotes.")
        session.last_access = time.time()
        return session

    def live(self) -> list[RemoteSession]:
        return [session for session in self._sessions.values()
                if not self._expired(session) and session.agent is not None
                and session.agent.running]

    def of_owner(self, owner: str) -> list[RemoteSession]:
        """``owner``'s sessions with a running agent, newest first."""
        return sorted((session for session in self.live() if session.owner == owner),
                      key=lambda session: session.created, reverse=True)

    def live_for(self, owner: str, hostname: str, port: int,
                 username: str) -> RemoteSession | None:
        """Any live session with a running agent of ``owner`` to that host account."""
        for session in self._sessions.values():
            if (session.owner, session.hostname, session.port, session.username) == (
                    owner, hostname, port, username) and not self._expired(session) \
                    and session.agent is not None and session.agent.running:
                return session
        return None

    def job_ended(self, vsid: str) -> None:
        """The sessions the job held open expire as usual, counting from now (its
        webhooks' output URLs go through the one that created it)."""
        for session in self._sessions.values():
            if vsid in session.jobs:
                session.jobs.discard(vsid)
                session.last_access = max(session.last_access, time.time())

    def _expired(self, session: RemoteSession) -> bool:
        return not session.held and time.time() - session.last_access > self.idle_timeout

    async def delete(self, owner: str, sid: str) -> None:
        session = self.get(owner, sid)
        await self._close(session)

    async def _close(self, session: RemoteSession) -> None:
        self._sessions.pop(session.sid, None)
        if session.agent is not None:
            await session.agent.close()
        await session.transport.close()
        log.info("session %s… closed", session.sid[:6])

    async def _reap_forever(self) -> None:
        interval = max(1.0, min(30.0, self.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            for session in [s for s in self._sessions.values() if self._expired(s)]:
                closing = asyncio.ensure_future(self._close(session))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
                try:
                    await asyncio.shield(closing)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("closing expired session failed")

    async def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for session in list(self._sessions.values()):
            await self._close(session)
        if self._closing:  # what the reaper had begun
            await asyncio.gather(*self._closing, return_exceptions=True)
