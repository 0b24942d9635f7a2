"""POST /remotes, GET and DELETE /remotes/(sid)."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from typing import Any

from .. import errors
from ..audit import audit, short
from ..remote.sessions import RemoteSession
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


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
REMOTE_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")


def check_hostname(hostname: str, allowed: list[str]) -> str:
    """A DNS name or an IP address this server may connect to."""
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        if len(hostname) > 253 or not HOSTNAME.match(hostname):
            raise errors.ValidationError(
                "hostname", "hostname must be a DNS name such as cluster.example.org or an "
                            "IP address.") from None
    if not any(fnmatch.fnmatchcase(hostname.lower(), pattern.lower()) for pattern in allowed):
        raise errors.ValidationError(
            "hostname", f"This server does not connect to {hostname}.",
            hint=f"Allowed hosts: {', '.join(allowed)} ([ssh] allowed_hosts).")
    return hostname


class RemotesHandler(ApiHandler):
    async def get(self) -> None:
        """The caller's open sessions, newest first: a page reloaded, or opened in a
        second tab, goes on with one instead of logging in to the host again."""
        self.write_json({"remotes": [
            session.info(self.services.sessions.idle_timeout)
            for session in self.services.sessions.of_owner(self.user)]})

    async def post(self) -> None:
        body = self.json_body()
        if "challenge" in body:
            await self._answer(body)
            return
        hostname = _text(body, "hostname", required=True)
        assert hostname is not None
        local = self.services.sessions.is_local(hostname)
        if not local:
            check_hostname(hostname, self.services.config.ssh.allowed_hosts)
        # Without a username, the host's profile or ~/.ssh/config may name one.
        username = _text(body, "username", required=False) or ""
        if username and not REMOTE_USER.match(username):
            raise errors.ValidationError(
                "username", "username must be 1 to 64 letters, digits, '_', '.', '@' or "
                            "'-' (not starting with '.', '@' or '-').")
        password = _text(body, "password", required=False)
        port = body.get("port", 22)
        if isinstance(port, str) and port.isascii() and port.isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise errors.ValidationError("port", "port must be a number from 1 to 65535.")
        agent = body.get("agent")
        if agent is not None and not isinstance(agent, bool):
            raise errors.ValidationError("agent", "agent must be true, false or null.")
        try:
            session = await self.services.sessions.create(
                self.user, hostname, port, username, password, want_agent=agent is not False)
        except errors.FramewireError as error:
            if not isinstance(error, errors.AuthChallenge):
                audit("session-refused", user=self.user, host=hostname, port=port,
                      username=username, code=error.code)
            raise
        finally:
            del password
        self._created(session)

    async def _answer(self, body: dict[str, Any]) -> None:
        """The answers to a keyboard-interactive challenge."""
        challenge = body.get("challenge")
        if not isinstance(challenge, str) or not challenge.isascii() or len(challenge) > 64:
            raise errors.ValidationError("challenge", "challenge must be the id a 401 "
                                         "answer of POST /remotes gave.")
        try:
            session = await self.services.sessions.answer(self.user, challenge,
                                                          body.get("responses"))
        except errors.FramewireError as error:
            if not isinstance(error, errors.AuthChallenge):
                audit("session-refused", user=self.user, code=error.code)
            raise
        self._created(session)

    def _created(self, session: RemoteSession) -> None:
        audit("session-create", user=self.user, sid=short(session.sid),
              host=session.hostname, port=session.port, username=session.username,
              transport=session.transport_kind)
        self.set_header("Location", f"/remotes/{session.sid}")
        self.write_json({"sid": session.sid})


class RemoteHandler(ApiHandler):
    async def get(self, sid: str) -> None:
        session = self.services.sessions.get(self.user, sid)
        self.write_json(session.info(self.services.sessions.idle_timeout))

    async def delete(self, sid: str) -> None:
        await self.services.sessions.delete(self.user, sid)
        audit("session-delete", user=self.user, sid=short(sid))
        self.no_content()


SID = r"([^/]+)"
routes = [
    (r"/remotes/?", RemotesHandler),
    (rf"/remotes/{SID}/?", RemoteHandler),
]
