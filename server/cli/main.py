"""The ``framewire`` command: serve, demo, user, token, video, doctor."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import signal
import ssl
import sys
import time

from .. import __version__, audit
from .. import config as config_module
from ..users import TokenStore, UserError, UserFile
from . import doctor
from . import video as video_cli


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

    user = commands.add_parser("user", help="manage the users of multi-user mode")
    user.add_argument("--config", default=None, help="TOML configuration file")
    user_actions = user.add_subparsers(dest="action", required=True)
    for action, text in (("add", "add a user (asks for the password)"),
                         ("passwd", "set a user's password"),
                         ("remove", "remove a user and revoke their API tokens"),
                         ("role", "set a user's role")):
        sub = user_actions.add_parser(action, help=text)
        sub.add_argument("name")
        if action == "role":
            sub.add_argument("role", choices=["user", "admin"])
        if action in ("add", "passwd"):
            sub.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of standard input")
        if action == "add":
            sub.add_argument("--admin", action="store_true", help="give the admin role")
    user_actions.add_parser("list", help="list users and roles")

    token = commands.add_parser("token", help="manage API tokens of multi-user mode")
    token.add_argument("--config", default=None, help="TOML configuration file")
    token_actions = token.add_subparsers(dest="action", required=True)
    create = token_actions.add_parser("create", help="create a token (printed once)")
    create.add_argument("user")
    create.add_argument("--name", default="", help="what the token is for")
    listing = token_actions.add_parser("list", help="list tokens (never their values)")
    listing.add_argument("user", nargs="?")
    revoke = token_actions.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id")

    video_cli.add_parser(commands)
    doctor.add_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "video":
        return video_cli.run(args)
    if args.command == "doctor":
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
        return doctor.run(args)
    if args.command in ("user", "token"):
        try:
            config = config_module.load(args.config)
            return _accounts(args, config)
        except config_module.ConfigError as error:
            print(f"framewire: {error}", file=sys.stderr)
            return 2
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


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not video_cli.has_terminal():
        raise UserError("no terminal to ask the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise UserError("the passwords differ; nothing changed")
    return first


def _accounts(args: argparse.Namespace, config: config_module.Config) -> int:
    """framewire user … and framewire token …: edit the users file and token table."""
    users = UserFile(config.users_file)
    tokens = TokenStore(config.database)
    try:
        if args.command == "user":
            if args.action == "list":
                for entry in sorted(users.users().values(), key=lambda u: u.name):
                    print(f"{entry.name}\t{entry.role}")
                return 0
            if args.action == "add":
                users.add(args.name, _read_password(args.password_stdin),
                          "admin" if args.admin else "user")
                print(f"added {args.name} to {config.users_file}")
            elif args.action == "passwd":
                users.set_password(args.name, _read_password(args.password_stdin))
                print(f"changed the password of {args.name} (their login cookies end)")
            elif args.action == "role":
                users.set_role(args.name, args.role)
                print(f"{args.name} is now {args.role}")
            else:
                users.remove(args.name)
                count = tokens.revoke_all(args.name)
                print(f"removed {args.name} and revoked {count} API token(s)")
            if config.auth.mode != "users":
                print("note: the server runs in token mode; set [auth] mode = \"users\" "
                      "to use these accounts", file=sys.stderr)
            return 0
        if args.action == "create":
            if users.get(args.user) is None:
                raise UserError(f"no user {args.user} in {config.users_file}; add one with "
                                f"framewire user add {args.user}")
            value, token_id = tokens.create(args.user, args.name)
            print(value)
            print(f"(token {token_id} for {args.user}; it is shown only now)", file=sys.stderr)
            return 0
        if args.action == "list":
            for row in tokens.list(args.user):
                used = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row["last_used"])) \
                    if row["last_used"] else "never used"
                print(f"{row['id']}\t{row['user']}\t{row['name'] or '-'}\t{used}")
            return 0
        if not tokens.revoke(args.id):
            raise UserError(f"no token {args.id}; framewire token list shows them")
        print(f"revoked token {args.id}")
        return 0
    except UserError as error:
        print(f"framewire: {error}", file=sys.stderr)
        return 2


async def _serve(config: config_module.Config) -> int:
    from ..http.app import make_app
    from ..http.door import make_server
    from ..services import Services

    generated = config_module.ensure_token(config)
    if config.server.audit_log:
        audit.attach_file(config.server.audit_log)
    services = Services.build(config)
    app = make_app(config, services)
    ssl_options = None
    if config.server.certfile:
        ssl_options = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_options.load_cert_chain(config.server.certfile, config.server.keyfile)
        except (OSError, ssl.SSLError) as error:
            raise config_module.ConfigError(
                f"cannot load server.certfile/keyfile: {error}") from None
    try:
        server = make_server(app, config, ssl_options)
        server.listen(config.server.port, config.server.host)
    except OSError as error:
        await services.close()
        where = f"{config.server.host}:{config.server.port}"
        if error.errno == errno.EADDRINUSE:
            print(f"framewire: cannot listen on {where}: the address is in use (another "
                  "framewire serve?); stop it, or choose another port with --port",
                  file=sys.stderr)
        else:
            print(f"framewire: cannot listen on {where}: {error.strerror}; check --host and "
                  "--port", file=sys.stderr)
        return 1
    services.start()
    host = config.server.host if ":" not in config.server.host else f"[{config.server.host}]"
    scheme = "https" if ssl_options else "http"
    url = f"{scheme}://{host}:{config.server.port}/"
    if config.auth.mode == "users":
        count = len(services.auth.users.users())
        print(f"framewire {__version__} listening on {url} (users mode, {count} user(s); "
              f"log in at {url}login)", flush=True)
        if not count:
            print("(add a user with: framewire user add NAME --admin)", flush=True)
    elif generated:
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
    server.flush_log()  # lines of answers given while the services stopped
    return 0


if __name__ == "__main__":
    sys.exit(main())
