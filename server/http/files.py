"""Browse, files, images and batches of thumbnails on the remote host."""

from __future__ import annotations

from .. import errors
from .base import ApiHandler
from .remotes import SID
from .streaming import send_remote_file


class BrowseHandler(ApiHandler):
    async def post(self, sid: str, path: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        self.write_json(await self.services.files.browse(session, path, self.json_body()))


class FileHandler(ApiHandler):
    async def get(self, sid: str, path: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        found = await self.services.files.file(session, path)
        await send_remote_file(self, session, found)

    head = get


class ThumbnailsHandler(ApiHandler):
    async def post(self, sid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        self.write_json(await self.services.files.thumbnails(session, self.json_body()))


class ImageHandler(ApiHandler):
    async def get(self, sid: str, path: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        limits = {key: self.pixels_argument(key)
                  for key in ("max-size", "max-width", "max-height")
                  if self.get_query_argument(key, None) is not None}
        image = await self.services.files.image(
            session, path, self.get_query_argument("content-type", None), limits)
        try:
            await send_remote_file(self, session, image, before_end=image.release)
        finally:
            await image.release()

    head = get

    def pixels_argument(self, key: str) -> int:
        value = self.get_query_argument(key)
        if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < 1:
            raise errors.ValidationError(key, f"{key} must be a whole number of pixels "
                                              "from 1 to 999999999.")
        return int(value)


PATH = r"(/.*)"
routes = [
    (rf"/remotes/{SID}/browse{PATH}", BrowseHandler),
    (rf"/remotes/{SID}/file{PATH}", FileHandler),
    (rf"/remotes/{SID}/image{PATH}", ImageHandler),
    (rf"/remotes/{SID}/thumbnails/?", ThumbnailsHandler),
]
