"""The SSH transport: the only module that knows asyncssh."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import platform
import re
import secrets
import shlex
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import asyncssh

from . import bundle, errors, ssh_config
from .config import Config, HostConfig
from .transport import StderrDrain, StreamChannel, Transport, open_stream_channel

log = logging.getLogger(__name__)

REMOTE_DIR = ".cache/framewire"  # relative to the remote home directory
CHANNEL_WINDOW = 8 << 20
CHANNEL_PKTSIZE = 1 << 17

AUTH_FAILED = "Remote authentication failed."
CONNECT_FAILED = "Remote connection failed."
UNKNOWN_HOST_KEY = "Unknown host key for {host}: {fingerprint}"


class Relay:
    """Carries keyboard-interactive questions to the HTTP client and answers back.

    The password a request brought answers the first lone password prompt;
    every other prompt (a one-time code) waits for the client's answers.
    """

    def __init__(self, password: str | None) -> None:
        self.password = password
        self._password_used = False
        self.waiting = False
        self.question: dict[str, Any] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._answer: asyncio.Future[list[str]] | None = None

    def begin_hop(self) -> None:
        """A new connection of the route: the password may answer once more."""
        self._password_used = False

    def take_password(self) -> str | None:
        if self._password_used:
            return None
        self._password_used = True
        return self.password

    async def ask(self, name: str, instructions: str,
                  prompts: Sequence[tuple[str, bool]]) -> list[str]:
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self.question = {"name": name, "instructions": instructions,
                         "prompts": [{"prompt": prompt, "echo": echo}
                                     for prompt, echo in prompts]}
        self.waiting = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters = []
        try:
            return await self._answer
        finally:
            self.waiting = False

    def asked(self) -> asyncio.Future[None]:
        """Done when a question waits for its answers."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.waiting:
            waiter.set_result(None)
        else:
            self._waiters = [w for w in self._waiters if not w.done()] + [waiter]
        return waiter

    def answer(self, responses: list[str]) -> None:
        self.waiting = False  # now, not when ask() resumes: a waiter may look first
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(responses)


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


@dataclass
class Hop:
    """One SSH connection of a route: the target, or a jump host on the way."""

    requested: str  # the name as asked for (a profile, an alias, a host)
    hostname: str  # the name connected to
    port: int
    username: str
    profile: HostConfig
    profile_name: str | None = None
    identity_files: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return _host_label(self.hostname, self.port)


_SPEC = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)"
                   r"(?::(?P<port>\d{1,5}))?$")


def hop(config: Config, requested: str, port: int | None, username: str | None) -> Hop:
    """``requested`` resolved through the host profiles, then ~/.ssh/config."""
    found = config.profile(requested)
    profile = found[1] if found else HostConfig()
    entry = ssh_config.lookup(config.ssh.ssh_config, requested, username or "") \
        if config.ssh.ssh_config else ssh_config.HostEntry()
    return Hop(requested=requested,
               hostname=profile.hostname or entry.hostname or requested,
               port=port or profile.port or entry.port or 22,
               username=username or profile.username or entry.user or "",
               profile=profile, profile_name=found[0] if found else None,
               identity_files=entry.identityfile)


def route(config: Config, hostname: str, port: int, username: str) -> tuple[Hop, list[Hop]]:
    """The target and the jump hosts to reach it through, first hop first."""
    target = hop(config, hostname, port if port != 22 else None, username or None)
    if not target.username:
        raise errors.ValidationError(
            "username", "username is required.",
            hint=f"Name the remote user, or set username in a [hosts.\"{hostname}\"] "
                 "profile.")
    specs = list(target.profile.jump)
    if not specs and config.ssh.ssh_config:
        jump = ssh_config.lookup(config.ssh.ssh_config, hostname, target.username).proxyjump
        if jump and jump.lower() != "none":
            specs = [part.strip() for part in jump.split(",") if part.strip()]
    jumps = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            raise errors.RemoteSetupError(
                f"The jump host {spec!r} is not [user@]host[:port].", code="jump-config",
                hint="Fix the jump list of this host's profile (or ProxyJump in ~/.ssh/config).")
        jumps.append(hop(config, match.group("host").strip("[]"),
                         int(match.group("port")) if match.group("port") else None,
                         match.group("user") or target.username))
    if len(jumps) > 8:
        raise errors.RemoteSetupError("More than 8 jump hosts.", code="jump-config")
    return target, jumps


def client_keys(config: Config, owner: str, hostname: str | Hop) -> list[str]:
    """The keys the server may log in with to a host for ``owner``.

    ``[hosts."NAME"] client_keys`` for the users in its ``key_users``; in
    token mode also ``[ssh] client_keys`` and the host's ``IdentityFile``s
    from the server account's ~/.ssh/config.  In users mode only a
    profile's keys count (others would let every user in as any remote
    account those keys open).
    """
    target = hostname if isinstance(hostname, Hop) else hop(config, hostname, None, None)
    profile = target.profile
    if profile.client_keys and ("*" in profile.key_users or owner in profile.key_users):
        return list(profile.client_keys)
    if config.auth.mode != "users":
        return list(config.ssh.client_keys) + [
            path for path in target.identity_files if os.path.exists(path)]
    return []


def _load_keys(target: Hop, paths: list[str]) -> Any:
    certs = list(target.profile.client_certs)
    if not certs:
        return paths
    try:
        return asyncssh.load_keypairs(paths, certlist=certs)
    except (OSError, ValueError, asyncssh.Error) as error:
        raise errors.RemoteSetupError(
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
    transport = SSHTransport(conn, python, uploaded, work_dir, setup)
    transport.python_version = version
    if note:
        transport.notes.append(note)
    transport.tunnels = tunnels
    transport.route = [jump.label for jump in jumps]
    transport.username = target.username
    return transport


@dataclass
class Setup:
    """What runs before the agent on a host: its profile's set-up commands
    (each an argv list, run in order by /bin/sh, a login shell when there are
    any, whatever the user's own shell is) and its ffmpeg."""

    commands: list[list[str]] = field(default_factory=list)
    ffmpeg: str = ""
    candidates: list[str] = field(default_factory=list)  # Pythons to try, in order
    nice: int = 0  # the encodes' CPU priority

    @classmethod
    def for_host(cls, target: Hop, config: Config) -> Setup:
        names = [target.profile.python, config.ssh.python, "python3",
                 *(f"python3.{minor}" for minor in range(14, 5, -1)),
                 "/usr/bin/python3", "/usr/local/bin/python3"]
        nice = config.ssh.nice if target.profile.nice is None else target.profile.nice
        return cls([list(step) for step in target.profile.setup], target.profile.ffmpeg,
                   [name for name in dict.fromkeys(names) if name], nice)

    def shell(self, script: str) -> str:
        """``script`` (sh syntax) after the set-up, for the user's login shell,
        whatever it is; plain ``script`` when there is nothing to set up."""
        parts = [f"{_argv(step)} || {{ echo 'FRAMEWIRE-SETUP-FAILED {index}'; exit 126; }}"
                 for index, step in enumerate(self.commands, start=1)]
        if self.ffmpeg:
            parts.append(f"FRAMEWIRE_FFMPEG={shlex.quote(self.ffmpeg)}; export FRAMEWIRE_FFMPEG")
        if not parts:
            return script
        shell = "/bin/sh -lc" if self.commands else "/bin/sh -c"
        return f"{shell} {shlex.quote('; '.join([*parts, script]))}"

    def failed_step(self, output: str) -> str | None:
        match = re.search(r"FRAMEWIRE-SETUP-FAILED (\d+)", output)
        if not match:
            return None
        return " ".join(self.commands[int(match.group(1)) - 1])


def _argv(argv: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in argv)


PYTHON_PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"


async def _find_python(conn: asyncssh.SSHClientConnection, target: Hop,
                       setup: Setup) -> tuple[str, str]:
    """The first Python 3.6+ among the candidates, as an absolute path."""
    loop = " ".join(shlex.quote(name) for name in setup.candidates)
    script = (
        f"for p in {loop}; do command -v \"$p\" >/dev/null 2>&1 || continue; "
        f"v=$(\"$p\" -c {shlex.quote(PYTHON_PROBE)} 2>/dev/null) || continue; "
        "case \"$v\" in 3.[6-9]|3.[1-9][0-9]) "
        "echo \"FRAMEWIRE-PYTHON $(command -v \"$p\") $v\"; exit 0;; esac; "
        "found=\"$found $(command -v \"$p\")=$v\"; done; "
        "echo \"FRAMEWIRE-NO-PYTHON$found\"; exit 127")
    command = setup.shell(script)
    if command == script:
        command = f"/bin/sh -c {shlex.quote(script)}"  # the login shell may not be sh
    try:
        result = await asyncio.wait_for(conn.run(command, check=False), 60)
    except (asyncio.TimeoutError, TimeoutError):
        raise errors.RemoteSetupError(
            f"Looking for Python on {target.label} took over 60 s.", code="no-python",
            hint="Check the host's login scripts and set-up commands.") from None
    output = str(result.stdout or "")
    failed = setup.failed_step(output)
    if failed is not None:
        reason = str(result.stderr or "").strip().splitlines()
        raise errors.RemoteSetupError(
            f"The set-up command `{failed}` failed on {target.label}.", code="setup-failed",
            hint=(reason[-1][:300] if reason else "It exited with an error.")
            + " Fix the host's setup list in the configuration.")
    for line in output.splitlines():
        if line.startswith("FRAMEWIRE-PYTHON "):
            _, path, version = line.split(" ", 2)
            return path, version.strip()
        if line.startswith("FRAMEWIRE-NO-PYTHON"):
            found = line[len("FRAMEWIRE-NO-PYTHON"):].split()
            if found:
                listed = ", ".join(entry.replace("=", " is ") for entry in found)
                raise errors.RemoteSetupError(
                    f"Python on {target.label} is too old: {listed}.", code="old-python",
                    hint="framewire's agent needs Python 3.6 or newer. Install one, or point "
                         "python (or a set-up command such as [\"module\", \"load\", "
                         "\"python3\"]) in this host's profile at it.")
            raise errors.RemoteSetupError(
                f"No Python 3 on {target.label}.", code="no-python",
                hint="framewire's agent needs Python 3.6 or newer (only the standard "
                     "library). Install python3, or set python (or a set-up command "
                     "such as [\"module\", \"load\", \"python3\"]) in this host's profile.")
    raise errors.RemoteSetupError(
        f"Could not look for Python on {target.label}.", code="no-python",
        hint=f"The remote shell answered: {(output or str(result.stderr or '')).strip()[-200:]}")


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


_BUNDLED: dict[str, tuple[str, str, int]] = {}


def bundled_ffmpeg() -> tuple[str, str, int]:
    """The static ffmpeg the server ships (imageio-ffmpeg's): path, SHA-256, size.

    The first call hashes the binary (170 MB): call it off the event loop.
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise errors.RemoteSetupError(
            "This server has no Linux x86_64 ffmpeg to provide.", code="provision-failed",
            hint="Install ffmpeg on the host, or set ffmpeg in its profile.")
    try:
        import imageio_ffmpeg
        path = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise errors.RemoteSetupError("The server's bundled ffmpeg is missing.",
                                      code="provision-failed", hint=str(error)) from None
    if path not in _BUNDLED:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _BUNDLED[path] = (path, digest.hexdigest(), os.path.getsize(path))
    return _BUNDLED[path]


def wants_ffmpeg(config: Config, hostname: str, hello: dict[str, Any]) -> bool:
    """Should the server provide ffmpeg to this host: none usable there, Linux
    x86_64, and the administrator allows it?"""
    profile = config.host(hostname)
    allowed = profile.provision_ffmpeg if profile.provision_ffmpeg is not None \
        else config.ssh.provision_ffmpeg
    ffmpeg = hello.get("ffmpeg") or {}
    usable = ffmpeg.get("path") and "h264" in (ffmpeg.get("encoders") or {})
    platform_ = hello.get("platform") or {}
    return bool(allowed and not usable and platform_.get("system") == "Linux"
                and platform_.get("machine") in ("x86_64", "AMD64"))


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
                     f"(ssh-keygen -R {_known_name(target.hostname, target.port)} -f "
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


def _known_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"'[{hostname}]:{port}'"


def _host_label(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"{hostname}:{port}"


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

    def __init__(self, conn: asyncssh.SSHClientConnection, python: str, uploaded: bool,
                 work_dir: str, setup: Setup | None = None) -> None:
        self.tunnels: list[asyncssh.SSHClientConnection] = []  # jump hosts, first first
        self.route: list[str] = []
        self.username = ""
        self.python_version = ""
        self.notes: list[str] = []
        self.conn = conn
        self.python = python
        self.uploaded = uploaded
        self.work_dir = work_dir
        self.setup = setup or Setup()
        self.agent_path = f"{work_dir}/{bundle.build().filename}"

    def _command(self, *args: str) -> str:
        command = _argv([self.python, self.agent_path, *args])
        return self.setup.shell("exec " + command) if self.setup.commands or \
            self.setup.ffmpeg else command

    async def _exec(self, *args: str, label: str) -> SSHChannel:
        try:
            process = await self.conn.create_process(
                self._command(*args), encoding=None, window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_PKTSIZE)
        except (OSError, asyncssh.Error) as error:
            raise errors.RemoteFailure("The SSH connection failed.",
                                       hint=f"Create a new session ({error}).") from None
        return SSHChannel(process, label)

    async def provision_ffmpeg(self, hello: dict[str, Any]) -> str:
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
        self.notes.append(note)
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
