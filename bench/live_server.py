"""The real framewire app (tests.fixtures.LiveServer) in a process of its own.

The benchmark's HTTP client must not share a GIL with the server it
measures, and ``framewire serve`` runs in its own process too.  Started by
bench.py; speaks JSON lines:

- prints ``{"url", "token", "pid"}`` once the server listens;
- reads commands on stdin: ``ssh-algorithms SID`` answers with the
  algorithms the session's SSH connection negotiated, ``door`` with how many
  status polls the server's door answered (server/http/door.py);
- stops the server and exits at end of input (so it never outlives bench.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.auth import SINGLE_USER  # noqa: E402
from tests.fixtures import LiveServer, make_config  # noqa: E402

ALGORITHMS = ("send_cipher", "recv_cipher", "send_mac", "recv_mac", "send_compression",
              "recv_compression")


def answer(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--client-key", required=True)
    parser.add_argument("--nice", type=int, default=None,
                        help="the encodes' CPU priority ([local] and [ssh] nice)")
    parser.add_argument("--serial-host", default=None,
                        help="a host profile of this name for 127.0.0.1 whose chunked jobs "
                             "run one chunk at a time (max_parallel_chunks = 1)")
    parser.add_argument("--work-dir-host", default=None, metavar="NAME=DIR",
                        help="a host profile NAME for 127.0.0.1 whose agent works in DIR "
                             "(a benchmark's own work directory)")
    args = parser.parse_args()

    data_dir = Path(args.data_dir)
    # Like `framewire serve`: INFO logging (access log included), here to a file.
    logging.basicConfig(filename=str(data_dir / "server.log"), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = make_config(data_dir, ssh={"known_hosts": args.known_hosts,
                                        "client_keys": [args.client_key]})
    if args.nice is not None:
        config.local.nice = config.ssh.nice = args.nice
    if args.serial_host:
        from server.config import HostConfig
        config.hosts[args.serial_host] = HostConfig(hostname="127.0.0.1",
                                                    max_parallel_chunks=1)
    if args.work_dir_host:
        from server.config import HostConfig
        name, _, work_dir = args.work_dir_host.partition("=")
        config.hosts[name] = HostConfig(hostname="127.0.0.1", work_dir=work_dir)
    # A benchmark's load is one user's: no per-user request rate to trip over.
    config.limits.requests_per_minute = 0
    server = LiveServer(config)
    try:
        answer({"url": server.url, "token": server.token, "pid": os.getpid()})
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "ssh-algorithms":
                answer(server.call(_algorithms(server, argument), timeout=10))
            elif command == "door":
                door = server.server.door
                answer({"answered": door.answered if door is not None else None})
            else:
                answer({"error": f"unknown command {command!r}"})
    finally:
        server.stop()
    return 0


async def _algorithms(server: LiveServer, sid: str) -> dict[str, Any]:
    try:
        session = server.services.sessions.get(SINGLE_USER, sid)
        conn = session.transport.conn  # type: ignore[attr-defined]
        return {name: conn.get_extra_info(name) for name in ALGORITHMS}
    except Exception as error:  # informational only: never fail the benchmark here
        return {"error": repr(error)}


if __name__ == "__main__":
    sys.exit(main())
