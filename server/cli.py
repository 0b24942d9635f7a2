"""The ``framewire`` command: serve, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from . import __version__
from . import config as config_module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="framewire", description=(
        "Turn image sequences on remote hosts into videos, over SSH."))
    parser.add_argument("--version", action="version", version=f"framewire {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default=None, help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port to listen on (8080)")
    serve.add_argument("--config", default=None, help="TOML configuration file")
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    demo = commands.add_parser("demo", help="make a video from a generated image sequence "
                                            "through the HTTP API on this machine")
    demo.add_argument("--output", default="framewire-demo",
                      help="directory for the frames and the video (framewire-demo)")
    demo.add_argument("--frames", type=int, default=75, help="number of frames (75)")
    demo.add_argument("--content-type", default="video/mp4",
                      choices=["video/mp4", "video/webm"])

    args = parser.parse_args(argv)
    level = logging.INFO if args.command == "serve" else logging.WARNING
    if getattr(args, "verbose", False):
        level = logging.DEBUG
    logging.basicConfig(level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            config = config_module.load(args.config)
            if args.host:
                config.server.host = args.host
            if args.port is not None:
                config.server.port = args.port
            return asyncio.run(_serve(config))
        from . import demo as demo_module
        return asyncio.run(demo_module.run(args.output, args.frames, args.content_type))
    except config_module.ConfigError as error:
        print(f"framewire: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _serve(config: config_module.Config) -> int:
    from .app import make_app
    from .services import Services

    generated = config_module.ensure_token(config)
    services = Services.build(config)
    app = make_app(config, services)
    server = app.listen(config.server.port, config.server.host)
    services.start()
    host = config.server.host if ":" not in config.server.host else f"[{config.server.host}]"
    url = f"http://{host}:{config.server.port}/"
    if generated:
        print(f"framewire {__version__} listening on {url}?token={config.server.token}",
              flush=True)
        print("(set FRAMEWIRE_TOKEN to choose the token)", flush=True)
    else:
        print(f"framewire {__version__} listening on {url} (token from configuration)",
              flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()
    await services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
