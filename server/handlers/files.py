"""Browse, files and images on the remote host."""

from __future__ import annotations

import mimetypes
from typing import Any

from .. import errors
from ..agent_client import AgentError
from ..sessions import RemoteSession, agent_error
from .base import ApiHandler
from .remotes import SID
from .streaming import send_remote_file


async def ask(session: RemoteSession, command: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        return await session.request(command, args)
    except AgentError as error:
        raise agent_error(error) from None


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise errors.ValidationError("path", "The remote path must be absolute.")
    return path


class BrowseHandler(ApiHandler):
    async def post(self, sid: str, path: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        body = self.json_body()
        args: dict[str, Any] = {"path": _absolute(path)}
        for key in ("directory-reject", "directory-allow", "file-reject", "file-allow"):
            if key in body:
                args[key] = body[key]
        self.write_json(await ask(session, "browse", args))


class FileHandler(ApiHandler):
    async def get(self, sid: str, path: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        info = await ask(session, "stat", {"path": _absolute(path)})
        if info["type"] == "d":
            raise errors.RemotePathError(f"Can't read directory: {path}", code="is-directory",
                                         hint="Use POST /remotes/(sid)/browse for directories.")
        if not info["readable"]:
            raise errors.RemotePathError(f"Access denied: {path}", code="access-denied",
                                         hint="The remote user cannot read this file.")
        content_type = info.get("mime-type") or mimetypes.guess_type(path)[0] \
            or "application/octet-stream"
        await send_remote_file(self, session, path, info["size"], content_type)

    head = get


class ImageHandler(ApiHandler):
    async def get(self, sid: str, path: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        args: dict[str, Any] = {"path": _absolute(path)}
        wanted = self.get_query_argument("content-type", None)
        if wanted is not None:
            if wanted not in ("image/png", "image/jpeg"):
                raise errors.ValidationError("content-type",
                                             "content-type must be image/png or image/jpeg.")
            args["content-type"] = wanted
        for key in ("max-size", "max-width", "max-height"):
            value = self.get_query_argument(key, None)
            if value is None:
                continue
            if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < 1:
                raise errors.ValidationError(key, f"{key} must be a whole number of pixels "
                                                  "from 1 to 999999999.")
            args[key] = int(value)
        image = await ask(session, "read-image", args)
        pending = bool(image.get("temporary"))

        async def release() -> None:
            nonlocal pending
            if not pending:
                return
            pending = False
            try:
                await session.request("release", {"path": image["path"]}, timeout=30)
            except Exception:  # the agent removes its leftovers when the session ends
                pass

        try:
            await send_remote_file(self, session, image["path"], image["size"],
                                   image["content_type"], before_end=release)
        finally:
            await release()

    head = get


PATH = r"(/.*)"
routes = [
    (rf"/remotes/{SID}/browse{PATH}", BrowseHandler),
    (rf"/remotes/{SID}/file{PATH}", FileHandler),
    (rf"/remotes/{SID}/image{PATH}", ImageHandler),
]
