"""Per-model rate limits: requests and tokens per minute, and calls in flight.

Providers count requests in a sliding 60-second window, so this limiter does
too: it keeps the grant times of the last minute and lets a request through only
when fewer than ``requests_per_minute`` were granted in the 60 seconds before
it. Unlike a token bucket that starts full, this never lets more than the limit
into any window, including the first one (C36).

One :class:`RateLimiter` exists per model identity and clock in the process
(:func:`limiter_for`), so every run that uses a model shares its budget. After a
429 the limiter pauses all callers until the server's ``Retry-After`` has
passed, and halves the number of calls it lets run at once; each success wins
one back (additive increase, multiplicative decrease).

The limiter holds no loop-bound asyncio objects, so it may be used from any event
loop, one at a time (the background loop in practice).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from maquina_nb._redact import get_logger
from maquina_nb.providers.retry import SYSTEM_CLOCK, Clock

__all__ = ["Grant", "RateLimiter", "limiter_for"]

logger = get_logger(__name__)

WINDOW_S = 60.0


@dataclass
class Grant:
    """One admitted request; its token count can be corrected afterwards."""

    time: float
    tokens: int


class RateLimiter:
    """Sliding-window RPM/TPM limits plus a cap on calls in flight.

    Args:
        requests_per_minute: Most requests in any 60-second window; ``None`` for
            no limit.
        tokens_per_minute: Most tokens (estimated at admission, corrected with
            the reported usage) in any 60-second window.
        max_in_flight: Most calls running at once; ``None`` for no limit.
        clock: Time source; tests pass a fake one.
        name: Shown in log messages.
    """

    def __init__(
        self,
        *,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        max_in_flight: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "model",
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.name = name
        self.window_s = WINDOW_S

        self._grants: deque[Grant] = deque()
        self._paused_until = float("-inf")
        self._in_flight = 0
        self._adaptive_cap: float | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.granted = 0
        """Requests admitted so far (for tests and statistics)."""
        self.throttled = 0
        """429s reported so far."""

    def __repr__(self) -> str:
        return (
            f"<RateLimiter {self.name!r} rpm={self.requests_per_minute} "
            f"tpm={self.tokens_per_minute} max_in_flight={self.max_in_flight}>"
        )

    # --- admission ----------------------------------------------------------

    def _expire(self, now: float) -> None:
        while self._grants and self._grants[0].time <= now - self.window_s:
            self._grants.popleft()

    def _wait_needed(self, tokens: int) -> float:
        """Seconds until a request of ``tokens`` may start; 0 when it may now."""
        now = self.clock.monotonic()
        self._expire(now)
        waits = [self._paused_until - now]

        rpm = self.requests_per_minute
        if rpm is not None and len(self._grants) >= rpm:
            # The slot frees when the grant rpm-from-the-end leaves the window.
            waits.append(self._grants[-rpm].time + self.window_s - now)

        tpm = self.tokens_per_minute
        if tpm is not None and self._grants:
            used = sum(grant.tokens for grant in self._grants)
            if used + tokens > tpm:
                # Free the oldest grants until this request fits (or none is left,
                # so a request larger than the whole budget still runs alone).
                freed = used
                for grant in self._grants:
                    freed -= grant.tokens
                    if freed + tokens <= tpm:
                        break
                waits.append(grant.time + self.window_s - now)
        return max(0.0, *waits)

    def _cap(self) -> float | None:
        caps = [c for c in (self.max_in_flight, self._adaptive_cap) if c is not None]
        return min(caps) if caps else None

    async def _wait_for_slot(self) -> None:
        while True:
            cap = self._cap()
            if cap is None or self._in_flight < max(1, int(cap)):
                return
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            finally:
                if future in self._waiters:
                    self._waiters.remove(future)

    def _wake_one(self) -> None:
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.get_loop().call_soon_threadsafe(_resolve, future)
                return

    @asynccontextmanager
    async def slot(self, tokens: int = 0) -> AsyncIterator[Grant]:
        """Wait for a free call slot and a place in the window, then hold both.

        Args:
            tokens: Estimated tokens for the TPM budget; correct it afterwards
                with :meth:`settle`.

        Yields:
            The :class:`Grant`, whose ``tokens`` :meth:`settle` updates.
        """
        await self._wait_for_slot()
        self._in_flight += 1
        try:
            grant = await self._admit(tokens)
            yield grant
        finally:
            self._in_flight -= 1
            self._wake_one()

    async def _admit(self, tokens: int) -> Grant:
        while True:
            wait = self._wait_needed(tokens)
            if wait <= 0:
                grant = Grant(self.clock.monotonic(), tokens)
                self._grants.append(grant)
                self.granted += 1
                return grant
            logger.debug("rate limit for %s: waiting %.2fs", self.name, wait)
            await self.clock.sleep(wait)

    def settle(self, grant: Grant, tokens: int | None) -> None:
        """Replace a grant's estimated tokens with the reported usage."""
        if tokens is not None:
            grant.tokens = tokens

    # --- feedback from responses --------------------------------------------

    def record_success(self) -> None:
        """Let the adaptive cap grow back by one call after a success."""
        if self._adaptive_cap is not None:
            self._adaptive_cap += 1
            if (self.max_in_flight is None and self._adaptive_cap > 1024) or (
                self.max_in_flight is not None
                and self._adaptive_cap >= self.max_in_flight
            ):
                self._adaptive_cap = None
            self._wake_one()

    def paused_for(self) -> float:
        """Return the seconds left of the pause the last ``Retry-After`` asked for."""
        return max(0.0, self._paused_until - self.clock.monotonic())

    def record_rate_limited(self, retry_after: float | None) -> None:
        """Pause every caller until ``retry_after`` and halve the calls in flight."""
        self.throttled += 1
        now = self.clock.monotonic()
        if retry_after is not None:
            self._paused_until = max(self._paused_until, now + retry_after)
        current = self._cap() or max(2, self._in_flight)
        self._adaptive_cap = max(1.0, current / 2)
        logger.debug(
            "rate limited on %s: pausing %.2fs, at most %d in flight",
            self.name,
            retry_after or 0.0,
            int(self._adaptive_cap),
        )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_registry: dict[tuple[str, int], RateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(
    key: str,
    *,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    max_in_flight: int | None,
    clock: Clock = SYSTEM_CLOCK,
) -> RateLimiter:
    """Return the process-wide limiter for ``key`` (a model identity), updating limits.

    Every model object with the same identity and clock shares one limiter, so
    two runs, or two aliases for one model, draw from one budget.
    """
    with _registry_lock:
        limiter = _registry.get((key, id(clock)))
        if limiter is None:
            limiter = RateLimiter(clock=clock, name=key)
            _registry[(key, id(clock))] = limiter
        limiter.requests_per_minute = requests_per_minute
        limiter.tokens_per_minute = tokens_per_minute
        limiter.max_in_flight = max_in_flight
        return limiter
