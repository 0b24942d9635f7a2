"""A real HTTP receiver on loopback for webhook and delivery tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers each request with the next code of ``plan`` (then ``default``)."""
    port: int
    plan: list[int] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    host: str = "127.0.0.1"
    location: str | None = None  # sent with 3xx answers
    hold: threading.Event | None = None  # when given, answers wait until it is set
    arrived: int = 0  # requests read, answered or not

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.arrived += 1
                if receiver.hold is not None:
                    receiver.hold.wait(60)
                code = receiver.plan.pop(0) if receiver.plan else receiver.default
                receiver.received.append(Received(self.command, self.path,
                                                  {k.lower(): v for k, v in self.headers.items()},
                                                  body, code))
                self.send_response(code)
                if 300 <= code < 400 and receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
