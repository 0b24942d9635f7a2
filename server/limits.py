"""Per-user request rates and failed-login pauses, in memory."""

from __future__ import annotations

import math
import time

from . import errors


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled evenly."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def allows(self, key: str) -> bool:
        """Whether a request of ``key``'s would pass now (nothing counted)."""
        if self.per_minute <= 0:
            return True
        tokens, at = self._buckets.get(key, (float(self.per_minute), 0.0))
        return tokens + (time.monotonic() - at) * self.per_minute / 60.0 >= 1.0

    def hit(self, key: str) -> None:
        """Count one request; raise 429 with Retry-After when over the rate."""
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / rate))
            raise errors.TooManyRequests(
                f"Too many requests: the limit is {self.per_minute} a minute.",
                hint=f"Retry after {wait} s.", headers={"Retry-After": str(wait)})
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()


class LoginGuard:
    """After ``limit`` failed logins of one presented identity from one address
    within ``WINDOW``, a pause for that identity from that address.

    The identity is what a login claims to be (a user name, or a digest of the
    token tried), so a script that keeps sending a wrong token pauses itself and
    nobody else behind the same address (a reverse proxy, a NAT): other users,
    other tokens and the login cookie go on.  A user name under attack from one
    address is paused there, for everyone who claims it from there; the
    alternative is unlimited password guessing.
    """

    WINDOW = 600.0

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._failures: dict[tuple[str, str], list[float]] = {}

    def _recent(self, key: tuple[str, str]) -> list[float]:
        now = time.monotonic()
        recent = [at for at in self._failures.get(key, []) if now - at < self.WINDOW]
        if recent:
            self._failures[key] = recent
        else:
            self._failures.pop(key, None)
        return recent

    @property
    def quiet(self) -> bool:
        """No failed login on record from anywhere (the usual case)."""
        return not self._failures

    def wait(self, address: str, identity: str) -> int:
        """Seconds until ``identity`` may try again from ``address``; 0: now."""
        recent = self._recent((address, identity))
        if len(recent) < self.limit:
            return 0
        return max(1, math.ceil(self.WINDOW - (time.monotonic() - recent[0])))

    def check(self, address: str, identity: str) -> None:
        wait = self.wait(address, identity)
        if wait:
            raise errors.TooManyRequests(
                "Too many failed logins with these credentials from this address.",
                hint=f"Retry after {wait} s, with the right credentials.",
                headers={"Retry-After": str(wait)})

    def failed(self, address: str, identity: str) -> None:
        key = (address, identity)
        self._recent(key)
        self._failures.setdefault(key, []).append(time.monotonic())
        if len(self._failures) > 100_000:
            self._failures.clear()

    def succeeded(self, address: str, identity: str) -> None:
        self._failures.pop((address, identity), None)
