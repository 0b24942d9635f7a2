"""The services a handler can reach, built once per application, each given its
collaborators in its constructor, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass

from .auth import Authenticator
from .config import Config
from .events import Events
from .jobs.followup import FollowUp
from .jobs.retention import RetentionService
from .jobs.service import JobService
from .limits import LoginGuard, RateLimiter
from .outbound.policy import OutgoingPolicy
from .outbound.uploads import Uploader
from .outbound.webhooks import WebhookService
from .remote.files import RemoteFiles
from .remote.sessions import SessionManager
from .store import JobStore


@dataclass
class Services:
    config: Config
    auth: Authenticator
    events: Events
    store: JobStore
    sessions: SessionManager
    files: RemoteFiles
    jobs: JobService
    webhooks: WebhookService
    retention: RetentionService
    followup: FollowUp
    rate: RateLimiter
    logins: LoginGuard

    @classmethod
    def build(cls, config: Config) -> Services:
        events = Events()
        store = JobStore(config.database)
        sessions = SessionManager(config, events)
        policy = OutgoingPolicy(config.outgoing)
        uploader = Uploader(store, sessions, policy)
        webhooks = WebhookService(store, config, uploader, policy)
        jobs = JobService(store, sessions, webhooks, uploader, events, config)
        return cls(config=config, auth=Authenticator(config), events=events, store=store,
                   sessions=sessions, files=RemoteFiles(), jobs=jobs, webhooks=webhooks,
                   retention=RetentionService(store, config, jobs, sessions, events),
                   followup=FollowUp(store, config, sessions, jobs),
                   rate=RateLimiter(config.limits.requests_per_minute),
                   logins=LoginGuard(config.auth.max_failed_logins))

    def start(self) -> None:
        self.sessions.start()
        self.webhooks.start()
        self.retention.start()
        self.followup.start()

    async def close(self) -> None:
        await self.followup.close()
        await self.retention.close()
        await self.webhooks.close()
        await self.events.close()
        await self.sessions.close_all()
        await self.store.close()
        self.auth.close()
