"""Byte-range mode: copy part of a file to stdout, for HTTP downloads.

The server starts ``agent.pyz stream`` on a channel of its own and writes one
JSON line to its stdin: ``{"path", "offset", "length"}``.  The path never
appears on a command line, so no shell can see it.
"""

import json
import os
import sys
from typing import Any, Dict  # noqa: F401 (type comments)

CHUNK = 1 << 20


def main(stdin, stdout):
    # type: (Any, Any) -> int
    try:
        request = json.loads(stdin.readline().decode("utf-8"))  # type: Dict[str, Any]
        path = request["path"]
        offset = int(request.get("offset", 0))
        length = request.get("length")
        fd = os.open(path, os.O_RDONLY)
    except (ValueError, KeyError, TypeError) as error:
        sys.stderr.write("framewire-agent stream: bad request: %s\n" % error)
        return 2
    except OSError as error:
        sys.stderr.write("framewire-agent stream: %s\n" % error)
        return 1
    try:
        remaining = int(length) if length is not None else os.fstat(fd).st_size - offset
        out = stdout.fileno()
        stdout.flush()
        try:
            _sendfile(fd, out, offset, remaining)
        except OSError:
            _copy(fd, out, offset, remaining)
    except BrokenPipeError:
        return 0
    finally:
        os.close(fd)
    return 0


def _sendfile(fd, out, offset, remaining):
    # type: (int, int, int, int) -> None
    sent_any = False
    while remaining > 0:
        try:
            sent = os.sendfile(out, fd, offset, min(remaining, CHUNK * 8))
        except OSError:
            if sent_any:
                raise BrokenPipeError() from None
            raise
        if sent == 0:
            return
        sent_any = True
        offset += sent
        remaining -= sent


def _copy(fd, out, offset, remaining):
    # type: (int, int, int, int) -> None
    os.lseek(fd, offset, os.SEEK_SET)
    while remaining > 0:
        data = os.read(fd, min(remaining, CHUNK))
        if not data:
            return
        view = memoryview(data)
        while view:
            written = os.write(out, view)
            view = view[written:]
        remaining -= len(data)
