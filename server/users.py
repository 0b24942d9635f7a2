"""Accounts for multi-user mode: the users file, password hashes and API tokens.

The users file is TOML that ``framewire user add/passwd/remove`` writes::

    [users."alice"]
    password = "scrypt$16384$8$1$<salt>$<hash>"
    role = "admin"

Passwords are stored only as scrypt hashes.  API tokens
(``framewire token create``) look like ``fwt_<id>_<secret>``; the job store
keeps their id, owner, name and the SHA-256 of the secret, never the token.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")
USERNAME_RULE = ("1 to 64 letters, digits, '_', '.', '@' or '-', not starting with "
                 "'.', '@' or '-'")
ROLES = ("user", "admin")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024

# scrypt at n=2**15, r=8, p=1: ~0.1 s and 32 MiB per check on a laptop core.
_N, _R, _P = 1 << 15, 8, 1


class UserError(Exception):
    """A wrong user name, password or users file; the message says how to fix it."""


def check_username(name: str) -> str:
    if not isinstance(name, str) or not USERNAME.match(name):
        raise UserError(f"user name {name!r} is not allowed: use {USERNAME_RULE}.")
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    return password


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P,
                            maxmem=64 << 20, dklen=32)
    return "$".join(("scrypt", str(_N), str(_R), str(_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), maxmem=128 << 20, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def stamp(self) -> str:
        """Changes with the password: login cookies carry it and die with a new one."""
        return hashlib.sha256(self.password_hash.encode()).hexdigest()[:12]


def _quote(text: str) -> str:
    """A TOML basic string."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


class UserFile:
    """The users file, re-read whenever it changes on disk."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._users: dict[str, User] = {}

    def stamp(self) -> tuple[int, int] | None:
        """The users file's modification time and size (None: no file)."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def users(self) -> dict[str, User]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._users = None, {}
            return {}
        stamp = (info.st_mtime, info.st_size)
        if stamp != self._stamp:
            self._users = self._read()
            self._stamp = stamp
        return self._users

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def _read(self) -> dict[str, User]:
        try:
            with open(self.path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as error:
            raise UserError(f"cannot read the users file {self.path}: {error.strerror}") \
                from None
        except tomllib.TOMLDecodeError as error:
            raise UserError(f"the users file {self.path} is not valid TOML: {error}") from None
        table = data.get("users", {})
        if not isinstance(table, dict):
            raise UserError(f"{self.path}: [users] must be a table of users")
        users = {}
        for name, entry in table.items():
            check_username(name)
            if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
                raise UserError(f"{self.path}: users.{name} needs a password hash "
                                "(set one with framewire user passwd)")
            role = entry.get("role", "user")
            if role not in ROLES:
                raise UserError(f"{self.path}: users.{name}.role must be user or admin")
            users[name] = User(name, role, entry["password"])
        return users

    def save(self, users: dict[str, User]) -> None:
        """Write atomically, readable by the server's account only."""
        lines = ["# framewire users: edit with `framewire user add/passwd/remove`.", ""]
        for user in sorted(users.values(), key=lambda u: u.name):
            lines += [f"[users.{_quote(user.name)}]", f"password = {_quote(user.password_hash)}",
                      f"role = {_quote(user.role)}", ""]
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".users-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("\n".join(lines))
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            os.unlink(temp)
            raise
        self._stamp = None

    def add(self, name: str, password: str, role: str = "user") -> None:
        users = dict(self.users())
        if check_username(name) in users:
            raise UserError(f"user {name} exists; change the password with "
                            f"framewire user passwd {name}")
        users[name] = User(name, role, hash_password(check_password(password)))
        self.save(users)

    def set_password(self, name: str, password: str) -> None:
        users = dict(self.users())
        user = self._existing(users, name)
        users[name] = User(name, user.role, hash_password(check_password(password)))
        self.save(users)

    def set_role(self, name: str, role: str) -> None:
        users = dict(self.users())
        user = self._existing(users, name)
        users[name] = User(name, role, user.password_hash)
        self.save(users)

    def remove(self, name: str) -> None:
        users = dict(self.users())
        self._existing(users, name)
        del users[name]
        self.save(users)

    def _existing(self, users: dict[str, User], name: str) -> User:
        if name not in users:
            raise UserError(f"no user {name} in {self.path}; add one with "
                            f"framewire user add {name}")
        return users[name]


_TOKENS = """
CREATE TABLE IF NOT EXISTS api_tokens (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
CREATE INDEX IF NOT EXISTS api_tokens_owner ON api_tokens (owner);
"""
TOKEN = re.compile(r"^fwt_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """Per-user API tokens, stored hashed in the server's SQLite file."""

    def __init__(self, database: str) -> None:
        self.database = database
        # Touched whenever a token is revoked, by any process (the server, or
        # framewire token revoke): a server that remembers verified tokens sees it.
        self.marker = database + ".revoked"
        self._touched: dict[str, float] = {}
        self._ready = False

    def stamp(self) -> int:
        """When a token was last revoked (0: never); cheap enough for every request."""
        try:
            return os.stat(self.marker).st_mtime_ns
        except OSError:
            return 0

    def _revoked(self) -> None:
        with open(self.marker, "a"):
            pass
        os.utime(self.marker)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction on a connection that is closed afterwards."""
        if not self._ready:  # the table, once per process
            os.makedirs(os.path.dirname(self.database) or ".", mode=0o700, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as db:
                db.executescript(_TOKENS)
            self._ready = True
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as db, db:
            yield db

    def create(self, owner: str, name: str) -> tuple[str, str]:
        """A new token (shown once) and its id."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        with self._connect() as db:
            db.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?, ?, NULL)",
                       (token_id, owner, name, _digest(secret), time.time()))
        return f"fwt_{token_id}_{secret}", token_id

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, owner, name, created, last_used FROM api_tokens "
                + ("WHERE owner = ? " if owner is not None else "") + "ORDER BY created",
                (owner,) if owner is not None else ()).fetchall()
        return [{"id": row[0], "user": row[1], "name": row[2], "created": row[3],
                 "last_used": row[4]} for row in rows]

    def revoke(self, token_id: str, owner: str | None = None) -> bool:
        with self._connect() as db:
            cursor = db.execute(
                "DELETE FROM api_tokens WHERE id = ?" + (" AND owner = ?" if owner else ""),
                (token_id, owner) if owner else (token_id,))
        if cursor.rowcount > 0:
            self._revoked()
        return cursor.rowcount > 0

    def revoke_all(self, owner: str) -> int:
        with self._connect() as db:
            count = int(db.execute("DELETE FROM api_tokens WHERE owner = ?",
                                   (owner,)).rowcount)
        if count:
            self._revoked()
        return count

    def owner_of(self, token: str) -> str | None:
        """The user a token belongs to, or None for a wrong or revoked token."""
        match = TOKEN.match(token)
        if not match:
            return None
        token_id, secret = match.groups()
        with self._connect() as db:
            row = db.execute("SELECT owner, digest FROM api_tokens WHERE id = ?",
                             (token_id,)).fetchone()
            if row is None or not hmac.compare_digest(row[1], _digest(secret)):
                return None
            now = time.time()
            if now - self._touched.get(token_id, 0.0) > 60:
                self._touched[token_id] = now
                db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, token_id))
        return str(row[0])
