"""All configuration in one typed place: a TOML file, then environment variables.

Defaults work on a laptop: loopback only, single user, local transport on,
state under ``~/.local/share/framewire``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import secrets
import sys
import types
import typing
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
    # Seconds between looks for unfinished jobs that no session follows (after a
    # dropped link or a restart): a live session of the owner asks about them, or
    # the server logs in itself where it can.
    follow_interval: float = 60.0
    debug: bool = False
    # HTTPS when both are set (PEM files); login cookies are then Secure.
    certfile: str = ""
    keyfile: str = ""
    # Audit lines (logins, sessions, jobs) also go to this file when set.
    audit_log: str = ""


@dataclass
class AuthConfig:
    mode: str = "token"  # "token" (one user, the server token) or "users"
    users_file: str = ""  # default: DATA_DIR/users.toml
    # A header set by a trusted reverse proxy naming the user (single sign-on),
    # honoured only from trusted_proxies.  Off when empty.
    trusted_header: str = ""
    trusted_proxies: list[str] = field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    login_days: float = 7.0
    # Users mode: signs login cookies and webhook secrets; default a generated
    # DATA_DIR/secret_key (mode 0600).
    secret_key: str = ""
    # Failed logins (password or Basic) from one address before a pause.
    max_failed_logins: int = 10


@dataclass
class LimitsConfig:
    max_body_bytes: int = 8 << 20
    max_images: int = 100_000
    sessions_per_user: int = 16
    jobs_per_user: int = 8  # queued or running at once
    requests_per_minute: int = 1200  # per user; 0 = no limit


@dataclass
class OutgoingConfig:
    # Webhooks and deliveries.  A URL's host must match allow_hosts and none
    # of deny_hosts (shell-style patterns); each address it resolves to must
    # not be loopback, link-local, private or otherwise special unless it is
    # in allow_networks, and never in deny_networks.
    allow_hosts: list[str] = field(default_factory=lambda: ["*"])
    deny_hosts: list[str] = field(default_factory=list)
    allow_networks: list[str] = field(default_factory=list)
    deny_networks: list[str] = field(default_factory=list)
    max_redirects: int = 3


@dataclass
class HostConfig:
    """A host profile: ``[hosts."NAME"]``, where NAME may be a pattern
    (``"*.cluster.example.org"``) and ``aliases`` name the same host."""

    aliases: list[str] = field(default_factory=list)
    hostname: str = ""  # the name to connect to; default the requested one
    port: int = 0  # default: the request's port, else ~/.ssh/config's, else 22
    username: str = ""  # the remote user when a request names none
    # Bastions, first hop first: "[user@]host[:port]" (each may be a profile too).
    jump: list[str] = field(default_factory=list)
    # Keys (and their certificates) the server logs in with to this host.
    client_keys: list[str] = field(default_factory=list)
    client_certs: list[str] = field(default_factory=list)
    # Framewire users who may use those keys; ["*"] for everyone.
    key_users: list[str] = field(default_factory=lambda: ["*"])
    host_key_policy: str = ""  # "strict" or "accept-new"; default [ssh] host_key_policy
    python: str = ""  # tried before python3, python3.x and /usr/bin/python3
    ffmpeg: str = ""  # tried before ffmpeg on PATH and the usual places
    work_dir: str = ""  # the agent's and jobs' directory; default ~/.cache/framewire
    # Commands run before the agent, each an argv list: [["module", "load", "ffmpeg"]].
    setup: list[list[str]] = field(default_factory=list)
    # Upload the server's bundled static ffmpeg when the host has none usable
    # (Linux x86_64 only); default [ssh] provision_ffmpeg.
    provision_ffmpeg: bool | None = None
    # The CPU priority (nice, 0-19) of this host's encodes; default [ssh] nice.
    nice: int | None = None
    # Where jobs run unless a request says: "local" (default) or "slurm" (batch jobs on
    # the cluster's compute nodes), and the Slurm defaults: partition, account, qos,
    # time ("00:30:00"), cpus_per_task, mem ("4G"), and extra sbatch options the
    # administrator allows ("--constraint=avx2"); requests may change only partition,
    # time, cpus and mem.
    executor: str = ""
    # Set-up commands a Slurm batch script runs after `setup`, on the compute node only
    # (modules the nodes need, such as [["module", "load", "ffmpeg"]]).
    batch_setup: list[list[str]] = field(default_factory=list)
    partition: str = ""
    account: str = ""
    qos: str = ""
    time: str = ""
    cpus_per_task: int = 0
    mem: str = ""
    sbatch_options: list[str] = field(default_factory=list)
    # A chunked job's tasks running at once on this host (Slurm: the job array's %M
    # cap; locally: processes); 0: every chunk at once on Slurm, the cores locally.
    max_parallel_chunks: int = 0


@dataclass
class SSHConfig:
    known_hosts: str = field(default_factory=lambda: _home(".ssh", "known_hosts"))
    # Keys the server itself logs in with when a request brings no password.
    client_keys: list[str] = field(default_factory=list)
    python: str = "python3"
    # "strict": only keys in known_hosts; "accept-new": record a first key
    # (a changed key is always refused).
    host_key_policy: str = "strict"
    # Hostnames POST /remotes may name (shell-style patterns).
    allowed_hosts: list[str] = field(default_factory=lambda: ["*"])
    # The server account's OpenSSH client configuration: Host, HostName, Port,
    # User, ProxyJump and IdentityFile are honoured ("" to ignore it).
    ssh_config: str = field(default_factory=lambda: _home(".ssh", "config"))
    # Upload the bundled static ffmpeg to hosts without a usable one.
    provision_ffmpeg: bool = False
    # Encodes run at this CPU priority (nice 0-19) below the agent, so browsing,
    # thumbnails, status and downloads stay quick while they fill the cores.
    nice: int = 10
    connect_timeout: float = 20.0
    agent_start_timeout: float = 60.0
    # AES-GCM first: with AES-NI it streams ~1.4x faster than chacha20.
    encryption_algs: list[str] = field(default_factory=lambda: [
        "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"])


@dataclass
class LocalConfig:
    # The local transport runs agents as the server's own account: on by
    # default in token mode, off in users mode unless set to true.
    enabled: bool | None = None
    hostnames: list[str] = field(default_factory=lambda: ["localhost"])
    # ffmpeg for local agents; empty means PATH, then imageio-ffmpeg's binary.
    ffmpeg: str = ""
    work_dir: str = ""
    # The CPU priority (nice 0-19) of local encodes, below the server's own.
    nice: int = 10


@dataclass
class WebhookConfig:
    # Seconds before each retry; a delivery gives up after the last one.
    retry_schedule: list[float] = field(default_factory=lambda: [
        5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0])
    default_timeout: float = 10.0
    poll_interval: float = 0.5
    # Deliveries in flight at once (one per job at a time, so a job's messages
    # keep their order).
    concurrency: int = 8


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
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    outgoing: OutgoingConfig = field(default_factory=OutgoingConfig)
    hosts: dict[str, HostConfig] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return os.path.join(self.server.data_dir, "framewire.sqlite3")

    @property
    def users_file(self) -> str:
        return self.auth.users_file or os.path.join(self.server.data_dir, "users.toml")

    @property
    def local_enabled(self) -> bool:
        if self.local.enabled is None:
            return self.auth.mode != "users"
        return self.local.enabled

    def profile(self, hostname: str) -> tuple[str, HostConfig] | None:
        """The host profile for ``hostname``: its own name, then an alias, then the
        first pattern that matches, in file order."""
        name = hostname.lower()
        for key, profile in self.hosts.items():
            if key.lower() == name:
                return key, profile
        for key, profile in self.hosts.items():
            if name in (alias.lower() for alias in profile.aliases):
                return key, profile
        for key, profile in self.hosts.items():
            if any(char in key for char in "*?[") and fnmatch.fnmatchcase(name, key.lower()):
                return key, profile
        return None

    def host(self, hostname: str) -> HostConfig:
        found = self.profile(hostname)
        return found[1] if found else HostConfig()

    def host_key_policy(self, hostname: str) -> str:
        return self.host(hostname).host_key_policy or self.ssh.host_key_policy


# Slurm's time (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]) and memory ("4G") forms.
SLURM_TIME = re.compile(r"^(?:(\d{1,4})-)?(\d{1,5}(?::\d{1,2}){0,2})$")
SLURM_MEM = re.compile(r"^([1-9][0-9]{0,8})([KMGT]?)$")


class ConfigError(Exception):
    pass


def _describe(value: Any) -> str:
    """What a TOML value is, for an error message."""
    kinds = {bool: "a boolean", int: "a whole number", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    kind = next((text for cls, text in kinds.items() if type(value) is cls), "a value")
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 60 else shown[:57] + '...'}"


_EXPECTED = {str: "a string", int: "a whole number", float: "a number",
             bool: "true or false"}


def _typed(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the field type ``hint`` (and a lone string taken as
    a one-item list where a list of strings is expected, as ssh_config writes
    them); a wrong type raises ConfigError naming ``key``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        kinds = [arg for arg in args if arg is not type(None)]
        return _typed(value, kinds[0], key)
    if origin is list:
        item = args[0]
        if isinstance(value, str) and item is str:
            return [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of {_plural(item)}, found "
                              f"{_describe(value)}")
        return [_typed(entry, item, f"{key}[{index}]") for index, entry in enumerate(value)]
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, found {_describe(value)}")
        return float(value)
    if hint in (str, int, bool):
        if type(value) is not hint:
            raise ConfigError(f"{key} must be {_EXPECTED[hint]}, found {_describe(value)}")
        return value
    raise AssertionError(f"no type check for {hint!r}")  # a new kind of setting


def _plural(item: Any) -> str:
    if typing.get_origin(item) is list:
        return "lists of " + _plural(typing.get_args(item)[0])
    return {str: "strings", int: "whole numbers", float: "numbers"}.get(item, "values")


def _apply(target: Any, values: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(target))
    known = {f.name for f in fields(target)}
    for key, value in values.items():
        name = key.replace("-", "_")
        path = f"{where}.{key}" if where else key
        if name not in known:
            raise ConfigError(f"unknown setting {path!r} "
                              f"(known in {where or 'the file'}: {', '.join(sorted(known))})")
        current = getattr(target, name)
        if name == "hosts" and isinstance(target, Config):
            if not isinstance(value, dict):
                raise ConfigError(f"hosts must be a table of host tables, found "
                                  f"{_describe(value)}")
            for host, settings in value.items():
                if not isinstance(settings, dict):
                    raise ConfigError(f'hosts."{host}" must be a table, found '
                                      f"{_describe(settings)}")
                entry = HostConfig()
                _apply(entry, settings, f'hosts."{host}"')
                current[host] = entry
            continue
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"[{path}] must be a table, found {_describe(value)}")
            _apply(current, value, path)
        else:
            setattr(target, name, _typed(value, hints[name], path))


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
        try:
            _apply(config, data, "")
            check(config)
        except ConfigError as error:
            raise ConfigError(f"config file {path}: {error}") from None
    if env.get("FRAMEWIRE_TOKEN"):
        config.server.token = env["FRAMEWIRE_TOKEN"]
    if env.get("FRAMEWIRE_DATA_DIR"):
        config.server.data_dir = env["FRAMEWIRE_DATA_DIR"]
    if env.get("FRAMEWIRE_KNOWN_HOSTS"):
        config.ssh.known_hosts = env["FRAMEWIRE_KNOWN_HOSTS"]
    check(config)
    return config


def check(config: Config) -> None:
    """Refuse settings that cannot work, naming the setting."""
    import ipaddress

    if config.auth.mode not in ("token", "users"):
        raise ConfigError(f"auth.mode must be \"token\" or \"users\", not {config.auth.mode!r}")
    policies = ("strict", "accept-new")
    if config.ssh.host_key_policy not in policies:
        raise ConfigError("ssh.host_key_policy must be \"strict\" or \"accept-new\"")
    for name, host in config.hosts.items():
        if host.host_key_policy and host.host_key_policy not in policies:
            raise ConfigError(f"hosts.{name}.host_key_policy must be \"strict\" or "
                              "\"accept-new\"")
        for key in ("setup", "batch_setup"):
            steps = getattr(host, key)
            if not isinstance(steps, list) or not all(
                    isinstance(step, list) and step and all(isinstance(a, str) for a in step)
                    for step in steps):
                raise ConfigError(f"hosts.{name}.{key} must list commands as argv lists, "
                                  "e.g. [[\"module\", \"load\", \"ffmpeg\"]]")
        if not isinstance(host.port, int) or not 0 <= host.port <= 65535:
            raise ConfigError(f"hosts.{name}.port must be a port number")
        if host.executor not in ("", "local", "slurm"):
            raise ConfigError(f"hosts.{name}.executor must be \"local\" or \"slurm\", found "
                              f"{host.executor!r}")
        for option in host.sbatch_options:
            if not option.startswith("--") or any(char in option for char in "\n\r\0"):
                raise ConfigError(f"hosts.{name}.sbatch_options: {option!r} is not an sbatch "
                                  "option such as \"--constraint=avx2\"")
        if host.time and not SLURM_TIME.match(host.time):
            raise ConfigError(f"hosts.{name}.time must be a Slurm time such as \"30\" "
                              f"(minutes), \"02:00:00\" or \"1-00:00\", found {host.time!r}")
        if host.mem and not SLURM_MEM.match(host.mem):
            raise ConfigError(f"hosts.{name}.mem must be memory as Slurm writes it, such as "
                              f"\"4G\", found {host.mem!r}")
        if host.cpus_per_task < 0:
            raise ConfigError(f"hosts.{name}.cpus_per_task must be 1 or more (0: Slurm's "
                              "default)")
        if not 0 <= host.max_parallel_chunks <= 1024:
            raise ConfigError(f"hosts.{name}.max_parallel_chunks must be from 1 to 1024 (0: "
                              f"no cap), found {host.max_parallel_chunks}")
        if host.nice is not None and not 0 <= host.nice <= 19:
            raise ConfigError(f"hosts.{name}.nice must be a priority from 0 to 19, found "
                              f"{host.nice}")
    for setting, priority in (("ssh.nice", config.ssh.nice), ("local.nice", config.local.nice)):
        if not 0 <= priority <= 19:
            raise ConfigError(f"{setting} must be a priority from 0 to 19 (19 is the lowest), "
                              f"found {priority}")
    for key in ("allow_networks", "deny_networks"):
        for entry in getattr(config.outgoing, key):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"outgoing.{key}: {entry!r} is not a network such as "
                                  "\"10.0.0.0/8\"") from None
    for entry in config.auth.trusted_proxies:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(f"auth.trusted_proxies: {entry!r} is not an address or "
                              "network") from None
    if bool(config.server.certfile) != bool(config.server.keyfile):
        raise ConfigError("server.certfile and server.keyfile go together: set both for HTTPS")
    for key in ("max_body_bytes", "max_images", "sessions_per_user", "jobs_per_user"):
        value = getattr(config.limits, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"limits.{key} must be a whole number of at least 1")
    for key, value in (("server.follow_interval", config.server.follow_interval),
                       ("server.session_idle_timeout", config.server.session_idle_timeout),
                       ("ssh.connect_timeout", config.ssh.connect_timeout),
                       ("ssh.agent_start_timeout", config.ssh.agent_start_timeout),
                       ("webhooks.default_timeout", config.webhooks.default_timeout),
                       ("webhooks.poll_interval", config.webhooks.poll_interval),
                       ("retention.sweep_interval", config.retention.sweep_interval),
                       ("auth.login_days", config.auth.login_days)):
        if not value > 0:
            raise ConfigError(f"{key} must be a number of seconds above 0, found {value!r}"
                              if key != "auth.login_days" else
                              f"{key} must be a number of days above 0, found {value!r}")
    if not 0 <= config.server.port <= 65535:
        raise ConfigError(f"server.port must be a port number (0 to 65535), found "
                          f"{config.server.port}")
    if config.retention.default_days < 0:
        raise ConfigError("retention.default_days must be 0 (never) or more days")
    concurrency = config.webhooks.concurrency
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError("webhooks.concurrency must be a whole number of at least 1")
    if not isinstance(config.limits.requests_per_minute, int) or \
            config.limits.requests_per_minute < 0:
        raise ConfigError("limits.requests_per_minute must be a whole number (0 = no limit)")


def ensure_token(config: Config) -> bool:
    """Generate a token when none is configured; True if one was generated."""
    if config.server.token or config.auth.mode == "users":
        return False
    config.server.token = secrets.token_urlsafe(24)
    return True
