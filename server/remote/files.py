"""Files on a session's host: directory listings, one file's facts, images
converted for a thumbnail (the agent's temporary, released once sent), and
thumbnails in batches (the agent's cached JPEGs, inline)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any

from .. import errors
from .sessions import RemoteSession
from .transport import ByteChannel

BROWSE_FILTERS = ("directory-reject", "directory-allow", "file-reject", "file-allow")
IMAGE_TYPES = ("image/png", "image/jpeg")
# A batch of thumbnails (agent/thumbnails.py checks the same bounds).
MAX_THUMBNAILS = 200
THUMBNAIL_SIZES = (16, 1024)
DEFAULT_THUMBNAIL_SIZE = 96
# Pixels of one answer at most (200 thumbnails of 256 px): at 1024 px, 12.
THUMBNAIL_PIXELS = MAX_THUMBNAILS * 256 * 256
# The agent gives a batch's conversions 120 s, then answers for what is left.
THUMBNAILS_TIMEOUT = 150.0


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

    async def thumbnails(self, session: RemoteSession, body: dict[str, Any]) -> dict[str, Any]:
        """JPEG thumbnails of up to 200 images (the body of ``POST …/thumbnails``), one
        item per path in order; an image that fails is an item with its error."""
        paths = body.get("paths")
        if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_THUMBNAILS:
            raise errors.ValidationError(
                "paths", f"paths must be a list of 1 to {MAX_THUMBNAILS} absolute paths.")
        for index, path in enumerate(paths):
            if not isinstance(path, str) or not path.startswith("/"):
                raise errors.ValidationError(f"paths.{index}",
                                             f"paths.{index} must be an absolute path.")
        size = body.get("max-size")
        if size is None:
            size = DEFAULT_THUMBNAIL_SIZE
        low, high = THUMBNAIL_SIZES
        if not isinstance(size, int) or isinstance(size, bool) or not low <= size <= high:
            raise errors.ValidationError(
                "max-size", f"max-size must be a whole number of pixels from {low} to {high}.")
        most = max(1, THUMBNAIL_PIXELS // (size * size))
        if len(paths) > most:  # the answer is held whole, here and on the agent
            raise errors.ValidationError(
                "paths", f"At max-size {size}, ask for at most {most} thumbnails per request.",
                hint="Split the paths over several requests, or ask for smaller thumbnails.")
        answer = await session.request("thumbnails", {"paths": paths, "max-size": size},
                                       timeout=THUMBNAILS_TIMEOUT)
        return {"thumbnails": answer.get("thumbnails", [])}
