"""Login and logout, who am I, API tokens, and the admin's lists."""

from __future__ import annotations

import base64
import binascii
import html
from typing import Any
from urllib.parse import urlsplit

import tornado.web

from .. import errors
from ..audit import audit
from ..auth import COOKIE
from ..jobs.service import find_page
from ..jobs.views import admin_view
from ..records import iso
from ..users import USERNAME
from .base import ApiHandler
from .paging import next_page, page_arguments, states_argument

MAX_TOKEN_NAME = 100


def _local_path(target: str | None) -> str:
    """Only a path on this server may follow a login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return "/"
    try:
        if urlsplit(target).netloc:
            return "/"
    except ValueError:  # "/[" and the like: not a URL at all
        return "/"
    return target


class LoginHandler(ApiHandler):
    """``GET /login`` is the form; ``POST /login`` takes a form or JSON.

    A form post carries the ``_xsrf`` field (login CSRF); a JSON post needs
    none, since no foreign page can make a browser send one.
    """

    async def prepare(self) -> None:
        try:
            self.limit_body()
        except errors.FramewireError as refusal:
            self.refuse(refusal)

    def _check_form_xsrf(self) -> None:
        if self._is_json():
            return
        try:
            tornado.web.RequestHandler.check_xsrf_cookie(self)
        except tornado.web.HTTPError:
            raise errors.Forbidden("The login form is out of date.", code="xsrf",
                                   hint="Reload /login and try again.") from None

    def _is_json(self) -> bool:
        content_type = self.request.headers.get("Content-Type", "")
        return content_type.split(";")[0].strip().lower() == "application/json"

    async def get(self) -> None:
        self._page("", status=200)

    def _page(self, message: str, status: int) -> None:
        template = (self.settings["web_root"] / "login.html").read_text(encoding="utf-8")
        multi = self.auth.multi_user
        values = {
            "xsrf": html.escape(self.xsrf_token.decode()),
            "next": html.escape(_local_path(self.get_argument("next", "/"))),
            "message": html.escape(message),
            "message_hidden": "" if message else "hidden",
            "user_hidden": "" if multi else "hidden",
            "secret_label": "Password" if multi else "Server token",
        }
        for key, value in values.items():
            template = template.replace("{{" + key + "}}", value)
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(template)

    async def post(self) -> None:
        self._check_form_xsrf()
        address = self.request.remote_ip or "?"
        logins = self.services.logins
        if self._is_json():
            body = self.json_body()
            name, secret = body.get("username", ""), body.get("password", "")
            if not isinstance(name, str) or not isinstance(secret, str):
                raise errors.BadRequest("username and password must be strings.")
        else:
            name = self.get_body_argument("username", "")
            secret = self.get_body_argument("password", "")
        claimed = self.auth.presented_login(name or "", secret or "")
        logins.check(address, claimed)
        if self.auth.multi_user and not USERNAME.match(name or ""):
            identity = None
        else:
            identity = await self.auth.password_login_async(name, secret)
        del secret
        if identity is None:
            logins.failed(address, claimed)
            audit("login-failed", user=name if USERNAME.match(name or "") else "?",
                  via="login", ip=address)
            message = ("Wrong user name or password." if self.auth.multi_user
                       else "Wrong server token.")
            if self._is_json():
                raise errors.Unauthorized(message, code="login-failed",
                                          hint="Check the user name and password.")
            self._page(message, status=401)
            return
        logins.succeeded(address, claimed)
        self.sign_in(identity)
        audit("login", user=identity.name, via="login", ip=address)
        if self._is_json():
            self.write_json({"user": identity.name, "role": "admin" if identity.admin
                             else "user"})
        else:
            self.redirect(_local_path(self.get_argument("next", "/")), status=303)

    def get_body_argument(self, name: str, default: Any = None,
                          strip: bool = True) -> Any:
        if not hasattr(self, "_form"):
            from urllib.parse import parse_qs
            try:
                self._form = parse_qs(self.body.decode("utf-8"), max_num_fields=20)
            except (UnicodeDecodeError, ValueError):
                self._form = {}
        values = self._form.get(name)
        return values[0] if values else default

    def get_argument(self, name: str, default: Any = None,
                     strip: bool = True) -> Any:
        if self.request.method == "POST" and not self._is_json():
            value = self.get_body_argument(name, None)
            if value is not None:
                return value
        return self.get_query_argument(name, default)


class SlycatLoginHandler(ApiHandler):
    """``POST /api/login``, the login of Slycat's client (``slycat.web.client``).

    The body is ``{"user_name": base64(NAME), "password": base64(SECRET)}``: an
    account's name and password in users mode, any name with the server token in
    token mode.  Success sets the login cookie ``/login`` sets; a failure is a
    404 with no cookie at all, because the client takes any cookie as success.
    """

    async def prepare(self) -> None:
        try:
            self.limit_body()
        except errors.FramewireError as refusal:
            self.refuse(refusal)

    async def post(self) -> None:
        body = self.json_body()
        name, secret = _base64_text(body, "user_name"), _base64_text(body, "password")
        address = self.request.remote_ip or "?"
        logins = self.services.logins
        claimed = self.auth.presented_login(name or "", secret or "")
        logins.check(address, claimed)
        identity = None
        if name is not None and secret is not None and (
                not self.auth.multi_user or USERNAME.match(name)):
            identity = await self.auth.password_login_async(name, secret)
        del secret
        if identity is None:
            logins.failed(address, claimed)
            audit("login-failed", user=name if name and USERNAME.match(name) else "?",
                  via="slycat-login", ip=address)
            raise errors.NotFound(
                "Wrong user name or password." if self.auth.multi_user
                else "Wrong server token.", code="login-failed",
                hint="Send user_name and password base64-encoded; in token mode the "
                     "password is the server token.")
        logins.succeeded(address, claimed)
        self.sign_in(identity)
        audit("login", user=identity.name, via="slycat-login", ip=address)
        self.write_json({"success": True, "target": "/"})


def _base64_text(body: dict[str, Any], field: str) -> str | None:
    """A base64-encoded UTF-8 string of the Slycat login body, or None."""
    value = body.get(field)
    if not isinstance(value, str) or len(value) > 4096:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # not base64 (or not ASCII), or not UTF-8
        return None


class LogoutHandler(ApiHandler):
    async def post(self) -> None:
        self.clear_cookie(COOKIE)
        audit("logout", user=self.user, ip=self.request.remote_ip)
        self.no_content()


class MeHandler(ApiHandler):
    async def get(self) -> None:
        identity = self.identity
        assert identity is not None
        self.xsrf_token  # the UI reads the _xsrf cookie this sets  # noqa: B018
        self.write_json({"user": identity.name, "role": "admin" if identity.admin else "user",
                         "mode": self.services.config.auth.mode, "via": identity.via})


def _token_name(body: dict[str, Any]) -> str:
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME or not name.isprintable():
        raise errors.ValidationError("name", f"name must be printable text of at most "
                                     f"{MAX_TOKEN_NAME} characters.")
    return name


class TokenAccess(ApiHandler):
    """API tokens exist only in users mode."""

    def _require_users_mode(self) -> None:
        if not self.auth.multi_user:
            raise errors.BadRequest(
                "This server runs in single-user token mode.", code="single-user-mode",
                hint="Use the server token; API tokens exist with [auth] mode = \"users\".")


class TokensHandler(TokenAccess):
    async def get(self) -> None:
        self._require_users_mode()
        tokens = self.auth.tokens.list(self.user)
        self.write_json({"tokens": [{"id": t["id"], "name": t["name"],
                                     "created": iso(t["created"]),
                                     "last_used": iso(t["last_used"])} for t in tokens]})

    async def post(self) -> None:
        self._require_users_mode()
        name = _token_name(self.json_body())
        token, token_id = self.auth.tokens.create(self.user, name)
        audit("token-create", user=self.user, token=token_id)
        self.set_header("Location", f"/tokens/{token_id}")
        self.set_header("Cache-Control", "no-store")
        self.write_json({"id": token_id, "name": name, "token": token}, status=201)


class TokenHandler(TokenAccess):
    async def delete(self, token_id: str) -> None:
        self._require_users_mode()
        if not self.auth.tokens.revoke(token_id, self.user):
            raise errors.NotFound("Unknown token.", code="unknown-token",
                                  hint="GET /tokens lists yours.")
        audit("token-revoke", user=self.user, token=token_id)
        self.no_content()


class AdminSessionsHandler(ApiHandler):
    async def get(self) -> None:
        self.require_admin()
        self.write_json({"sessions": [session.admin_view()
                                      for session in self.services.sessions.live()]})


class AdminVideosHandler(ApiHandler):
    async def get(self) -> None:
        self.require_admin()
        owner = self.get_query_argument("user", None)
        if owner is not None and not USERNAME.match(owner):
            raise errors.ValidationError("user", f"user must be a user name, got {owner!r}.")
        limit, before = page_arguments(self)
        records, more = await find_page(self.services.store, owner, before, limit,
                                        states=states_argument(self))
        self.write_json({"next": next_page(self, more),
                         "videos": [admin_view(record) for record in records]})


routes = [
    (r"/login/?", LoginHandler),
    (r"/logout/?", LogoutHandler),
    (r"/me/?", MeHandler),
    (r"/tokens/?", TokensHandler),
    (r"/tokens/([0-9a-f]{12})/?", TokenHandler),
    (r"/admin/sessions/?", AdminSessionsHandler),
    (r"/admin/videos/?", AdminVideosHandler),
]
