"""The SSH transport: the only module that knows asyncssh."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import socket
from typing import Any

import asyncssh

from . import bundle, errors
from .config import SSHConfig
from .transport import StderrDrain, StreamChannel, Transport, open_stream_channel

log = logging.getLogger(__name__)

REMOTE_DIR = ".cache/framewire"  # relative to the remote home directory
CHANNEL_WINDOW = 8 << 20
CHANNEL_PKTSIZE = 1 << 17

AUTH_FAILED = "Remote authentication failed."
CONNECT_FAILED = "Remote connection failed."
UNKNOWN_HOST_KEY = "Unknown host key for {host}: {fingerprint}"


class _KeyRecorder(asyncssh.SSHClient):
    """Remembers the key a host offered, so a refusal can name its fingerprint."""

    def __init__(self) -> None:
        self.offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        self.offered = key
        return False


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


async def connect(config: SSHConfig, hostname: str, port: int, username: str,
                  password: str | None) -> SSHTransport:
    """Log in, verify the host key, and make sure the agent is uploaded."""
    recorder = _KeyRecorder()
    keys: Any = None
    if password is None and config.client_keys:
        keys = config.client_keys
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            hostname, port, username=username, password=password,
            client_factory=lambda: recorder,
            known_hosts=_known_hosts(config.known_hosts), client_keys=keys,
            agent_path=None, config=None, encryption_algs=config.encryption_algs,
            compression_algs=None, preferred_auth=("publickey", "keyboard-interactive",
                                                   "password"),
            keepalive_interval=30), config.connect_timeout)
    except asyncssh.HostKeyNotVerifiable:
        fingerprint = recorder.offered.get_fingerprint() if recorder.offered else "unknown"
        raise errors.UnknownHostKey(
            UNKNOWN_HOST_KEY.format(host=_host_label(hostname, port), fingerprint=fingerprint),
            hint=f"If this is the host's key, add it to {config.known_hosts} "
                 f"(ssh-keyscan -p {port} {hostname} >> {config.known_hosts}) and retry.") \
            from None
    except asyncssh.PermissionDenied:
        raise errors.RemoteAuthFailed(
            AUTH_FAILED, hint="Check the username and password.") from None
    except (TimeoutError, asyncio.TimeoutError):
        raise errors.RemoteFailure(
            CONNECT_FAILED, code="connect-timeout",
            hint=f"{_host_label(hostname, port)} did not answer within "
                 f"{config.connect_timeout:.0f} s.") from None
    except socket.gaierror:
        raise errors.RemoteFailure(
            CONNECT_FAILED, code="unknown-host",
            hint=f"The hostname {hostname!r} could not be resolved.") from None
    except (OSError, asyncssh.Error) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
        raise errors.RemoteFailure(
            CONNECT_FAILED, code="connect-failed",
            hint=f"Could not connect to {_host_label(hostname, port)}: {reason}") from None
    try:
        uploaded = await _ensure_agent(conn)
    except (OSError, asyncssh.Error) as error:
        conn.close()
        raise errors.RemoteFailure(
            "Agent startup failed.", code="agent-upload-failed",
            hint=f"Could not upload the agent to ~/{REMOTE_DIR}: {error}") from None
    return SSHTransport(conn, config.python, uploaded)


def _host_label(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"{hostname}:{port}"


async def _ensure_agent(conn: asyncssh.SSHClientConnection) -> bool:
    """Upload the agent zipapp over SFTP unless that exact build is there already."""
    agent = bundle.build()
    target = f"{REMOTE_DIR}/{agent.filename}"
    async with conn.start_sftp_client() as sftp:
        if await sftp.exists(target):
            return False
        await sftp.makedirs(REMOTE_DIR, attrs=asyncssh.SFTPAttrs(permissions=0o700),
                            exist_ok=True)
        temp = f"{target}.{secrets.token_hex(4)}.part"
        async with sftp.open(temp, "wb") as handle:
            await handle.write(agent.data)
        await sftp.posix_rename(temp, target)
        log.info("uploaded agent %s", agent.filename)
        return True


class SSHTransport(Transport):
    kind = "ssh"

    def __init__(self, conn: asyncssh.SSHClientConnection, python: str,
                 uploaded: bool) -> None:
        self.conn = conn
        self.python = python
        self.uploaded = uploaded
        self.agent_path = f"{REMOTE_DIR}/{bundle.build().filename}"

    def _command(self, *args: str) -> str:
        return " ".join(shlex.quote(part) for part in (self.python, self.agent_path, *args))

    async def _exec(self, *args: str, label: str) -> SSHChannel:
        try:
            process = await self.conn.create_process(
                self._command(*args), encoding=None, window=CHANNEL_WINDOW,
                max_pktsize=CHANNEL_PKTSIZE)
        except (OSError, asyncssh.Error) as error:
            raise errors.RemoteFailure("The SSH connection failed.",
                                       hint=f"Create a new session ({error}).") from None
        return SSHChannel(process, label)

    async def start_agent(self, nonce: str) -> SSHChannel:
        return await self._exec("serve", "--nonce", nonce, label="agent")

    async def open_stream(self, path: str, offset: int, length: int) -> StreamChannel:
        nonce = secrets.token_hex(8)
        inner = await self._exec("stream", "--nonce", nonce, label="stream")
        return await open_stream_channel(inner, nonce, path, offset, length)

    async def close(self) -> None:
        self.conn.close()
        try:
            await asyncio.wait_for(self.conn.wait_closed(), 5)
        except (TimeoutError, asyncio.TimeoutError):
            pass

    def describe(self) -> dict[str, Any]:
        return {"transport": self.kind, "agent_path": "~/" + self.agent_path,
                "uploaded": self.uploaded}
