"""Slycat's video calls: create, status, and the video itself."""

from __future__ import annotations

from .base import ApiHandler
from .remotes import SID
from .streaming import send_remote_file


class VideosHandler(ApiHandler):
    async def post(self, sid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        vsid = await self.services.videos.create(session, self.json_body())
        self.set_header("Location", f"/remotes/{sid}/videos/{vsid}")
        self.write_json({"sid": vsid}, status=202)


class VideoStatusHandler(ApiHandler):
    async def get(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        self.write_json(await self.services.videos.status(session, vsid))


class OutputHandler(ApiHandler):
    async def get(self, sid: str, vsid: str, name: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        output = await self.services.videos.output(session, vsid, name)
        await send_remote_file(self, session, output["path"], output["size"],
                               output["content_type"])

    head = get


class VideoHandler(ApiHandler):
    async def get(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        output = await self.services.videos.output(session, vsid)
        await send_remote_file(self, session, output["path"], output["size"],
                               output["content_type"])

    head = get

    async def delete(self, sid: str, vsid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        await self.services.videos.delete(session, vsid)
        self.set_status(204)
        self.finish()


VSID = r"([^/]+)"
routes = [
    (rf"/remotes/{SID}/videos/?", VideosHandler),
    (rf"/remotes/{SID}/videos/{VSID}/status/?", VideoStatusHandler),
    (rf"/remotes/{SID}/videos/{VSID}/outputs/([^/]+)/?", OutputHandler),
    (rf"/remotes/{SID}/videos/{VSID}/?", VideoHandler),
]
