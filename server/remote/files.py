"""Files on a session's host: directory listings, one file's facts, and images
converted for a thumbnail (the agent's temporary, released once sent)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any

from .. import errors
from .sessions import RemoteSession
from .transport import ByteChannel

BROWSE_FILTERS = ("directory-reject", "directory-allow", "file-reject", "file-allow")
IMAGE_TYPES = ("image/png", "image/jpeg")


@dataclass
class RemoteFile:
    """A file on the remote host that can be streamed: where, how big, what."""

    path: str
    size: int
    content_type: str


class Thumbnail(RemoteFile):
    """An image as asked for: the file itself, or the agent's converted copy until
    :meth:`release` (called before the last bytes are sent, and again after)."""

    def __init__(self, session: RemoteSession, path: str, size: int, content_type: str,
                 temporary: bool) -> None:
        super().__init__(path, size, content_type)
        self.session = session
        self.pending = temporary

    async def release(self) -> None:
        if not self.pending:
            return
        self.pending = False
        try:
            await self.session.request("release", {"path": self.path}, timeout=30)
        except errors.FramewireError:
            pass  # the agent removes its leftovers when the session ends


def absolute(path: str) -> str:
    if not path.startswith("/"):
        raise errors.ValidationError("path", "The remote path must be absolute.")
    return path


class RemoteFiles:
    async def open(self, session: RemoteSession, file: RemoteFile, offset: int,
                   length: int) -> ByteChannel:
        """``length`` bytes of ``file`` from ``offset``, on a channel of their own."""
        return await session.transport.open_stream(file.path, offset, length)

    async def browse(self, session: RemoteSession, path: str,
                     filters: dict[str, Any]) -> dict[str, Any]:
        """Slycat's listing of a directory (the body of ``POST …/browse``)."""
        args: dict[str, Any] = {"path": absolute(path)}
        args.update({key: filters[key] for key in BROWSE_FILTERS if key in filters})
        return await session.request("browse", args)

    async def file(self, session: RemoteSession, path: str) -> RemoteFile:
        """A regular file the remote user may read, or the error saying why not."""
        info = await session.request("stat", {"path": absolute(path)})
        if info["type"] == "d":
            raise errors.RemotePathError(f"Can't read directory: {path}", code="is-directory",
                                         hint="Use POST /remotes/(sid)/browse for directories.")
        if not info["readable"]:
            raise errors.RemotePathError(f"Access denied: {path}", code="access-denied",
                                         hint="The remote user cannot read this file.")
        content_type = info.get("mime-type") or mimetypes.guess_type(path)[0] \
            or "application/octet-stream"
        return RemoteFile(path, int(info["size"]), content_type)

    async def image(self, session: RemoteSession, path: str, content_type: str | None,
                    limits: dict[str, int]) -> Thumbnail:
        """The image at ``path`` as ``content_type``, shrunk to fit ``limits``
        (``max-size``, ``max-width``, ``max-height``): release it once it is sent."""
        args: dict[str, Any] = {"path": absolute(path), **limits}
        if content_type is not None:
            if content_type not in IMAGE_TYPES:
                raise errors.ValidationError("content-type",
                                             "content-type must be image/png or image/jpeg.")
            args["content-type"] = content_type
        image = await session.request("read-image", args)
        return Thumbnail(session, image["path"], int(image["size"]), image["content_type"],
                         bool(image.get("temporary")))
