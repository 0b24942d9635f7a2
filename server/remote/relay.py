"""Keyboard-interactive questions of a remote login, relayed to the HTTP client."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence


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
