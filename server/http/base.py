"""The handler base: authentication, JSON bodies, and the one error renderer."""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.web

from .. import errors
from ..audit import audit, redact
from ..auth import COOKIE, SINGLE_USER, Authenticator, Identity
from ..services import Services

log = logging.getLogger(__name__)
DISCARD_CAP = 64 << 20  # bytes read and dropped to answer 413 cleanly
MAX_JSON_DEPTH = 32  # nesting levels of a request body; no option needs more than 6
MAX_HEADER_BYTES = 64 << 10  # a request line and headers over this are a 431
HEADER_READ_LIMIT = 1 << 20  # the HTTP server reads this much of them, then closes
MAX_REASON = 300  # characters of a message in the status line
EMPTY_TYPE = "text/plain; charset=UTF-8"  # the Content-Type of a success without a body
JSON_TYPE = "application/json; charset=UTF-8"


def header_safe(text: str) -> str:
    """``text`` as one printable ASCII header line (paths may hold anything)."""
    if text.isascii() and text.isprintable():
        return text
    return json.dumps(text)[1:-1]


def reason_phrase(message: str) -> str:
    """``message`` as an HTTP reason phrase, as Slycat's server sends its errors
    (``403 Remote authentication failed.``): one printable ASCII line, no ``<``
    (Tornado refuses it), shortened."""
    text = header_safe(message).replace("<", "(").replace(">", ")")
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def _surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_json(data: Any) -> None:
    """Refuse a parsed body nested deeper than ``MAX_JSON_DEPTH`` or holding a string
    that is not text (a lone UTF-16 surrogate such as ``"\\ud800"``: valid JSON,
    but no file name or option can hold it), naming where (no recursion)."""
    level: list[tuple[Any, int, str]] = [(data, 1, "")]
    while level:
        value, depth, where = level.pop()
        items: Any = value.items() if isinstance(value, dict) else \
            enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            field = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and _surrogate(key):
                raise _not_text(where or "body", "a name in it")
            if isinstance(child, str) and _surrogate(child):
                raise _not_text(field, "it")
            if isinstance(child, (dict, list)):
                if depth + 1 > MAX_JSON_DEPTH:
                    raise _too_deep()
                level.append((child, depth + 1, field))


def _not_text(field: str, what: str) -> errors.ValidationError:
    return errors.ValidationError(
        field, f"{field} is not text: {what} holds a lone UTF-16 surrogate (such as "
               "\\ud800), which no file name or option can contain.",
        hint="Send the string as UTF-8 text; \\ud83d\\ude00 pairs are fine, halves are not.")


@tornado.web.stream_request_body
class ApiHandler(tornado.web.RequestHandler):
    """Every API call: who is calling (or 401), the XSRF check for browsers,
    the per-user request rate (429) and the body size limit (413).

    Bodies stream in (``stream_request_body``) so an oversized one is refused
    from its Content-Length before it is read.
    """

    services: Services
    _identity: Identity | None
    _identified = False
    _discard = False

    def initialize(self, services: Services) -> None:
        self.services = services
        self._chunks: list[bytes] = []

    @property
    def auth(self) -> Authenticator:
        return self.services.auth

    @property
    def identity(self) -> Identity | None:
        if not self._identified:
            self._identity = self._identify()
            self._identified = True
        return self._identity

    async def _identify_from_header(self, header: str) -> None:
        """Identify an Authorization header's caller, off the event loop.

        A wrong Authorization header never falls back to a cookie.
        """
        address = self.request.remote_ip or "?"
        claimed = self.auth.presented(header)
        self.services.logins.check(address, claimed)
        identity = await self.auth.from_header_async(header)
        if identity is None:
            self.services.logins.failed(address, claimed)
            audit("login-failed", via=header.partition(" ")[0].lower()[:16], ip=address)
        self._identity, self._identified = identity, True

    def _identify(self) -> Identity | None:
        """Every other way in (each cheap): ``?token=``, a proxy header, the cookie."""
        if self.request.headers.get("Authorization"):
            return None  # identified in prepare(); never a fallback to the cookie
        auth = self.auth
        token = self.get_query_argument("token", None)
        if token is not None and auth.check(token):
            identity = Identity(SINGLE_USER, True, "query")
            self.sign_in(identity)
            return identity
        if auth.config.auth.trusted_header:
            proxied = auth.from_proxy(self.request.remote_ip,
                                      self.request.headers.get(auth.config.auth.trusted_header))
            if proxied is not None:
                return proxied
        cookie = self.get_signed_cookie(COOKIE, max_age_days=auth.config.auth.login_days)
        if cookie:
            try:
                return auth.from_cookie(cookie.decode())
            except UnicodeDecodeError:
                return None
        return None

    def sign_in(self, identity: Identity) -> None:
        """Set the login cookie."""
        days = self.auth.config.auth.login_days
        self.set_signed_cookie(COOKIE, self.auth.cookie_value(identity), expires_days=days,
                               httponly=True, samesite="Lax",
                               secure=self.request.protocol == "https")

    def get_current_user(self) -> str | None:
        identity = self.identity
        return identity.name if identity else None

    def check_xsrf_cookie(self) -> None:
        """Done in :meth:`prepare` (see :meth:`admit`)."""

    def _check_xsrf(self) -> None:
        """Browsers (login cookie, proxy header) send the ``_xsrf`` cookie's
        value back in ``X-XSRFToken``.  A request that authenticates with an
        ``Authorization`` header (Bearer, or Basic as Slycat's clients send it)
        needs nothing: the server never answers with a Basic challenge, so no
        browser holds credentials it would attach to a forged request."""
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return
        identity = self.identity
        if identity is None or identity.via in ("bearer", "basic", "query"):
            return
        try:
            super().check_xsrf_cookie()
        except tornado.web.HTTPError:
            raise errors.Forbidden(
                "The XSRF token is missing or wrong.", code="xsrf",
                hint="Send the value of the _xsrf cookie in an X-XSRFToken header (the web "
                     "UI does); API clients can use Authorization: Bearer TOKEN instead.") \
                from None

    async def prepare(self) -> None:
        try:
            self.limit_headers()
            header = self.request.headers.get("Authorization")
            if header:
                await self._identify_from_header(header)
            self.admit()
        except errors.FramewireError as refusal:
            self.refuse(refusal)

    def admit(self) -> None:
        """Who is calling, the XSRF check, the request rate and the body size."""
        if self.current_user is None:
            # Never a Basic challenge: a browser would ask for a password, keep it
            # and attach it to every request, forged ones included (see _check_xsrf).
            # Clients that use Basic send it without being asked.
            raise errors.Unauthorized(
                "Authentication required.",
                hint=self._login_hint(),
                headers={"WWW-Authenticate": 'Bearer realm="framewire"'})
        self._check_xsrf()
        self.services.rate.hit(self.user)
        self.limit_body()

    def refuse(self, refusal: errors.FramewireError) -> None:
        """Answer with ``refusal`` once the request's body is read and dropped.

        Answering before the body arrives would make Tornado close the
        connection, which clients see as a reset instead of the answer.
        A body over ``DISCARD_CAP`` is not worth reading: refused at once.
        """
        length = self.request.headers.get("Content-Length", "0")
        connection = self.request.connection
        if not (length.isascii() and length.isdigit() and int(length) <= DISCARD_CAP) \
                or connection is None or not self.request.method:
            raise refusal
        self._discard = True
        connection.set_max_body_size(max(int(length), 1))  # type: ignore[attr-defined]

        async def answer(*args: Any) -> None:
            raise refusal
        setattr(self, self.request.method.lower(), answer)

    def _login_hint(self) -> str:
        if self.auth.multi_user:
            return ("Log in at /login, or send an API token (framewire token create) as "
                    "'Authorization: Bearer TOKEN'.")
        return ("Send the server token as 'Authorization: Bearer TOKEN' "
                "(it is printed when the server starts).")

    def limit_headers(self) -> None:
        """431 for a request line and headers over ``MAX_HEADER_BYTES`` (the server
        reads up to ``HEADER_READ_LIMIT`` to say so; past that it closes)."""
        size = len(self.request.uri or "") + sum(
            len(name) + len(value) + 4 for name, value in self.request.headers.get_all())
        if size > MAX_HEADER_BYTES:
            raise errors.HeadersTooLarge(
                f"The request's headers are {size} bytes; the limit is {MAX_HEADER_BYTES}.",
                hint="Send fewer or shorter headers (a cookie jar grown large, a long "
                     "Authorization value?).")

    def limit_body(self) -> None:
        """Refuse a body over ``[limits] max_body_bytes`` from its Content-Length."""
        limit = self.services.config.limits.max_body_bytes
        length = self.request.headers.get("Content-Length")
        if length is not None and not (length.isascii() and length.isdigit()):
            raise errors.BadRequest(
                f"The Content-Length header is invalid: {length[:40]!r} is not a number "
                "of bytes.", code="bad-content-length",
                hint="Send the body's length in bytes, or leave the header to the client.")
        if length is not None and int(length) > limit:
            raise errors.PayloadTooLarge(
                f"The request body is over the limit of {limit} bytes.",
                hint="Send fewer images per request, or use an images pattern "
                     "({\"directory\", \"pattern\"}) instead of a list.")
        if self.request.connection is not None:
            self.request.connection.set_max_body_size(limit)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        if not self._discard:
            self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        return b"".join(self._chunks)

    @property
    def user(self) -> str:
        assert isinstance(self.current_user, str)
        return self.current_user

    def require_admin(self) -> None:
        if not (self.identity and self.identity.admin):
            raise errors.Forbidden("This needs the admin role.", code="admin-required",
                                   hint="An admin sets roles with framewire user role NAME "
                                        "admin.")

    def json_body(self) -> dict[str, Any]:
        body = self.body
        if not body:
            return {}
        try:
            data = json.loads(body)
        except RecursionError:
            raise _too_deep() from None
        except (ValueError, UnicodeDecodeError):
            raise errors.BadRequest("The request body is not valid JSON.",
                                    hint="Send a JSON object with Content-Type: "
                                         "application/json.") from None
        check_json(data)
        if not isinstance(data, dict):
            raise errors.BadRequest("The request body must be a JSON object.")
        return data

    def no_content(self) -> None:
        """204: done, nothing to say (with a Content-Type, as Slycat's server sends)."""
        self.set_status(204)
        self.finish()

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
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
        self.set_status(framewire_error.status, reason=reason_phrase(framewire_error.message))
        self.clear_header("Content-Range")
        self.clear_header("Accept-Ranges")
        self.set_header("X-Slycat-Message", header_safe(framewire_error.message))
        if framewire_error.hint:
            self.set_header("X-Slycat-Hint", header_safe(framewire_error.hint))
        for name, value in framewire_error.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", JSON_TYPE)
        body: dict[str, Any] = {**framewire_error.body, "errors": framewire_error.errors()}
        if self.settings.get("serve_traceback") and not isinstance(
                error, errors.FramewireError) and "exc_info" in kwargs:
            import traceback
            body["traceback"] = traceback.format_exception(*kwargs["exc_info"])
        if self.request.method != "HEAD":
            self.finish(json.dumps(body))
        else:
            self.finish()

    def _clear_representation_headers(self) -> None:
        """Keep a Content-Type on a 204, as Slycat's server does: its client reads
        the header of every success (Tornado drops it from bodiless answers)."""
        if self.get_status() == 204:
            self.set_header("Content-Type", EMPTY_TYPE)
            self.clear_header("Content-Encoding")
            self.clear_header("Content-Language")
            return
        super()._clear_representation_headers()

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, errors.FramewireError):
            log.info("%s %s -> %d %s", self.request.method, redact(self.request.path),
                     value.status, value.message)
        else:
            super().log_exception(typ, value, tb)


def _too_deep() -> errors.BadRequest:
    return errors.BadRequest(
        f"The request body is too deeply nested (more than {MAX_JSON_DEPTH} levels of "
        "lists and objects).", code="too-deep",
        hint="Send the options as docs/options.md shows them; none nests that deep.")
