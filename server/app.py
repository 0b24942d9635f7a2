"""Build the Tornado application from a configuration."""

from __future__ import annotations

import logging
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import tornado.web

from .config import Config
from .handlers import files, remotes, videos
from .services import Services

access_log = logging.getLogger("framewire.access")


def web_root() -> Path:
    """``web/`` beside the source tree, else where a wheel installed it."""
    beside = Path(__file__).resolve().parent.parent / "web"
    if beside.is_dir():
        return beside
    return Path(sys.prefix) / "share" / "framewire" / "web"


_SECRET_QUERY = re.compile(r"(token=)[^&]*")
_IDS = re.compile(r"/([0-9a-f]{6})[0-9a-f]{26}(?=/|$|\?)")


def redact(uri: str) -> str:
    """An access-log safe URI: no token values, session and video ids shortened."""
    return _IDS.sub(r"/\1…", _SECRET_QUERY.sub(r"\1***", uri))


def log_request(handler: tornado.web.RequestHandler) -> None:
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    access_log.log(level, "%d %s %s %.1fms", status, handler.request.method,
                   redact(handler.request.uri or ""), 1000.0 * handler.request.request_time())


def make_app(config: Config, services: Services | None = None) -> tornado.web.Application:
    services = services or Services.build(config)
    api: dict[str, Any] = {"services": services}
    routes: list[Any] = [
        (pattern, handler, api)
        for pattern, handler in (*remotes.routes, *files.routes, *videos.routes)
    ]
    web = str(web_root())
    routes.append((r"/()", tornado.web.StaticFileHandler,
                   {"path": web, "default_filename": "index.html"}))
    routes.append((r"/web/(.*)", tornado.web.StaticFileHandler, {"path": web}))
    app = tornado.web.Application(
        routes,
        cookie_secret=secrets.token_bytes(32),
        log_function=log_request,
        serve_traceback=config.server.debug,
        debug=False,
        compress_response=False,
    )
    app.settings["framewire_services"] = services
    return app
