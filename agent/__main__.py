"""Entry point: ``python3 agent.pyz serve|stream|run-job|run-task|run-join``."""

import os
import sys
from typing import Any, Dict, List, Optional  # noqa: F401 (type comments)

from . import protocol


def default_work_dir():
    # type: () -> str
    return os.environ.get("FRAMEWIRE_WORK_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "framewire")


def self_argv():
    # type: () -> List[str]
    """How to start this same agent again (for the detached job runner)."""
    import zipfile

    entry = os.path.abspath(sys.argv[0])
    if zipfile.is_zipfile(entry):
        return [sys.executable, entry]
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return [sys.executable, "-c",
            "import sys; sys.path.insert(0, %r); from agent.__main__ import main; "
            "sys.exit(main(sys.argv[1:]))" % package_parent]


def setup_commands(text):
    # type: (str) -> List[List[str]]
    """``--setup``: the host's set-up commands, each an argv list of strings."""
    import json

    try:
        commands = json.loads(text)
    except ValueError:
        commands = None
    if not isinstance(commands, list) or not all(
            isinstance(step, list) and all(isinstance(word, str) for word in step)
            for step in commands):
        sys.stderr.write("framewire-agent: --setup is not a list of argv lists; ignored\n")
        return []
    return commands


def stream_main(args):
    # type: (List[str]) -> int
    """``stream [--nonce N]``: the download hot path, so it skips argparse."""
    from . import stream

    nonce = args[1] if len(args) == 2 and args[0] == "--nonce" else ""
    # The marker line lets the server skip whatever a login script printed.
    sys.stdout.buffer.write(("%s %s\n" % (protocol.STREAM_MARKER, nonce)).encode("ascii"))
    sys.stdout.buffer.flush()
    return stream.main(sys.stdin.buffer, sys.stdout.buffer)


def main(argv=None):
    # type: (Optional[List[str]]) -> int
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stream"]:
        return stream_main(argv[1:])
    import argparse

    parser = argparse.ArgumentParser(prog="framewire-agent")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="speak the agent protocol on stdin/stdout")
    serve.add_argument("--nonce", default="")
    serve.add_argument("--work-dir", default=None)
    serve.add_argument("--nice", type=int, default=0,
                       help="the CPU priority of encodes (0-19), below the agent's")
    serve.add_argument("--setup", default="[]",
                       help="the host's set-up commands (a JSON list of argv lists), for "
                            "batch jobs to run before the runner")
    serve.add_argument("--thumbnail-cache", type=int, default=64, metavar="MIB",
                       help="the size the thumbnail cache (WORK_DIR/thumbs) is kept under")
    stream_parser = commands.add_parser("stream", help="copy a byte range of a file to stdout")
    stream_parser.add_argument("--nonce", default="")
    run_job = commands.add_parser("run-job", help="run one job (started by serve)")
    run_job.add_argument("job_dir")
    run_task = commands.add_parser("run-task", help="run task N of a chunked job (a Slurm "
                                   "array task)")
    run_task.add_argument("job_dir")
    run_task.add_argument("number", type=int)
    run_join = commands.add_parser("run-join", help="join a chunked job's chunks")
    run_join.add_argument("job_dir")
    hash_parser = commands.add_parser("hash", help="print a file's SHA-256")
    hash_parser.add_argument("path")
    args = parser.parse_args(argv)

    if args.command == "hash":
        import hashlib
        digest = hashlib.sha256()
        with open(args.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        print(digest.hexdigest())
        return 0
    if args.command == "run-job":
        from . import runner
        return runner.main(args.job_dir)
    if args.command in ("run-task", "run-join"):
        from . import chunked
        return chunked.main_task(args.job_dir, args.number) if args.command == "run-task" \
            else chunked.main_join(args.job_dir)
    if args.command != "serve":
        parser.print_help(sys.stderr)
        return 2

    import threading

    from . import executors, service, slurm
    # stdout carries the protocol only: anything else printed goes to stderr.
    out = sys.stdout.buffer
    sys.stdout = sys.stderr
    writer = protocol.LineWriter(out)
    work_dir = args.work_dir or default_work_dir()
    os.makedirs(work_dir, mode=0o700, exist_ok=True)
    runner_argv = self_argv() + ["run-job"]
    placements = {"local": executors.LocalExecutor(runner_argv)}  # type: Dict[str, Any]
    # Slurm is asked while the agent probes ffmpeg (after the host's set-up, so
    # `module load slurm` counts).
    discovery = []  # type: List[Optional[Dict[str, Any]]]
    finder = threading.Thread(target=lambda: discovery.append(slurm.discover()),
                              name="slurm-discovery", daemon=True)
    finder.start()
    agent = service.Agent(work_dir, placements, writer, max(0, min(19, args.nice)),
                          thumbnail_cache=max(0, args.thumbnail_cache) << 20)
    finder.join()
    found = discovery[0] if discovery else None
    if found is not None:
        # Its commands are here: jobs submitted earlier are followed even when the
        # controller does not answer now (new ones need a partition it listed).
        placements["slurm"] = slurm.SlurmExecutor(runner_argv, setup_commands(args.setup),
                                                  found.get("user"), bool(found["sacct"]))
    agent.slurm = found
    out.write(("%s %s\n" % (protocol.MARKER, args.nonce)).encode("ascii"))
    writer.send({"hello": agent.hello()})
    agent.serve(sys.stdin.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
