"""Who is calling.

Two modes (``[auth] mode``):

- ``token`` (the default, for a laptop): one user, ``owner``, holding the
  server token.  The token is accepted as ``Authorization: Bearer T`` (or
  ``token T``), HTTP Basic with T as the password (Slycat's client), or
  ``?token=T`` once, which sets a login cookie.
- ``users``: accounts from the users file (scrypt hashes), per-user API
  tokens (``fwt_…``, stored hashed), HTTP Basic with a user's password, a
  login cookie from ``POST /login``, and optionally a header set by a trusted
  reverse proxy (``[auth] trusted_header``, off by default).

Every caller resolves to an :class:`Identity` whose name owns what it creates.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .config import Config
from .users import USERNAME, TokenStore, UserError, UserFile, verify_password

SINGLE_USER = "owner"
COOKIE = "framewire_user"
_CACHE_SECONDS = 300.0
# How long a verified Authorization header is taken again without a look-up (unless
# a token was revoked or the users file changed meanwhile, in any process).
HEADER_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Identity:
    name: str
    admin: bool
    via: str  # "bearer", "basic", "query", "cookie" or "header"


class Authenticator:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.multi_user = config.auth.mode == "users"
        self.users = UserFile(config.users_file)
        self.tokens = TokenStore(config.database)
        self._token = config.server.token.encode()
        # sha256(name, password) -> (valid until, password stamp): Basic auth on
        # every request must not cost an scrypt each time.  Memory only.
        self._verified: dict[str, tuple[float, str]] = {}
        # sha256(Authorization header) -> (valid until, users file and revocation
        # stamps then, identity): users mode only.
        self._headers: dict[bytes, tuple[float, Any, Identity]] = {}
        self._proxies = [ipaddress.ip_network(entry, strict=False)
                         for entry in config.auth.trusted_proxies]
        # scrypt (about 0.1 s and 32 MiB each) and the token table run here, off
        # the event loop; two at a time bounds the memory a burst of logins takes.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="framewire-auth")

    async def from_header_async(self, header: str) -> Identity | None:
        """:meth:`from_header`: at once when that is cheap (token mode: one constant-time
        comparison), else on the authentication threads, whose answers for a header
        are remembered for ``HEADER_CACHE_SECONDS`` (a status poll must not cost a
        thread hop and a token-table look-up each time)."""
        known = self.known_identity(header)
        if known is not None or not self.multi_user:
            return known
        stamp = self._stamp()  # before the look-up: a revocation meanwhile is not missed
        identity = await asyncio.get_running_loop().run_in_executor(
            self._pool, self.from_header, header)
        if identity is not None:
            if len(self._headers) > 10_000:
                self._headers.clear()
            self._headers[_header_key(header)] = (time.monotonic() + HEADER_CACHE_SECONDS,
                                                  stamp, identity)
        return identity

    def known_identity(self, header: str) -> Identity | None:
        """The caller an Authorization header names when that is known at once: token
        mode's constant-time comparison, or a header verified in the last
        ``HEADER_CACHE_SECONDS`` in users mode (unless a token was revoked or the users
        file changed since).  None in users mode means "look it up", not "refused"."""
        if not self.multi_user:
            return self.from_header(header)
        cached = self._headers.get(_header_key(header))
        if cached is None or cached[0] <= time.monotonic() or cached[1] != self._stamp():
            return None
        return cached[2]

    def _stamp(self) -> tuple[Any, int]:
        """Changes with the users file and with every token revocation."""
        return self.users.stamp(), self.tokens.stamp()

    def close(self) -> None:
        """Stop the authentication threads (after the server stopped serving)."""
        self._pool.shutdown(wait=True)

    async def password_login_async(self, name: str, password: str) -> Identity | None:
        """:meth:`password_login` on the authentication threads."""
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.password_login, name, password)

    def presented(self, header: str) -> str:
        """Who an Authorization header claims to be, unverified: ``user:NAME`` for
        Basic in users mode, else a digest of the secret it carries (the failed-login
        pause is per address and per this)."""
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "basic":
            try:
                name, _, secret = base64.b64decode(value, validate=True).decode(
                    "utf-8").partition(":")
            except (binascii.Error, ValueError):
                return "malformed"
            return self.presented_login(name, secret)
        return secret_digest(value)

    def presented_login(self, name: str, secret: str) -> str:
        """The identity a name and password claim (see :meth:`presented`)."""
        if self.multi_user:
            return "user:" + name[:64]
        return secret_digest(secret)  # token mode: the name is anything

    # -- token mode -------------------------------------------------------
    def check(self, candidate: str | None) -> bool:
        """Is ``candidate`` the single-user server token?"""
        return (not self.multi_user and candidate is not None
                and hmac.compare_digest(candidate.encode(), self._token))

    # -- every way in -----------------------------------------------------
    def from_header(self, header: str | None) -> Identity | None:
        """The caller named by an Authorization header, or None."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme in ("token", "bearer"):
            if self.multi_user:
                owner = self.tokens.owner_of(value)
                user = self.users.get(owner) if owner else None
                return Identity(user.name, user.is_admin, "bearer") if user else None
            return self._owner("bearer") if self.check(value) else None
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):  # not base64 (or not ASCII), or not UTF-8
                return None
            name, _, password = decoded.partition(":")
            return self.password_login(name, password, via="basic")
        return None

    def password_login(self, name: str, password: str, via: str = "cookie") -> Identity | None:
        if not self.multi_user:
            return self._owner(via) if self.check(password) else None
        try:
            user = self.users.get(name) if USERNAME.match(name) else None
        except UserError:
            return None
        if user is None:
            verify_password(password, _DUMMY)  # same time for unknown and known names
            return None
        key = hashlib.sha256(f"{name}\0{password}".encode()).hexdigest()
        now = time.monotonic()
        cached = self._verified.get(key)
        if cached is None or cached[0] < now or cached[1] != user.stamp:
            if not verify_password(password, user.password_hash):
                return None
            if len(self._verified) > 10000:
                self._verified.clear()
            self._verified[key] = (now + _CACHE_SECONDS, user.stamp)
        return Identity(user.name, user.is_admin, via)

    def cookie_value(self, identity: Identity) -> str:
        if not self.multi_user:
            return SINGLE_USER
        user = self.users.get(identity.name)
        return f"{identity.name}:{user.stamp}" if user else ""

    def from_cookie(self, value: str) -> Identity | None:
        if not self.multi_user:
            return self._owner("cookie") if value == SINGLE_USER else None
        name, _, stamp = value.partition(":")
        try:
            user = self.users.get(name)
        except UserError:
            return None
        if user is not None and hmac.compare_digest(stamp, user.stamp):
            return Identity(name, user.is_admin, "cookie")
        return None

    def from_proxy(self, remote_ip: str | None, value: str | None) -> Identity | None:
        """The user a trusted reverse proxy names, when that is configured."""
        if not (self.multi_user and self.config.auth.trusted_header and value
                and remote_ip and USERNAME.match(value)):
            return None
        try:
            address = ipaddress.ip_address(remote_ip)
        except ValueError:
            return None
        if not any(address in network for network in self._proxies):
            return None
        try:
            user = self.users.get(value)
        except UserError:
            user = None
        return Identity(value, bool(user and user.is_admin), "header")

    def _owner(self, via: str) -> Identity:
        return Identity(SINGLE_USER, True, via)


_DUMMY = ("scrypt$32768$8$1$" + base64.b64encode(b"framewire-dummy!").decode() + "$"
          + base64.b64encode(b"\0" * 32).decode())


def _header_key(header: str) -> bytes:
    return hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()


def secret_digest(secret: str) -> str:
    """A short digest of a presented secret, to count its failures (never logged)."""
    return "secret:" + hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()[:16]


def server_secret(config: Config) -> bytes:
    """The key that signs cookies and webhook secrets.

    Token mode derives it from the token (so it is never stored).  Users
    mode takes ``[auth] secret_key`` or generates one into the data
    directory (mode 0600), like an SSH host key.
    """
    if config.auth.mode != "users":
        return config.server.token.encode()
    if config.auth.secret_key:
        return config.auth.secret_key.encode()
    path = os.path.join(config.server.data_dir, "secret_key")
    try:
        with open(path, "rb") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(config.server.data_dir, mode=0o700, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
