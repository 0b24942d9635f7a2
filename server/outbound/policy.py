"""Where the server may send webhooks and uploads (``[outgoing]``).

A URL is checked twice: when a job names it (scheme, host patterns, a
literal address) and when a request goes out, by the resolver itself, so a
name that resolves to a denied address, or a redirect to one, never gets a
connection.  Addresses that are not globally routable (loopback,
link-local, private, shared, multicast, reserved; IPv4-mapped forms too)
are denied unless ``allow_networks`` holds them; ``deny_networks`` always
wins.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from tornado.httpclient import AsyncHTTPClient
from tornado.netutil import DefaultExecutorResolver, Resolver

from .. import errors
from ..config import OutgoingConfig

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Denied(OSError):
    """A connection the outgoing policy refuses (a failed attempt, logged)."""


class OutgoingPolicy:
    def __init__(self, config: OutgoingConfig) -> None:
        self.config = config
        self.allow = [ipaddress.ip_network(entry, strict=False)
                      for entry in config.allow_networks]
        self.deny = [ipaddress.ip_network(entry, strict=False) for entry in config.deny_networks]
        self._client: AsyncHTTPClient | None = None

    def address_refusal(self, address: Address) -> str | None:
        """Why ``address`` may not be reached, or None."""
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        if any(address in network for network in self.deny):
            return f"{address} is in [outgoing] deny_networks"
        if any(address in network for network in self.allow):
            return None
        if not address.is_global or address.is_multicast:
            kind = ("loopback" if address.is_loopback else "link-local"
                    if address.is_link_local else "private" if address.is_private
                    else "not a public")
            return (f"{address} is a {kind} address; allow it with [outgoing] "
                    "allow_networks")
        return None

    def host_refusal(self, host: str) -> str | None:
        name = host.lower().rstrip(".")
        if not any(fnmatch.fnmatchcase(name, pattern.lower())
                   for pattern in self.config.allow_hosts):
            return f"{host} is not in [outgoing] allow_hosts"
        if any(fnmatch.fnmatchcase(name, pattern.lower())
               for pattern in self.config.deny_hosts):
            return f"{host} is in [outgoing] deny_hosts"
        try:
            address = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            return None
        return self.address_refusal(address)

    def check_url(self, url: Any, field: str) -> str:
        """``url`` if a job may name it; else a 400 naming ``field``."""
        try:
            parts = urlsplit(url) if isinstance(url, str) else None  # raises on a bad [v6]
            host = parts.hostname if parts is not None else None
            parts.port if parts is not None else None  # noqa: B018 (raises on a bad port)
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host \
                or len(url) > 2048 or any(ord(char) < 0x21 for char in url):
            raise errors.ValidationError(field, f"{field} must be an http or https URL.")
        refusal = self.host_refusal(host)
        if refusal is not None:
            raise errors.ValidationError(field, f"{field} may not be used: {refusal}.",
                                         hint="The server's [outgoing] policy decides where "
                                              "webhooks and uploads may go.")
        return str(url)

    @property
    def client(self) -> AsyncHTTPClient:
        """An HTTP client whose every connection passes the policy."""
        if self._client is None:
            self._client = AsyncHTTPClient(force_instance=True,
                                           resolver=PolicyResolver(self))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class PolicyResolver(Resolver):
    def initialize(self, policy: OutgoingPolicy) -> None:
        self.policy = policy
        self.inner = DefaultExecutorResolver()

    async def resolve(self, host: str, port: int,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[Any]:
        refusal = self.policy.host_refusal(host)
        if refusal is not None:
            raise Denied(f"refused by the outgoing policy: {refusal}")
        addresses = await self.inner.resolve(host, port, family)
        allowed, refusals = [], []
        for family_, sockaddr in addresses:
            why = self.policy.address_refusal(ipaddress.ip_address(sockaddr[0]))
            if why is None:
                allowed.append((family_, sockaddr))
            else:
                refusals.append(why)
        if not allowed:
            raise Denied(f"refused by the outgoing policy: {refusals[0]}" if refusals
                         else f"{host} has no address")
        return allowed
