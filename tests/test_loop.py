"""The sync bridge to the background loop, under interrupts."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from maquina_nb import _loop


def test_an_interrupt_just_after_scheduling_cancels_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = _loop.get_loop()
    schedule = loop.call_soon_threadsafe
    caller = threading.current_thread()
    interrupted = threading.Event()
    ran = threading.Event()
    cancelled = threading.Event()

    def schedule_then_interrupt(*args: Any, **kwargs: Any) -> Any:
        handle = schedule(*args, **kwargs)
        # Only the caller's own call: the loop's worker threads use it too.
        if threading.current_thread() is caller and not interrupted.is_set():
            # Ctrl-C lands in the caller once the work is scheduled, before it waits.
            interrupted.set()
            raise KeyboardInterrupt
        return handle

    async def work() -> None:
        ran.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(loop, "call_soon_threadsafe", schedule_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _loop.run_sync(work())
    monkeypatch.undo()

    # The loop runs callbacks in order: once this returns, it has handled the
    # cancellation. The work either never started or was cancelled.
    _loop.run_sync(asyncio.sleep(0))
    assert interrupted.is_set()
    assert cancelled.is_set() or not ran.is_set()


def test_run_sync_returns_results_and_raises_errors() -> None:
    async def answer() -> int:
        return 42

    async def fail() -> None:
        raise ValueError("no")

    assert _loop.run_sync(answer()) == 42
    with pytest.raises(ValueError, match="no"):
        _loop.run_sync(fail())
