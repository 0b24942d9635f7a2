"""All configuration in one typed place: a TOML file, then environment variables.

Defaults work on a laptop: loopback only, single user, local transport on,
state under ``~/.local/share/framewire``.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _home(*parts: str) -> str:
    return str(Path.home().joinpath(*parts))


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""
    data_dir: str = field(default_factory=lambda: _home(".local", "share", "framewire"))
    session_idle_timeout: float = 3600.0
    debug: bool = False


@dataclass
class SSHConfig:
    known_hosts: str = field(default_factory=lambda: _home(".ssh", "known_hosts"))
    # Keys the server itself logs in with when a request brings no password.
    client_keys: list[str] = field(default_factory=list)
    python: str = "python3"
    connect_timeout: float = 20.0
    agent_start_timeout: float = 60.0
    # AES-GCM first: with AES-NI it streams ~1.4x faster than chacha20.
    encryption_algs: list[str] = field(default_factory=lambda: [
        "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"])


@dataclass
class LocalConfig:
    enabled: bool = True
    hostnames: list[str] = field(default_factory=lambda: ["localhost"])
    # ffmpeg for local agents; empty means PATH, then imageio-ffmpeg's binary.
    ffmpeg: str = ""
    work_dir: str = ""


@dataclass
class WebhookConfig:
    # Seconds before each retry; a delivery gives up after the last one.
    retry_schedule: list[float] = field(default_factory=lambda: [
        5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0])
    default_timeout: float = 10.0
    poll_interval: float = 0.5


@dataclass
class RetentionConfig:
    # Outputs expire this many days after their job ends (per user; 0 = never).
    default_days: float = 30.0
    sweep_interval: float = 3600.0


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ssh: SSHConfig = field(default_factory=SSHConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)

    @property
    def database(self) -> str:
        return os.path.join(self.server.data_dir, "framewire.sqlite3")


class ConfigError(Exception):
    pass


def _apply(target: Any, values: dict[str, Any], where: str) -> None:
    known = {f.name: f for f in fields(target)}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise ConfigError(f"{where}: unknown setting {key!r} "
                              f"(known: {', '.join(sorted(known))})")
        current = getattr(target, name)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key} must be a table")
            _apply(current, value, f"{where}.{key}")
        else:
            setattr(target, name, value)


def load(path: str | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read ``path`` (or ``$FRAMEWIRE_CONFIG``) and the ``FRAMEWIRE_*`` variables."""
    env = os.environ if environ is None else environ
    config = Config()
    path = path or env.get("FRAMEWIRE_CONFIG")
    if path:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except OSError as error:
            raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
        _apply(config, data, "config")
    if env.get("FRAMEWIRE_TOKEN"):
        config.server.token = env["FRAMEWIRE_TOKEN"]
    if env.get("FRAMEWIRE_DATA_DIR"):
        config.server.data_dir = env["FRAMEWIRE_DATA_DIR"]
    if env.get("FRAMEWIRE_KNOWN_HOSTS"):
        config.ssh.known_hosts = env["FRAMEWIRE_KNOWN_HOSTS"]
    return config


def ensure_token(config: Config) -> bool:
    """Generate a token when none is configured; True if one was generated."""
    if config.server.token:
        return False
    config.server.token = secrets.token_urlsafe(24)
    return True
