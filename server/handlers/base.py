"""The handler base: authentication, JSON bodies, and the one error renderer."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web

from .. import errors
from ..auth import COOKIE, SINGLE_USER, TokenAuthenticator
from ..services import Services

log = logging.getLogger(__name__)


def header_safe(text: str) -> str:
    """``text`` as one printable ASCII header line (paths may hold anything)."""
    if text.isascii() and text.isprintable():
        return text
    return json.dumps(text)[1:-1]


class ApiHandler(tornado.web.RequestHandler):
    services: Services

    def initialize(self, services: Services) -> None:
        self.services = services

    @property
    def auth(self) -> TokenAuthenticator:
        return self.services.auth

    def get_current_user(self) -> str | None:
        user = self.auth.from_header(self.request.headers.get("Authorization"))
        if user:
            return user
        token = self.get_query_argument("token", None)
        if token is not None and self.auth.check(token):
            self.set_signed_cookie(COOKIE, SINGLE_USER, httponly=True, samesite="Strict",
                                   secure=self.request.protocol == "https")
            return SINGLE_USER
        cookie = self.get_signed_cookie(COOKIE, max_age_days=30)
        return cookie.decode() if cookie else None

    async def prepare(self) -> None:
        if self.current_user is None:
            raise errors.Unauthorized(
                "Authentication required.",
                hint="Send the server token as 'Authorization: Bearer TOKEN' "
                     "(it is printed when the server starts).",
                headers={"WWW-Authenticate": 'Basic realm="framewire"'})

    @property
    def user(self) -> str:
        assert isinstance(self.current_user, str)
        return self.current_user

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise errors.BadRequest("The request body is not valid JSON.",
                                    hint="Send a JSON object with Content-Type: "
                                         "application/json.") from None
        if not isinstance(body, dict):
            raise errors.BadRequest("The request body must be a JSON object.")
        return body

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, errors.FramewireError):
            framewire_error = error
        elif isinstance(error, tornado.web.HTTPError):
            framewire_error = errors.FramewireError(
                error.log_message or self._reason, code=f"http-{status_code}")
            framewire_error.status = status_code
        else:
            framewire_error = errors.FramewireError(
                "Internal server error.", hint="The server log has the details.")
        self.set_status(framewire_error.status)
        self.clear_header("Content-Range")
        self.clear_header("Accept-Ranges")
        self.set_header("X-Slycat-Message", header_safe(framewire_error.message))
        if framewire_error.hint:
            self.set_header("X-Slycat-Hint", header_safe(framewire_error.hint))
        for name, value in framewire_error.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        body: dict[str, Any] = {"errors": framewire_error.errors()}
        if self.settings.get("serve_traceback") and not isinstance(
                error, errors.FramewireError) and "exc_info" in kwargs:
            import traceback
            body["traceback"] = traceback.format_exception(*kwargs["exc_info"])
        if self.request.method != "HEAD":
            self.finish(json.dumps(body))
        else:
            self.finish()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, errors.FramewireError):
            log.info("%s %s -> %d %s", self.request.method, self.request.path,
                     value.status, value.message)
        else:
            super().log_exception(typ, value, tb)
