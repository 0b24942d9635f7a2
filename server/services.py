"""The services a handler can reach, built once per application."""

from __future__ import annotations

from dataclasses import dataclass

from .auth import Authenticator
from .config import Config
from .delivery import Uploader
from .jobs import VideoService
from .limits import LoginGuard, RateLimiter
from .outgoing import OutgoingPolicy
from .reattach import Reattacher
from .retention import RetentionService
from .sessions import SessionManager
from .store import JobStore
from .webhooks import WebhookService


@dataclass
class Services:
    config: Config
    auth: Authenticator
    sessions: SessionManager
    jobs: JobStore
    videos: VideoService
    webhooks: WebhookService
    retention: RetentionService
    reattacher: Reattacher
    rate: RateLimiter
    logins: LoginGuard

    @classmethod
    def build(cls, config: Config) -> Services:
        jobs = JobStore(config.database)
        sessions_box: list[SessionManager] = []
        uploader = Uploader(jobs, lambda record: sessions_box[0].live_for(
            record.owner, record.hostname, record.port, record.username),
            OutgoingPolicy(config.outgoing))
        webhooks = WebhookService(jobs, config, uploader)
        videos = VideoService(jobs, webhooks, config.webhooks.default_timeout, config.limits)
        sessions = SessionManager(config, videos.on_agent_event)
        sessions_box.append(sessions)
        videos.sessions = sessions
        retention = RetentionService(jobs, config, videos, sessions)
        sessions.on_open = retention.sweep
        return cls(config, Authenticator(config), sessions, jobs, videos,
                   webhooks, retention, Reattacher(jobs, config, sessions, videos),
                   RateLimiter(config.limits.requests_per_minute),
                   LoginGuard(config.auth.max_failed_logins))

    def start(self) -> None:
        self.sessions.start()
        self.webhooks.start()
        self.retention.start()
        self.reattacher.start()

    async def close(self) -> None:
        await self.reattacher.close()
        await self.retention.close()
        await self.webhooks.close()
        await self.sessions.close_all()
        await self.jobs.close()
