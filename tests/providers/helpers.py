"""Helpers shared by the model-layer tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from maquina_nb.providers.base import Message, ModelRequest


def ask(
    text: str = "Say hi", *, system: str | None = None, **params: object
) -> ModelRequest:
    messages = ((Message("system", system),) if system else ()) + (
        Message("user", text),
    )
    return ModelRequest(messages, **params)  # type: ignore[arg-type]


class FakeClock:
    """A clock whose sleeps move time forward at once.

    ``settle`` runs before each jump, so requests already admitted reach the fake
    server (and get logged with the current time) before time moves on.
    """

    def __init__(self, settle: Callable[[], Awaitable[None]] | None = None) -> None:
        self.now = 1000.0
        self.epoch = 1_700_000_000.0
        self.settle = settle
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.epoch + self.now

    async def sleep(self, seconds: float) -> None:
        target = self.now + max(0.0, seconds)
        self.sleeps.append(seconds)
        if self.settle is not None:
            await self.settle()
        self.now = max(self.now, target)
        await asyncio.sleep(0)


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (bounded) on the running loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.002)
