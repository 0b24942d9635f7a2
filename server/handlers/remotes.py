"""POST /remotes, GET and DELETE /remotes/(sid)."""

from __future__ import annotations

from typing import Any

from .. import errors
from .base import ApiHandler


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise errors.ValidationError(name, f"{name} is required.")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise errors.ValidationError(name, f"{name} must be a non-empty string.")
    if "\x00" in value or "\n" in value or "\r" in value or len(value) > 1024:
        raise errors.ValidationError(name, f"{name} contains characters that are not allowed.")
    return value


class RemotesHandler(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        hostname = _text(body, "hostname", required=True)
        assert hostname is not None
        local = self.services.sessions.is_local(hostname)
        username = _text(body, "username", required=not local) or ""
        password = _text(body, "password", required=False)
        port = body.get("port", 22)
        if isinstance(port, str) and port.isascii() and port.isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise errors.ValidationError("port", "port must be a number from 1 to 65535.")
        agent = body.get("agent")
        if agent is not None and not isinstance(agent, bool):
            raise errors.ValidationError("agent", "agent must be true, false or null.")
        session = await self.services.sessions.create(
            self.user, hostname, port, username, password, want_agent=agent is not False)
        del password
        self.set_header("Location", f"/remotes/{session.sid}")
        self.write_json({"sid": session.sid})


class RemoteHandler(ApiHandler):
    async def get(self, sid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        self.write_json(session.info(self.services.sessions.idle_timeout))

    async def delete(self, sid: str) -> None:
        await self.services.sessions.delete(self.user, sid)
        self.set_status(204)
        self.finish()


SID = r"([^/]+)"
routes = [
    (r"/remotes/?", RemotesHandler),
    (rf"/remotes/{SID}/?", RemoteHandler),
]
