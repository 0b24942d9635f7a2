"""The SSH transport: the only module that knows asyncssh."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from typing import Any, Sequence

import asyncssh

from .. import errors
from ..config import Config
from ..records import Hello
from . import bundle
from .provision import bundled_ffmpeg, wants_ffmpeg
from .relay import Relay
from .routes import Hop, client_keys, known_name, route
from .setup import Setup
from .transport import StderrDrain, StreamChannel, Transport, open_stream_channel

log = logging.getLogger(__name__)

REMOTE_DIR = ".cache/framewire"  # relative to the remote home directory
CHANNEL_WINDOW = 8 << 20
CHANNEL_PKTSIZE = 1 << 17

AUTH_FAILED = "Remote authentication failed."
CONNECT_FAILED = "Remote connection failed."
UNKNOWN_HOST_KEY = "Unknown host key for {host}: {fingerprint}"


class _Client(asyncssh.SSHClient):
    """Host key policy, and the password and keyboard-interactive answers."""

    def __init__(self, known_hosts: str, policy: str, relay: Relay | None) -> None:
        self.known_hosts = known_hosts
        self.policy = policy
        self.relay = relay
        self.offered: asyncssh.SSHKey | None = None
        self.known: list[asyncssh.SSHKey] = []
        self.recorded = False

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        """Called for a key known_hosts does not trust."""
        self.offered = key
        self.known = _known_keys(self.known_hosts, host, addr, port)
        if self.known or self.policy != "accept-new":
            return False
        _record_key(self.known_hosts, host, port, key)
        self.recorded = True
        return True

    def password_auth_requested(self) -> str | None:
        return self.relay.take_password() if self.relay else None

    def kbdint_auth_requested(self) -> str | None:
        return "" if self.relay else None

    async def kbdint_challenge_received(self, name: str, instructions: str, lang: str,
                                        prompts: Sequence[tuple[str, bool]]
                                        ) -> list[str] | None:
        if self.relay is None:
            return None
        if not prompts:
            return []
        password = self.relay.take_password() if len(prompts) == 1 and not prompts[0][1] \
            and "password" in prompts[0][0].lower() else None
        if password is not None:
            return [password]
        return await self.relay.ask(name, instructions, prompts)


def _known_keys(path: str, host: str, addr: str, port: int) -> list[asyncssh.SSHKey]:
    if not os.path.exists(path):
        return []
    try:
        matched = asyncssh.read_known_hosts(path).match(host, addr, port if port != 22
                                                        else None)
    except (OSError, ValueError, asyncssh.Error):
        return []
    return list(matched[0])


def _record_key(path: str, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append ``key`` for ``host`` to known_hosts (policy accept-new)."""
    name = host if port == 22 else f"[{host}]:{port}"
    kind, data = key.export_public_key("openssh").decode().split()[:2]
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as handle:
        handle.write(f"{name} {kind} {data}\n")
    log.info("recorded the host key of %s (%s) in %s", name, key.get_fingerprint(), path)


def _load_keys(target: Hop, paths: list[str]) -> Any:
    certs = list(target.profile.client_certs)
    if not certs:
        return paths
    try:
        return asyncssh.load_keypairs(paths, certlist=certs)
    except (OSError, ValueError, asyncssh.Error) as error:
        raise errors.ServerConfigError(
            "The server's key for this host cannot be loaded.", code="client-key",
            hint=f"Check hosts.{target.profile_name}.client_keys and client_certs: "
                 f"{error}") from None


class SSHChannel:
    """An exec channel's stdin/stdout as a ByteChannel."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], label: str) -> None:
        self.process = process
        self.drain_stderr = StderrDrain(label)
        self.drain_stderr.start(process.stderr)

    async def read(self, size: int) -> bytes:
        try:
            return await self.process.stdout.read(size)
        except (asyncssh.Error, ConnectionError):
            return b""

    def write(self, data: bytes) -> None:
        self.process.stdin.write(data)

    async def drain(self) -> None:
        await self.process.stdin.drain()

    def close(self) -> None:
        self.process.close()

    async def stderr_tail(self) -> str:
        return await self.drain_stderr.tail()


def _known_hosts(path: str) -> Any:
    if os.path.exists(path):
        return path
    return asyncssh.import_known_hosts("")  # nothing is trusted, nothing is skipped


async def _bounded(task: asyncio.Task[Any], relay: Relay | None, seconds: float) -> Any:
    """``task``'s result within ``seconds`` of the server's own work: the clock
    stops while a question waits for a person's answers."""
    spent = 0.0
    while not task.done():
        if relay is not None and relay.waiting:
            await asyncio.wait({task}, timeout=1.0)
            continue
        asked = relay.asked() if relay is not None else asyncio.get_running_loop(
        ).create_future()
        started = time.monotonic()
        await asyncio.wait({task, asked}, timeout=seconds - spent,
                           return_when=asyncio.FIRST_COMPLETED)
        asked.cancel()
        spent += time.monotonic() - started
        if not task.done() and spent >= seconds and not (relay and relay.waiting):
            task.cancel()
            raise asyncio.TimeoutError
    return task.result()


async def connect(config: Config, owner: str, hostname: str, port: int, username: str,
                  relay: Relay | None) -> SSHTransport:
    """Log in (through any jump hosts), verify every host key, and make sure the
    agent is uploaded.

    ``relay`` carries the request's password and any keyboard-interactive
    questions, for every hop; without one only the server's keys are tried.
    """
    target, jumps = route(config, hostname, port, username)
    tunnels: list[asyncssh.SSHClientConnection] = []
    try:
        for jump in jumps:
            try:
                tunnels.append(await _login(config, owner, jump, relay,
                                            tunnels[-1] if tunnels else None))
            except errors.FramewireError as error:
                raise _through(error, jump, target, first=True) from None
        try:
            conn = await _login(config, owner, target, relay, tunnels[-1] if tunnels else None)
        except errors.FramewireError as error:
            if jumps and error.code in ("connect-failed", "unknown-host", "connect-timeout"):
                raise _through(error, jumps[-1], target, first=False) from None
            raise
    except BaseException:
        for tunnel in reversed(tunnels):
            tunnel.close()
        raise
    finally:
        if relay is not None:
            relay.password = None
    try:
        setup = Setup.for_host(target, config)
        try:
            work_dir, note = await _work_dir(conn, target)
            python, version = await _find_python(conn, target, setup)
            uploaded = await _ensure_agent(conn, work_dir)
        except (OSError, asyncssh.Error) as error:
            raise errors.RemoteFailure(
                "Agent startup failed.", code="agent-upload-failed",
                hint=f"Could not upload the agent to {target.label}: {error}") from None
    except BaseException:
        conn.close()
        for tunnel in reversed(tunnels):
            tunnel.close()
        raise
    allowed = target.profile.provision_ffmpeg if target.profile.provision_ffmpeg is not None \
        else config.ssh.provision_ffmpeg
    return SSHTransport(conn, tunnels=tunnels, route=[jump.label for jump in jumps],
                        username=target.username, python=python, python_version=version,
                        uploaded=uploaded, work_dir=work_dir, setup=setup,
                        notes=[note] if note else [], provision_allowed=allowed)


async def _find_python(conn: asyncssh.SSHClientConnection, target: Hop,
                       setup: Setup) -> tuple[str, str]:
    """The first Python 3.6+ among the candidates, as an absolute path."""
    try:
        result = await asyncio.wait_for(conn.run(setup.python_probe(), check=False), 60)
    except (asyncio.TimeoutError, TimeoutError):
        raise errors.RemoteSetupError(
            f"Looking for Python on {target.label} took over 60 s.", code="no-python",
            hint="Check the host's login scripts and set-up commands.") from None
    return setup.python_found(str(result.stdout or ""), str(result.stderr or ""), target.label)


async def _work_dir(conn: asyncssh.SSHClientConnection, target: Hop) -> tuple[str, str | None]:
    """An absolute, writable work directory, and a note when it is a fallback."""
    configured = target.profile.work_dir
    async with conn.start_sftp_client() as sftp:
        home = await sftp.realpath(".")
        if configured:
            path = configured[2:] if configured.startswith("~/") else configured
            absolute = path if path.startswith("/") else f"{home}/{path}"
            reason = await _try_dir(sftp, absolute)
            if reason is None:
                return absolute, None
            raise errors.RemoteSetupError(
                f"The work directory {absolute} is not writable on {target.label}: {reason}.",
                code="work-dir", hint=f"Set work_dir in the profile of {target.requested} to "
                                      "a writable directory, such as a scratch filesystem.")
        default = f"{home}/{REMOTE_DIR}"
        reason = await _try_dir(sftp, default)
        if reason is None:
            return default, None
        fallback = f"/tmp/framewire-{target.username}"
        second = await _try_dir(sftp, fallback, private=True)
        if second is None:
            return fallback, (f"The home directory {home} is not writable ({reason}); the agent "
                              f"and its jobs use {fallback}. Set work_dir in this host's "
                              "profile to choose a directory.")
        raise errors.RemoteSetupError(
            f"No writable work directory on {target.label}: {default} ({reason}), "
            f"{fallback} ({second}).", code="work-dir",
            hint=f"Set work_dir in the profile of {target.requested} to a writable directory.")


async def _try_dir(sftp: asyncssh.SFTPClient, path: str, private: bool = False) -> str | None:
    """None if ``path`` is (now) a writable directory of ours, else why not."""
    try:
        parts = path.rstrip("/").split("/")
        for end in range(2, len(parts) + 1):  # mkdir -p, keeping the first refusal
            prefix = "/".join(parts[:end])
            if not await sftp.isdir(prefix):
                await sftp.mkdir(prefix, attrs=asyncssh.SFTPAttrs(permissions=0o700))
        info = await sftp.lstat(path)
        if private and (info.type != asyncssh.FILEXFER_TYPE_DIRECTORY
                        or (info.permissions or 0) & 0o077):
            return "it exists and is not a private directory"
        probe = f"{path}/.write-test-{secrets.token_hex(4)}"
        async with sftp.open(probe, "wb") as handle:
            await handle.write(b"framewire")
        await sftp.remove(probe)
        return None
    except asyncssh.SFTPError as error:
        return str(error.reason or error).rstrip(".").lower() or "not writable"
    except OSError as error:
        return error.strerror or str(error)


_UNREACHED = ("connect-failed", "unknown-host", "connect-timeout")


def _through(error: errors.FramewireError, jump: Hop, target: Hop,
             first: bool) -> errors.FramewireError:
    """An error at or behind a jump host, naming the jump host."""
    if error.code in _UNREACHED:
        wrapped = type(error)(
            f"Could not reach the jump host {jump.label} on the way to {target.label}."
            if first else f"Could not reach {target.label} through the jump host "
                          f"{jump.label}.", hint=error.hint, code="jump-failed")
    else:
        wrapped = type(error)(f"{error.message.rstrip('.')} at the jump host {jump.label}.",
                              hint=error.hint, code=error.code)
    wrapped.status = error.status
    return wrapped


async def _login(config: Config, owner: str, target: Hop, relay: Relay | None,
                 tunnel: asyncssh.SSHClientConnection | None) -> asyncssh.SSHClientConnection:
    """One SSH connection, with the host key policy and every error named."""
    known_hosts = config.ssh.known_hosts
    policy = target.profile.host_key_policy or config.ssh.host_key_policy
    if relay is not None:
        relay.begin_hop()
    client = _Client(known_hosts, policy, relay)
    keys: Any = None
    if relay is None or relay.password is None:
        paths = client_keys(config, owner, target)
        keys = _load_keys(target, paths) if paths else None
    label = target.label
    attempt = asyncio.ensure_future(asyncssh.connect(
        target.hostname, target.port, tunnel=tunnel, username=target.username,
        client_factory=lambda: client, known_hosts=_known_hosts(known_hosts),
        client_keys=keys, agent_path=None, config=None,
        encryption_algs=config.ssh.encryption_algs, compression_algs=None,
        preferred_auth=("publickey", "keyboard-interactive", "password"),
        keepalive_interval=30))
    try:
        return await _bounded(attempt, relay, config.ssh.connect_timeout)
    except asyncssh.HostKeyNotVerifiable:
        offered = client.offered.get_fingerprint() if client.offered else "unknown"
        if client.known:
            known = ", ".join(dict.fromkeys(key.get_fingerprint() for key in client.known))
            raise errors.UnknownHostKey(
                f"The host key of {label} has changed: it offered {offered}, "
                f"known_hosts has {known}.", code="host-key-changed",
                hint=f"This may be an attack. If the host's key was really replaced, "
                     f"remove its old line from {known_hosts} "
                     f"(ssh-keygen -R {known_name(target.hostname, target.port)} -f "
                     f"{known_hosts}) and retry.") from None
        raise errors.UnknownHostKey(
            UNKNOWN_HOST_KEY.format(host=label, fingerprint=offered),
            hint=f"If this is the host's key, add it to {known_hosts} "
                 f"(ssh-keyscan -p {target.port} {target.hostname} >> {known_hosts}), "
                 f"or set host_key_policy = \"accept-new\" for this host, and retry.") \
            from None
    except asyncssh.PermissionDenied:
        raise errors.RemoteAuthFailed(
            AUTH_FAILED, hint="Check the username and password (and any one-time "
                              "code).") from None
    except (TimeoutError, asyncio.TimeoutError):
        raise errors.RemoteFailure(
            CONNECT_FAILED, code="connect-timeout",
            hint=f"{label} did not answer within {config.ssh.connect_timeout:.0f} s.") \
            from None
    except socket.gaierror:
        raise errors.RemoteFailure(
            CONNECT_FAILED, code="unknown-host",
            hint=f"The hostname {target.hostname!r} could not be resolved.") from None
    except (OSError, asyncssh.Error) as error:
        number = getattr(error, "errno", None)
        reason = (os.strerror(number) if isinstance(number, int) and number > 0 else None) \
            or getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
        raise errors.RemoteFailure(
            CONNECT_FAILED, code="connect-failed",
            hint=f"Could not connect to {label}: {reason}") from None
    finally:
        if not attempt.done():
            attempt.cancel()


async def _ensure_agent(conn: asyncssh.SSHClientConnection, work_dir: str) -> bool:
    """Upload the agent zipapp over SFTP unless that exact build is there already."""
    agent = bundle.build()
    target = f"{work_dir}/{agent.filename}"
    async with conn.start_sftp_client() as sftp:
        if await sftp.exists(target):
            return False
        temp = f"{target}.{secrets.token_hex(4)}.part"
        async with sftp.open(temp, "wb") as handle:
            await handle.write(agent.data)
        await sftp.posix_rename(temp, target)
        log.info("uploaded agent %s", agent.filename)
        return True


class SSHTransport(Transport):
    kind = "ssh"

    def __init__(self, conn: asyncssh.SSHClientConnection, *,
                 tunnels: list[asyncssh.SSHClientConnection], route: list[str], username: str,
                 python: str, python_version: str, uploaded: bool, work_dir: str,
                 setup: Setup, notes: list[str], provision_allowed: bool) -> None:
        self.conn = conn
        self.tunnels = tunnels  # jump hosts, first first
        self.route = route
        self._username = username
        self.python = python
        self.python_version = python_version
        self.uploaded = uploaded
        self.work_dir = work_dir
        self.setup = setup
        self._notes = notes
        self.provision_allowed = provision_allowed
        self.agent_path = f"{work_dir}/{bundle.build().filename}"

    @property
    def notes(self) -> list[str]:
        return self._notes

    @property
    def remote_username(self) -> str:
        return self._username

    async def provide_ffmpeg(self, hello: Hello) -> bool:
        if not wants_ffmpeg(self.provision_allowed, hello):
            return False
        await self.provision_ffmpeg()
        return True

    def _command(self, *args: str) -> str:
        return self.setup.agent_command(self.python, self.agent_path, *args)

    async def _exec(self, *args: str, label: str) -> SSHChannel:
        try:
            process = await self.conn.create_process(
                self._command(*args), encoding=None, window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_PKTSIZE)
        except (OSError, asyncssh.Error) as error:
            raise errors.RemoteFailure("The SSH connection failed.",
                                       hint=f"Create a new session ({error}).") from None
        return SSHChannel(process, label)

    async def provision_ffmpeg(self) -> str:
        """Upload the server's static ffmpeg into the work directory (once: the file is
        named by its hash; an interrupted upload resumes), verify its SHA-256 on the
        host, and use it from now on."""
        local, digest, size = await asyncio.to_thread(bundled_ffmpeg)
        final = f"{self.work_dir}/ffmpeg-{digest[:16]}"
        partial = f"{final}.part"
        async with self.conn.start_sftp_client() as sftp:
            if await sftp.exists(final):
                self._use_ffmpeg(final, f"Using the server's ffmpeg at {final} (uploaded "
                                        "earlier): the host has none usable.")
                return final
            for attempt in (1, 2):
                start = 0
                if await sftp.exists(partial):
                    start = (await sftp.stat(partial)).size or 0
                    if start > size:
                        await sftp.remove(partial)
                        start = 0
                await self._upload(sftp, local, partial, start, size)
                got = await self._remote_hash(partial)
                if got == digest:
                    break
                await sftp.remove(partial)
                if attempt == 2:
                    raise errors.RemoteSetupError(
                        f"The ffmpeg uploaded to {self.work_dir} did not verify.",
                        code="provision-failed",
                        hint=f"Its SHA-256 on the host is {got[:16]}…, not {digest[:16]}…; "
                             "check the host's disk, then create a new session.")
                start = 0
            await sftp.chmod(partial, 0o755)
            await sftp.posix_rename(partial, final)
        resumed = f", resumed after {start} bytes" if start else ""
        self._use_ffmpeg(final, f"Uploaded the server's ffmpeg ({size // 1_000_000} MB{resumed}, "
                                f"SHA-256 verified) to {final}: the host has none usable.")
        return final

    def _use_ffmpeg(self, path: str, note: str) -> None:
        self.setup.ffmpeg = path
        self._notes.append(note)
        log.info("%s", note)

    async def _upload(self, sftp: asyncssh.SFTPClient, local: str, remote: str, start: int,
                      size: int) -> None:
        try:
            async with sftp.open(remote, "ab" if start else "wb") as handle:
                with open(local, "rb") as source:
                    source.seek(start)
                    offset = start
                    while offset < size:
                        block = source.read(4 << 20)
                        if not block:
                            break
                        await handle.write(block, offset)
                        offset += len(block)
        except asyncssh.SFTPError as error:
            raise errors.RemoteSetupError(
                f"Could not upload ffmpeg to {self.work_dir}: {error.reason}.",
                code="provision-failed",
                hint="Free some space there, or set work_dir in this host's profile; the "
                     "upload resumes where it stopped.") from None

    async def _remote_hash(self, path: str) -> str:
        result = await self.conn.run(self._command("hash", path), check=False)
        lines = [line for line in str(result.stdout or "").split() if len(line) == 64]
        return lines[-1] if lines else "unknown"

    async def start_agent(self, nonce: str) -> SSHChannel:
        return await self._exec("serve", "--nonce", nonce, "--work-dir", self.work_dir,
                                "--nice", str(self.setup.nice), label="agent")

    async def open_stream(self, path: str, offset: int, length: int) -> StreamChannel:
        nonce = secrets.token_hex(8)
        inner = await self._exec("stream", "--nonce", nonce, label="stream")
        return await open_stream_channel(inner, nonce, path, offset, length)

    async def close(self) -> None:
        for conn in (self.conn, *reversed(self.tunnels)):
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (TimeoutError, asyncio.TimeoutError):
                pass

    def describe(self) -> dict[str, Any]:
        return {"transport": self.kind, "agent_path": self.agent_path,
                "jump_hosts": self.route, "python_path": self.python, "notes": self.notes,
                "python_version": self.python_version,
                "uploaded": self.uploaded}
