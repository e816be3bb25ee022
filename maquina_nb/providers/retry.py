"""When and how long to wait before trying a provider call again.

The SDKs' own retry loops are switched off (``max_retries=0``) for chat calls:
a 429 must pause *every* queued request to that model, not only the one that got
it, so the retry decision has to be made where the per-model rate limiter
lives (see :mod:`maquina_nb.providers.ratelimit`). This module holds the
policy: which failures are worth another attempt, and how long to wait, with
the server's ``Retry-After`` taking precedence over exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "RetryPolicy",
    "parse_retry_after",
]

# Headers that announce when a limit resets. Checked in this order; the first
# one present wins. ``retry-after-ms`` is OpenAI's millisecond variant.
_RESET_HEADERS = (
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
)


class Clock(Protocol):
    """Time source used by rate limits and retries; tests inject a fake one."""

    def monotonic(self) -> float:
        """Return seconds on a monotonic scale."""
        ...

    def time(self) -> float:
        """Return wall-clock seconds since the epoch (for HTTP dates)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "<SystemClock>"


SYSTEM_CLOCK: Clock = _SystemClock()


def _parse_duration(value: str) -> float | None:
    """Parse ``"1.5"``, ``"20ms"``, ``"6m0s"``, ``"1h2m3.5s"`` into seconds."""
    value = value.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    index = 0
    while index < len(value):
        char = value[index]
        if char.isdigit() or char == ".":
            number += char
        elif value.startswith("ms", index) and number:
            total += float(number) / 1000
            number = ""
            index += 1
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            return None
        index += 1
    return total if not number else None


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Return how many seconds the server asked us to wait, or ``None``.

    Reads ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date), then the
    OpenAI and Anthropic rate-limit reset headers (durations such as ``6m0s`` or
    RFC 3339 timestamps).

    Args:
        headers: Response headers (case-insensitive mapping or plain dict).
        now: Wall-clock time for HTTP dates; default ``time.time()``.
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    now = time.time() if now is None else now

    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass

    value = lowered.get("retry-after")
    if value is not None:
        seconds = _parse_seconds_or_date(value, now)
        if seconds is not None:
            return seconds

    for name in _RESET_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        seconds = _parse_duration(value)
        if seconds is None:
            seconds = _parse_seconds_or_date(value, now)
        if seconds is not None:
            return max(0.0, seconds)
    return None


def _parse_seconds_or_date(value: str, now: float) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None

    parsed = None
    with contextlib.suppress(TypeError, ValueError):
        parsed = email.utils.parsedate_to_datetime(value)
    if parsed is None:
        try:
            from datetime import datetime

            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return None
    return max(0.0, parsed.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a call gets and how long to wait between them."""

    max_attempts: int = 4
    """Attempts in total, the first one included."""
    initial_backoff: float = 0.5
    """Wait before the second attempt when the server gives no hint."""
    max_backoff: float = 8.0
    """Cap on the exponential backoff."""
    max_retry_after: float = 120.0
    """Longest server-requested wait we honour; longer ones end the call."""
    jitter: float = 0.25
    """Fraction of random spread added to backoff (never to ``Retry-After``)."""

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Return the wait before attempt ``attempt + 1``, or ``None`` to give up.

        Args:
            attempt: Number of attempts made so far (1 after the first).
            retry_after: Server-requested wait in seconds, if any.
        """
        if attempt >= self.max_attempts:
            return None

        # The server's word wins, exactly: waiting less earns another 429.
        if retry_after is not None:
            return None if retry_after > self.max_retry_after else retry_after

        backoff = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return float(backoff * (1 + self.jitter * random.random()))
