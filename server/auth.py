"""Who is calling: single-user token mode (multi-user accounts come later).

The token is accepted as ``Authorization: token T``, ``Authorization: Bearer
T``, HTTP Basic with T as the password (Slycat's client), or ``?token=T``
once, which sets a signed cookie.  Every caller resolves to a user name that
owns the sessions and jobs it creates.
"""

from __future__ import annotations

import base64
import binascii
import hmac

SINGLE_USER = "owner"
COOKIE = "framewire_user"


class TokenAuthenticator:
    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def check(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self._token)

    def from_header(self, header: str | None) -> str | None:
        """The user named by an Authorization header, or None."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme in ("token", "bearer"):
            return SINGLE_USER if self.check(value) else None
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            _, _, password = decoded.partition(":")
            return SINGLE_USER if self.check(password) else None
        return None
