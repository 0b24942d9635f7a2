"""The door (server/http/door.py): status polls answered from memory, byte for byte
what the handler answers, and everything else left to the handler untouched."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import requests
import tornado.netutil

from server.auth import SINGLE_USER
from server.http.access import DELAY
from server.http.app import http_options
from server.http.door import FramewireHTTPServer
from tests.fixtures import LiveServer, noise_frames


class Raw:
    """One HTTP/1.1 connection, written and read by hand."""

    def __init__(self, port: int, receive_buffer: int | None = None) -> None:
        self.socket = socket.socket()
        if receive_buffer is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.socket.settimeout(30)
        self.socket.connect(("127.0.0.1", port))
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def _more(self) -> bytes:
        chunk = self.socket.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed by the server")
        return chunk

    def answer(self, head_only: bool = False) -> tuple[str, dict[str, str], bytes]:
        """The next answer: its status line, headers (lower-case names), body."""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.head = head
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return lines[0], headers, body

    def closed(self) -> bool:
        """Whether the server closed the connection (nothing more comes)."""
        try:
            return self.socket.recv(1) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.socket.close()


def get(path: str, token: str, *extra: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}",
             *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def finished_job(server: LiveServer, images: Path, count: int = 8,
                 size: tuple[int, int] = (64, 48)) -> tuple[str, str]:
    sid = server.post_json("/remotes", {"hostname": "localhost"}).json()["sid"]
    response = server.post_json(f"/remotes/{sid}/videos", {
        "content-type": "video/mp4", "images": noise_frames(images, count, size)})
    assert response.status_code == 202, response.headers.get("X-Slycat-Message")
    vsid = response.json()["sid"]
    assert server.wait_video(sid, vsid)["status"] == "succeeded"
    return sid, vsid


Polled = tuple[LiveServer, str, str, str]


@pytest.fixture
def polled(local: tuple[LiveServer, str], images: Path) -> Polled:
    """A server, and a finished job's sid, vsid and status path."""
    server, _ = local
    sid, vsid = finished_job(server, images)
    return server, sid, vsid, f"/remotes/{sid}/videos/{vsid}/status"


def answered(server: LiveServer) -> int:
    door = server.server.door
    assert door is not None
    return door.answered


def test_a_poll_at_the_door_is_the_handlers_answer_byte_for_byte(
        polled: Polled, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="framewire.access")
    server, sid, vsid, path = polled
    raw = Raw(server.port)
    try:
        before = answered(server)
        raw.send(get(path, server.token))
        door_line, door_headers, door_body = raw.answer()
        door_head = raw.head
        assert answered(server) == before + 1
        # A query the handler ignores sends the same poll the handler's way.
        raw.send(get(path + "?cache=1", server.token))
        line, headers, body = raw.answer()
        assert answered(server) == before + 1
        assert (door_line, door_body) == (line, body) == ("HTTP/1.1 200 OK", body)
        # The same headers in the same order, the date aside.
        assert re.sub(rb"Date: [^\r]*", b"", door_head) == re.sub(rb"Date: [^\r]*", b"", raw.head)
        door_headers.pop("date"), headers.pop("date")
        assert door_headers == headers
        assert headers["content-type"] == "application/json; charset=UTF-8"
        assert headers["content-length"] == str(len(body))
        status = json.loads(body)
        assert status["status"] == "succeeded" and status["ready"] is True
        assert status["sid"] == vsid and status["frames_total"] == 8
        assert status["outputs"][0]["url"] == f"/remotes/{sid}/videos/{vsid}/outputs/video"
        # Once the handler's answer is out the door watches the connection again
        # (a request sent at once may still be the handler's), and answers Slycat's
        # own form of the path too.
        time.sleep(0.2)
        raw.send(get("/api" + path + "/", server.token))
        assert raw.answer()[2] == body
        assert answered(server) == before + 2
    finally:
        raw.close()
    time.sleep(DELAY + 0.3)  # the access log's lines go out in batches
    lines = [record.getMessage() for record in caplog.records
             if record.name == "framewire.access"]
    polls = [line for line in lines if f"{vsid[:6]}…/status" in line]
    assert len(polls) >= 3 and all(line.startswith("200 GET /") for line in polls), lines
    assert any(line.startswith("200 GET /api/remotes/") for line in polls)
    assert not any(sid in line or vsid in line for line in lines)


def test_the_door_leaves_everything_else_to_the_handler(polled: Polled) -> None:
    server, sid, vsid, path = polled
    raw = Raw(server.port)
    try:
        before = answered(server)
        raw.send(get(path, "wrong-token"))
        line, headers, body = raw.answer()
        assert line.startswith("HTTP/1.1 401 ") and headers["www-authenticate"]
        assert json.loads(body)["errors"][0]["code"] == "unauthorized"

        raw.send(get(f"/remotes/{sid}/videos/{'0' * 32}/status", server.token))
        line, _, body = raw.answer()
        assert line == "HTTP/1.1 404 Unknown video."
        assert json.loads(body)["errors"][0]["code"] == "unknown-video"

        raw.send(get(f"/remotes/{'0' * 32}/videos/{vsid}/status", server.token))
        assert raw.answer()[0] == "HTTP/1.1 404 Unknown or expired remote session."

        raw.send(get(path, server.token, method="HEAD"))
        assert raw.answer(head_only=True)[0].startswith("HTTP/1.1 405 ")

        raw.send(get(path + "?cache=1", server.token))
        etag = raw.answer()[1]["etag"]
        raw.send(get(path, server.token, f"If-None-Match: {etag}"))
        assert raw.answer()[0] == "HTTP/1.1 304 Not Modified"

        raw.send(get(path, server.token, "Content-Length: 2") + b"{}")
        assert raw.answer()[0] == "HTTP/1.1 200 OK"

        raw.send(get(path + "?block=true&timeout=5", server.token))
        assert json.loads(raw.answer()[2])["status"] == "succeeded"
        assert answered(server) == before

        raw.send(get(path, server.token, "Connection: close"))
        line, headers, body = raw.answer()
        assert line == "HTTP/1.1 200 OK" and json.loads(body)["sid"] == vsid
        assert raw.closed()
        assert answered(server) == before
    finally:
        raw.close()


def test_what_the_parser_would_refuse_the_door_leaves_to_it(polled: Polled) -> None:
    """A head the door is not sure of is Tornado's to read: a bad header name, an odd
    Host, a byte over 127, a head over the door's 16 kB."""
    server, sid, vsid, path = polled
    auth = f"Authorization: Bearer {server.token}"
    before = answered(server)
    for lines, expected in (
            ([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", auth, "Bad Name: x"], "400"),
            ([f"GET {path} HTTP/1.1", "Host: a b", auth], "400"),
            ([f"GET {path} HTTP/1.1", "Host: a,b", auth], "400"),
            ([f"GET {path} HTTP/1.1", auth], "400"),
            ([f"GET {path} HTTP/1.0", "Host: 127.0.0.1", auth], "200"),
            ([f"GET {path} HTTP/1.1", "Host: 127.0.0.1", auth, "X-Pad: " + "a" * 20_000],
             "200")):
        raw = Raw(server.port)
        try:
            raw.send(("\r\n".join(lines) + "\r\n\r\n").encode())
            assert raw.answer()[0].split(" ")[1] == expected, lines[1:]
        finally:
            raw.close()
    raw = Raw(server.port)
    try:
        raw.send(get(path, server.token)[:-2] + b"X-Name: caf\xc3\xa9\r\n\r\n")
        assert raw.answer()[0] == "HTTP/1.1 200 OK"  # UTF-8 in a value: the handler's
    finally:
        raw.close()
    assert answered(server) == before


def test_pipelined_polls_and_a_head_in_pieces(polled: Polled) -> None:
    server, sid, vsid, path = polled
    expected = server.request("GET", path).content
    raw = Raw(server.port)
    try:
        before = answered(server)
        # Two polls and a call for another route in one write: three answers, in order.
        raw.send(get(path, server.token) + get(path, server.token)
                 + get(f"/remotes/{sid}/videos/{vsid}/webhooks", server.token))
        assert raw.answer()[2] == expected
        assert raw.answer()[2] == expected
        line, _, body = raw.answer()
        assert line == "HTTP/1.1 200 OK" and isinstance(json.loads(body), dict)
        assert answered(server) == before + 2
        # A head that arrives in two pieces is read whole (by the handler).
        whole = get(path, server.token)
        raw.send(whole[:25])
        time.sleep(0.3)
        raw.send(whole[25:])
        assert raw.answer()[2] == expected
        time.sleep(0.2)
        raw.send(get(path, server.token))
        assert raw.answer()[2] == expected
    finally:
        raw.close()


def test_a_body_larger_than_the_socket_takes_is_sent_whole(
        local: tuple[LiveServer, str], images: Path) -> None:
    """A job of 1,500 listed frames has a status of about 65 kB, more than a 4 kB
    send buffer takes at once: the door's write is partial, Tornado sends the rest
    and then reads the next request."""
    server, _ = local
    sid, vsid = finished_job(server, images, count=1500, size=(16, 16))
    path = f"/remotes/{sid}/videos/{vsid}/status"
    expected = server.request("GET", path).content
    assert len(expected) > 60_000
    with second_server(server, send_buffer=4096) as (other, port):
        raw = Raw(port, receive_buffer=4096)
        try:
            assert other.door is not None
            for _ in range(3):
                raw.send(get(path, server.token))
                time.sleep(0.2)  # the buffers fill before anything is read
                line, headers, body = raw.answer()
                assert line == "HTTP/1.1 200 OK" and body == expected
                assert headers["content-length"] == str(len(expected))
                assert json.loads(body)["frames_total"] == 1500
                time.sleep(0.2)  # a poller's pause: the door has the connection back
            assert other.door.answered >= 2 and other.door.partial >= 2
        finally:
            raw.close()


def test_the_request_rate_and_failed_logins_at_the_door(
        make_server: Callable[..., LiveServer], images: Path) -> None:
    server = make_server(limits={"requests_per_minute": 600})
    sid, vsid = finished_job(server, images)
    path = f"/remotes/{sid}/videos/{vsid}/status"
    raw = Raw(server.port)
    try:
        # Ten failures of one wrong token: that token is paused, the right one is not.
        for _ in range(10):
            raw.send(get(path, "a-wrong-token"))
            assert raw.answer()[0].startswith("HTTP/1.1 401 ")
        raw.send(get(path, "a-wrong-token"))
        line, headers, _ = raw.answer()
        assert line.startswith("HTTP/1.1 429 ") and int(headers["retry-after"]) > 0
        before, started = answered(server), time.monotonic()
        left = server.services.rate._buckets[SINGLE_USER][0]  # the caller's bucket now
        polls = 0
        while polls < 700:  # the bucket holds 600: it runs out first
            raw.send(get(path, server.token))
            line, headers, body = raw.answer()
            if not line.startswith("HTTP/1.1 200 "):
                break
            polls += 1
        # The door counts each poll once, as the handler does: the polls that got
        # through are the bucket's tokens (and those refilled meanwhile, 10 a second).
        assert line.startswith("HTTP/1.1 429 ") and int(headers["retry-after"]) >= 1
        assert json.loads(body)["errors"][0]["code"] == "too-many-requests"
        assert answered(server) == before + polls
        assert int(left) <= polls <= left + 10 * (time.monotonic() - started) + 1
    finally:
        raw.close()


def test_a_revoked_token_is_refused_at_once(make_server: Callable[..., LiveServer],
                                            images: Path) -> None:
    from tests.server.test_accounts import basic, users_server

    server = users_server(make_server, ("alice", "alice-password", "user"),
                          local={"enabled": True})
    created = requests.post(server.url + "/tokens", json={"name": "poll"},
                            headers=basic("alice", "alice-password"), timeout=30).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    sid = requests.post(server.url + "/remotes", json={"hostname": "localhost"},
                        headers=bearer, timeout=60).json()["sid"]
    response = requests.post(server.url + f"/remotes/{sid}/videos", json={
        "content-type": "video/mp4", "images": noise_frames(images, 8, (64, 48))},
        headers=bearer, timeout=60)
    vsid = response.json()["sid"]
    path = f"/remotes/{sid}/videos/{vsid}/status"
    deadline = time.monotonic() + 60
    while requests.get(server.url + path, headers=bearer, timeout=30).json()["status"] \
            != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    raw = Raw(server.port)
    try:
        before = answered(server)
        raw.send(get(path, created["token"]))
        assert raw.answer()[0] == "HTTP/1.1 200 OK"
        assert answered(server) == before + 1  # a verified token, remembered
        assert requests.delete(server.url + f"/tokens/{created['id']}", headers=bearer,
                               timeout=30).status_code == 204
        raw.send(get(path, created["token"]))
        line, headers, _ = raw.answer()
        assert line.startswith("HTTP/1.1 401 ") and "framewire token create" in \
            headers["x-slycat-hint"]
        assert answered(server) == before + 1
    finally:
        raw.close()


@contextlib.contextmanager
def second_server(server: LiveServer, send_buffer: int | None = None,
                  **settings: Any) -> Iterator[tuple[FramewireHTTPServer, int]]:
    """Another HTTP server for ``server``'s app, on its loop: Tornado's ``settings``
    (idle_connection_timeout…), accepted sockets with a ``send_buffer`` of bytes."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    if send_buffer is not None:
        sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)

    async def start() -> FramewireHTTPServer:
        other = FramewireHTTPServer(server.app, **{**http_options(server.config), **settings})
        other.add_sockets(sockets)
        return other

    other = server.call(start())
    try:
        yield other, sockets[0].getsockname()[1]
    finally:
        server.call(stop_serving(other))


def test_idle_connections_close_and_a_stop_closes_the_rest(polled: Polled) -> None:
    server, sid, vsid, path = polled
    with second_server(server, idle_connection_timeout=0.5) as (other, port):
        idle, kept = Raw(port), Raw(port)
        try:
            for raw in (idle, kept):
                raw.send(get(path, server.token))
                assert raw.answer()[0] == "HTTP/1.1 200 OK"
            assert other.door is not None and other.door.answered == 2
            started = time.monotonic()
            for _ in range(6):  # kept busy past the idle timeout
                kept.send(get(path, server.token))
                assert kept.answer()[0] == "HTTP/1.1 200 OK"
                time.sleep(0.15)
            assert idle.closed() and time.monotonic() - started < 5
            kept.send(get(path, server.token))
            assert kept.answer()[0] == "HTTP/1.1 200 OK"
            assert other.door.answered == 9
            server.call(stop_serving(other))
            assert kept.closed()
        finally:
            idle.close()
            kept.close()


async def stop_serving(other: FramewireHTTPServer) -> None:
    other.stop()
    await other.close_all_connections()
