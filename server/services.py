"""The services a handler can reach, built once per application."""

from __future__ import annotations

from dataclasses import dataclass

from .auth import TokenAuthenticator
from .config import Config
from .jobs import VideoService
from .sessions import SessionManager
from .store import JobStore


@dataclass
class Services:
    config: Config
    auth: TokenAuthenticator
    sessions: SessionManager
    jobs: JobStore
    videos: VideoService

    @classmethod
    def build(cls, config: Config) -> Services:
        jobs = JobStore(config.database)
        videos = VideoService(jobs)
        sessions = SessionManager(config, videos.on_agent_event)
        return cls(config, TokenAuthenticator(config.server.token), sessions, jobs, videos)

    def start(self) -> None:
        self.sessions.start()

    async def close(self) -> None:
        await self.sessions.close_all()
        await self.jobs.close()
