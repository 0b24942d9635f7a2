"""Which connections reach a host: its profile, ~/.ssh/config, jump hosts, and the
keys the server may log in with.  No network here: routes are worked out first."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .. import errors
from ..config import Config, HostConfig
from . import ssh_config


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
        return host_label(self.hostname, self.port)


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
            raise errors.ServerConfigError(
                f"The jump host {spec!r} is not [user@]host[:port].", code="jump-config",
                hint="Fix the jump list of this host's profile (or ProxyJump in ~/.ssh/config).")
        jumps.append(hop(config, match.group("host").strip("[]"),
                         int(match.group("port")) if match.group("port") else None,
                         match.group("user") or target.username))
    if len(jumps) > 8:
        raise errors.ServerConfigError("More than 8 jump hosts.", code="jump-config")
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


def known_name(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"'[{hostname}]:{port}'"


def host_label(hostname: str, port: int) -> str:
    return hostname if port == 22 else f"{hostname}:{port}"
