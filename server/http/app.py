"""Build the Tornado application from a configuration."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import tornado.web

from .. import errors
from ..auth import COOKIE, SINGLE_USER, server_secret
from ..config import Config
from ..services import Services
from . import account, files, remotes, storage, videos
from .access import AccessLog, log_request
from .base import HEADER_READ_LIMIT, ApiHandler


def web_root() -> Path:
    """``web/`` beside the source tree, else where a wheel installed it."""
    beside = Path(__file__).resolve().parents[2] / "web"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "framewire" / "web"


class NoRoute(ApiHandler):
    """Unknown URLs get the same JSON error body as every other failure."""

    async def prepare(self) -> None:
        self.refuse(errors.NotFound("No such endpoint.", code="no-route",
                                    hint="See docs/api.md for the endpoints."))


class IndexHandler(tornado.web.StaticFileHandler):
    """The start page; ``/?token=T`` (the URL ``framewire serve`` prints) logs a browser in."""

    def initialize(self, path: str, default_filename: str | None = None,  # type: ignore[override]
                   services: Services | None = None) -> None:
        super().initialize(path, default_filename)
        assert services is not None
        self.services = services

    async def get(self, path: str, include_body: bool = True) -> None:
        token = self.get_query_argument("token", None)
        if token is not None and self.services.auth.check(token):
            self.set_signed_cookie(COOKIE, SINGLE_USER, httponly=True, samesite="Lax",
                                   expires_days=self.services.config.auth.login_days,
                                   secure=self.request.protocol == "https")
            self.redirect("/")
            return
        self.xsrf_token  # sets the _xsrf cookie the UI sends back  # noqa: B018
        await super().get(path, include_body)


def http_options(config: Config) -> dict[str, Any]:
    """The HTTP server's settings, the same wherever the app is served."""
    return {"max_body_size": config.limits.max_body_bytes, "xheaders": False,
            # Headers up to 1 MiB are read so that 64 KiB and over get a 431 (base.py);
            # past 1 MiB the connection is closed.
            "max_header_size": HEADER_READ_LIMIT}


def make_app(config: Config, services: Services | None = None) -> tornado.web.Application:
    services = services or Services.build(config)
    api: dict[str, Any] = {"services": services}
    # The busiest first (status polls, progress streams): routes are tried in order.
    table = (*videos.routes, *remotes.routes, *files.routes, *storage.routes,
             *account.routes)
    routes: list[Any] = [(pattern, handler, api) for pattern, handler in table]
    # Every route also answers under /api, where today's Slycat client sends them;
    # /api/login is that client's own login, not the page at /login.
    routes.append((r"/api/login/?", account.SlycatLoginHandler, api))
    routes += [("/api" + pattern, handler, api) for pattern, handler in table
               if pattern.lstrip("/").split("/")[0].rstrip("/?") != "login"]
    web = str(web_root())
    routes.append((r"/()", IndexHandler, {"path": web, "default_filename": "index.html",
                                          "services": services}))
    routes.append((r"/web/(.*)", tornado.web.StaticFileHandler, {"path": web}))
    app = tornado.web.Application(
        routes,
        default_handler_class=NoRoute,
        default_handler_args=api,
        # Derived from the server's key: cookies survive a restart, die with a new
        # token (token mode) or key (users mode).
        cookie_secret=hashlib.sha256(b"framewire-cookie:" + server_secret(config)).hexdigest(),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"samesite": "Strict",
                            "secure": bool(config.server.certfile)},
        log_function=log_request,
        serve_traceback=config.server.debug,
        debug=False,
        compress_response=False,
    )
    app.settings["framewire_services"] = services
    app.settings["framewire_access"] = AccessLog()
    app.settings["web_root"] = Path(web)
    return app
