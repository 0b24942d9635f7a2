"""The short way for the busiest request: a status poll answered from memory.

Scripts and Slycat's client poll ``GET …/status`` several times a second per job,
and the agent's pushed events keep every followed job's status current in the
server (server/jobs/service.py), so the answer is a look-up and a cached body.
Tornado's request path around that look-up costs several times more CPU than
the look-up itself (bench/load.py prints both).

:class:`FramewireHTTPServer` is Tornado's HTTP server with a door on each plain
HTTP connection.  Between requests the door peeks at what arrived (``MSG_PEEK``:
nothing is taken from the socket).  A request it can answer exactly as the
handler would (a whole ``GET …/status`` head, no body, no query, one
Authorization header whose caller is known at once, a live session, a status
known without waiting, within the caller's request rate) it takes off the socket
and answers: the same status line, headers, body and access-log line.  Anything
else (another route, a body, a cookie-only browser, a wrong token, a 404, a head
still arriving) it leaves where it is, and Tornado reads that request as it
always does: every refusal and every error is the handler's.  After Tornado's
answer the door watches again, once nothing is left in Tornado's buffers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Any

import tornado
import tornado.web
from tornado import httputil, iostream
from tornado.http1connection import (
    HTTP1Connection,
    HTTP1ConnectionParameters,
    HTTP1ServerConnection,
)
from tornado.httpserver import HTTPServer, _HTTPRequestContext

from ..config import Config
from ..errors import FramewireError
from ..services import Services
from .access import AccessLog
from .app import http_options
from .base import JSON_TYPE

log = logging.getLogger(__name__)

_STATUS = re.compile(
    rb"(?:/api)?/remotes/([A-Za-z0-9_-]{1,128})/videos/([A-Za-z0-9_-]{1,128})/status/?")
# What the door reads is a strict subset of what Tornado's parser accepts; anything
# else (a control character, a CR or LF not in a CRLF, a byte over 127, a header
# name that is not a token, an unusual Host) has the parser's word on it.
_UNUSUAL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]|\r(?!\n)|(?<!\r)\n")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):(.*)")
_HOST = re.compile(rb"(?:[A-Za-z0-9.-]+|\[::1\])(?::[0-9]{1,5})?")
# A poll's head is about 300 bytes.  Under this the handler's own count of a head
# (base.py's limit_headers, at most 1.2 times the raw size) is never a 431.
DOOR_HEAD_BYTES = 16 << 10
# Headers that change what the answer is, or what follows the head.
_LONG_WAY = frozenset((b"content-length", b"transfer-encoding", b"expect", b"upgrade",
                       b"if-none-match", b"if-match", b"if-modified-since"))
_STREAM_INSIDES = ("_read_buffer_size", "_state")  # of Tornado's IOStream, read by the door


def _parse(head: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """``(target, sid, vsid, authorization)`` of a status poll the door may answer."""
    if _UNUSUAL.search(head):
        return None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
        return None
    match = _STATUS.fullmatch(parts[1])
    if match is None:
        return None
    authorization: bytes | None = None
    hosts = 0
    for line in lines[1:]:
        header = _HEADER.fullmatch(line)
        if header is None:
            return None  # not a header line, or a folded one
        name, value = header.group(1).lower(), header.group(2).strip(b" \t")
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name == b"host":
            hosts += 1
            if _HOST.fullmatch(value) is None:
                return None
        elif name == b"connection":
            if value.strip().lower() != b"keep-alive":
                return None
        elif name in _LONG_WAY:
            return None
    if hosts != 1 or not authorization:
        return None
    return parts[1], match.group(1), match.group(2), authorization


class StatusDoor:
    """Answers the status polls it can, from ``services`` (see the module's text)."""

    def __init__(self, services: Services, access: AccessLog) -> None:
        self.services, self.access = services, access
        self.answered = 0  # polls answered here: tests and benchmarks read it
        self.partial = 0  # of which Tornado sent the end (the client read slowly)
        self._date: tuple[int, bytes] = (0, b"")
        self._server = f"TornadoServer/{tornado.version}".encode()

    def answer(self, head: bytes, remote_ip: str, started: float) -> bytes | None:
        """The whole HTTP answer to ``head`` (without its final CRLF CRLF), or None:
        leave the request to the handler."""
        request = _parse(head)
        if request is None:
            return None
        target, sid, vsid, authorization = request
        services = self.services
        header = authorization.decode("latin-1")
        logins = services.logins
        if not logins.quiet and logins.wait(remote_ip, services.auth.presented(header)):
            return None  # the handler says 429, and why
        identity = services.auth.known_identity(header)
        if identity is None or not services.rate.allows(identity.name):
            return None  # the handler's 429 (nothing spent here, nothing touched)
        try:
            session = services.sessions.get(identity.name, sid.decode())
        except FramewireError:
            return None  # the handler's answer, in its words
        known = services.jobs.known_status(session, vsid.decode())
        if known is None:
            return None
        body = known.body
        services.rate.hit(identity.name)  # allowed a moment ago, on this thread
        response = b"".join((
            b"HTTP/1.1 200 OK\r\nServer: ", self._server,
            b"\r\nContent-Type: ", JSON_TYPE.encode(),
            b"\r\nDate: ", self._now(),
            b'\r\nEtag: "', known.sha1.encode(), b'"',  # Tornado's: the SHA-1 of the body
            b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        self.answered += 1
        self.access.write(200, "GET", target.decode("latin-1"), time.monotonic() - started)
        return response

    def _now(self) -> bytes:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, httputil.format_timestamp(now).encode())
        return self._date[1]



class _Watch:
    """The door on one connection between two of Tornado's requests.

    Resolves ``done`` with True when a request is left to Tornado (nothing of it
    read), False when the connection ended (closed by the client, idle past the
    server's idle timeout, or a socket error).
    """

    def __init__(self, door: StatusDoor, stream: iostream.IOStream, remote_ip: str,
                 idle_timeout: float) -> None:
        self.door, self.stream, self.remote_ip = door, stream, remote_ip
        self.idle_timeout = idle_timeout
        self.loop = asyncio.get_running_loop()
        self.socket: socket.socket = stream.socket
        self.fd = self.socket.fileno()
        self.done: asyncio.Future[bool] = self.loop.create_future()
        self.unsent: asyncio.Future[None] | None = None  # the rest of a partial answer
        self.last = time.monotonic()
        self._timer = self.loop.call_later(idle_timeout, self._idle)
        self.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.socket.recv(DOOR_HEAD_BYTES + 4, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.end(False)
            return
        if not data:
            self.end(False)  # the client closed
            return
        end = data.find(b"\r\n\r\n")
        started = time.monotonic()
        try:
            response = self.door.answer(data[:end], self.remote_ip, started) \
                if end > 0 else None
        except Exception:  # a bug here must not hang the connection: the handler's way
            log.exception("the door failed on a request from %s", self.remote_ip)
            response = None
        if response is None:
            self.end(True)
            return
        self.last = started
        try:
            taken = self.socket.recv(end + 4)  # the head just peeked at, whole in the buffer
        except OSError:
            taken = b""
        if len(taken) != end + 4:
            log.warning("a connection from %s lost its place in its requests; closed",
                        self.remote_ip)
            self.end(False)
            return
        try:
            sent = self.socket.send(response)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.end(False)
            return
        if sent < len(response):
            self.door.partial += 1
            # Tornado sends the rest; its next request is read once that is out.
            self.unsent = self.stream.write(response[sent:])
            self.end(True)

    def _idle(self) -> None:
        left = self.last + self.idle_timeout - time.monotonic()
        if left > 0:
            self._timer = self.loop.call_later(left, self._idle)
        else:
            self.end(False)

    def end(self, go_on: bool) -> None:
        if self.done.done():
            return
        self.loop.remove_reader(self.fd)
        self._timer.cancel()
        self.done.set_result(go_on)


class DoorConnection(HTTP1ServerConnection):
    """Tornado's HTTP/1.1 server connection, with the door between its requests."""

    def __init__(self, stream: iostream.IOStream, params: HTTP1ConnectionParameters,
                 context: _HTTPRequestContext, door: StatusDoor, remote_ip: str) -> None:
        super().__init__(stream, params, context)
        self.door, self.remote_ip = door, remote_ip
        self._watch: _Watch | None = None

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.end(False)
        await super().close()

    def _quiet(self) -> bool:
        """Nothing of the client's in Tornado's read buffer, nothing of ours unsent;
        then Tornado stops listening on the socket (it listens while idle, to see a
        close) and the door watches it.  Tornado's stream registers again at its next
        read (6.x: ``_state`` None means "not registered")."""
        stream = self.stream
        if stream._read_buffer_size or stream.writing() or stream.closed():
            return False
        if stream._state is not None:
            stream.io_loop.remove_handler(stream.fileno())
            stream._state = None
        return True

    async def _watched(self) -> bool:
        """The door's turn: True once it leaves a request to Tornado, False when the
        connection has ended (and is closed)."""
        go_on = False
        try:
            self._watch = _Watch(self.door, self.stream, self.remote_ip,
                                 self.params.header_timeout or 3600.0)
            go_on = await self._watch.done
            if go_on and self._watch.unsent is not None:
                await self._watch.unsent
        except iostream.StreamClosedError:
            go_on = False
        finally:
            if self._watch is not None:
                self._watch.end(False)
                self._watch = None
            if not go_on:
                self.stream.close()
        return go_on

    async def _server_request_loop(  # Tornado's loop (6.x), the door added
            self, delegate: httputil.HTTPServerConnectionDelegate) -> None:
        try:
            quiet = self._quiet()
            while True:
                if quiet and not await self._watched():
                    return
                conn = HTTP1Connection(self.stream, False, self.params, self.context)
                request_delegate = delegate.start_request(self, conn)
                try:
                    ret = await conn.read_response(request_delegate)
                except (iostream.StreamClosedError, iostream.UnsatisfiableReadError,
                        asyncio.CancelledError):
                    return
                except Exception:
                    log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not ret:
                    return
                # At once, before the loop reads the socket again: a client that sends
                # its next request the moment it has this answer finds the door.
                quiet = self._quiet()
                if not quiet:
                    await asyncio.sleep(0)  # as Tornado does between pipelined requests
        finally:
            delegate.on_close(self)


class FramewireHTTPServer(HTTPServer):
    """Tornado's HTTPServer, with :class:`StatusDoor` on plain-HTTP connections of
    a framewire app (TLS connections, and other apps, are Tornado's alone)."""

    door: StatusDoor | None

    def initialize(self, request_callback: Any, *args: Any, **kwargs: Any) -> None:
        super().initialize(request_callback, *args, **kwargs)
        settings = getattr(request_callback, "settings", {})
        services = settings.get("framewire_services")
        self.access: AccessLog | None = settings.get("framewire_access")
        self.door = None
        if services is not None and self.access is not None and not self.xheaders \
                and not self.conn_params.no_keep_alive:
            self.door = StatusDoor(services, self.access)

    def stop(self) -> None:
        super().stop()
        self.flush_log()

    async def close_all_connections(self) -> None:
        await super().close_all_connections()
        self.flush_log()

    def flush_log(self) -> None:
        """Write the access-log lines still waiting (access.py)."""
        if self.access is not None:
            self.access.flush()

    def handle_stream(self, stream: iostream.IOStream, address: tuple[Any, ...]) -> None:
        if self.door is None or type(stream) is not iostream.IOStream:
            super().handle_stream(stream, address)
            return
        if not all(hasattr(stream, name) for name in _STREAM_INSIDES):
            log.warning("this Tornado's IOStream has no %s: status polls take the "
                        "handler's way", " or ".join(_STREAM_INSIDES))
            self.door = None
            super().handle_stream(stream, address)
            return
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        connection = DoorConnection(stream, self.conn_params, context, self.door,
                                    context.remote_ip)
        self._connections.add(connection)
        connection.start_serving(self)


def make_server(app: tornado.web.Application, config: Config,
                ssl_options: Any = None) -> FramewireHTTPServer:
    """The HTTP server for ``app``, with the server's settings (app.http_options)."""
    return FramewireHTTPServer(app, ssl_options=ssl_options, **http_options(config))
