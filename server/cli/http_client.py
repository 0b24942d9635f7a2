"""A small client of framewire's HTTP API for the command line (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, BinaryIO, Callable, Iterator

CHUNK = 1 << 20


class ApiError(Exception):
    """An error answer (or no answer) of the server: message, hint, body."""

    def __init__(self, status: int, message: str, hint: str | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.body = body or {}
        errors = self.body.get("errors") or [{}]
        self.code = errors[0].get("code", "") if isinstance(errors[0], dict) else ""


class Client:
    def __init__(self, server: str, token: str) -> None:
        self.server = server.rstrip("/")
        self.token = token

    def _request(self, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None,
                 timeout: float = 330.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                parsed = json.loads(raw) if raw else {}
            except ValueError:
                parsed = {}
            raise ApiError(error.code, error.headers.get("X-Slycat-Message")
                           or f"The server answered {error.code}.",
                           error.headers.get("X-Slycat-Hint"),
                           parsed if isinstance(parsed, dict) else {}) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, f"Cannot reach the framewire server at {self.server}: {reason}",
                           "Start it with framewire serve, or pass --server URL.") from None

    def call(self, method: str, path: str, body: Any = None, timeout: float = 330.0) -> Any:
        with self._request(method, path, body, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def events(self, sid: str, vsid: str) -> Iterator[dict[str, Any]]:
        """A job's statuses as they change (the NDJSON progress stream); it stops
        early at an ``end`` event (the stream could not go on, the job does)."""
        response = self._request("GET", f"/remotes/{sid}/videos/{vsid}/events",
                                 headers={"Accept": "application/x-ndjson"}, timeout=600)
        with response:
            for line in response:
                if not line.strip():
                    continue
                message = json.loads(line)
                if message.get("event") == "end":
                    return
                yield message["data"]

    def download(self, url: str, into: BinaryIO,
                 progress: Callable[[int, int], None] | None = None) -> int:
        with self._request("GET", url, timeout=600) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                into.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        return done
