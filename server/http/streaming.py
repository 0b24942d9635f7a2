"""Send a remote file to the client: real byte ranges, streamed, never buffered."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from tornado.iostream import StreamClosedError

from .. import errors
from ..remote.files import RemoteFile
from ..remote.sessions import RemoteSession
from .base import ApiHandler

log = logging.getLogger(__name__)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte of a single range, or None for all.

    Multiple ranges and malformed headers are ignored (RFC 9110 allows a
    server to answer those with the whole file); an unsatisfiable range
    raises RangeNotSatisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix range: the last N bytes
        length = int(last_text)
        if length == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - length), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise _unsatisfiable(header, size)
    return first, min(last, size - 1)


def _unsatisfiable(header: str, size: int) -> errors.RangeNotSatisfiable:
    return errors.RangeNotSatisfiable(
        "Requested range not satisfiable.",
        hint=f"The file is {size} bytes; ranges start below {size}.",
        headers={"Content-Range": f"bytes */{size}"})


async def send_remote_file(handler: ApiHandler, session: RemoteSession, file: RemoteFile,
                           before_end: Callable[[], Awaitable[None]] | None = None,
                           gone: errors.FramewireError | None = None) -> None:
    """Answer GET or HEAD with ``file`` on the session's host.

    ``before_end`` runs before the last bytes go out, so a client holding the whole
    body finds its clean-up (a temporary file released) already done.  ``gone`` is
    the answer when the remote stream ends before its first byte (nothing has gone
    out yet): a file that may vanish at any moment, such as a running job's
    preview, then gets an error in words rather than a cut connection.
    """
    path, size = file.path, file.size
    handler.set_header("Accept-Ranges", "bytes")
    handler.set_header("Content-Type", file.content_type)
    selected = parse_range(handler.request.headers.get("Range"), size)
    if selected is None:
        first, last = 0, size - 1
    else:
        first, last = selected
        handler.set_status(206)
        handler.set_header("Content-Range", f"bytes {first}-{last}/{size}")
    length = last - first + 1 if size else 0
    handler.set_header("Content-Length", str(length))
    if handler.request.method == "HEAD" or length == 0:
        if before_end is not None:
            await before_end()
        handler.finish()
        return
    channel = await handler.services.files.open(session, file, first, length)
    sent = 0
    try:
        while sent < length:
            chunk = await channel.read(min(1 << 20, length - sent))
            if not chunk:
                break
            if sent + len(chunk) >= length and before_end is not None:
                await before_end()
            handler.write(chunk)
            await handler.flush()
            sent += len(chunk)
    except StreamClosedError:
        return  # the client went away; stop reading
    except ConnectionError as error:
        log.warning("stream of %s failed: %s", path, error)
    finally:
        channel.close()
    if sent < length:
        log.warning("stream of %d bytes ended after %d: %s", length, sent,
                    (await channel.stderr_tail())[-300:])
        if sent == 0 and gone is not None:
            raise gone  # no header has been written: an ordinary error answer
        # Headers are gone already: cut the connection so the client sees it.
        handler.request.connection.close()  # type: ignore[union-attr]
        return
    handler.finish()
