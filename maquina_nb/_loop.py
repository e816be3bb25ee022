"""The one background event loop and the sync bridge to it.

A Jupyter kernel already runs an asyncio loop in the main thread, so
``asyncio.run`` fails inside a cell. All network work runs on one long-lived loop
in a daemon thread instead; SDK clients created on it stay usable across calls.
:func:`run_sync` submits a coroutine and waits; a ``KeyboardInterrupt`` while
waiting (Ctrl-C, or a kernel interrupt) cancels the coroutine, waits briefly for
its cleanup (so finished work is stored) and re-raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from maquina_nb._redact import get_logger

__all__ = ["get_loop", "in_background_loop", "run_sync", "submit"]

logger = get_logger(__name__)

T = TypeVar("T")

# How long an interrupted call may take to cancel its tasks and flush what
# finished before control returns to the user (C04 asks for about a second).
_CANCEL_GRACE_S = 3.0

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """Return the background loop, starting its daemon thread on first use."""
    global _loop, _thread

    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop

        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def _run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=_run, name="maquina-nb-loop", daemon=True)
        thread.start()
        ready.wait(timeout=10)
        _loop, _thread = loop, thread
        logger.debug("background event loop started")
        return loop


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule ``coro`` on the background loop and return its future."""
    return asyncio.run_coroutine_threadsafe(coro, get_loop())


def in_background_loop() -> bool:
    """Tell whether the caller runs on the background loop's thread."""
    return _thread is not None and threading.current_thread() is _thread


def run_sync(coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and wait for its result.

    Safe inside a running Jupyter kernel and in a plain script. On
    ``KeyboardInterrupt`` the coroutine is cancelled, given a short grace period
    to record what finished, and the interrupt is re-raised.

    Raises:
        RuntimeError: when called from the background loop itself (it would
            deadlock); use ``await`` there instead.
    """
    if in_background_loop():
        coro.close()
        raise RuntimeError(
            "run_sync was called on maquina_nb's own event loop; await the "
            "coroutine instead."
        )

    # The future exists before anything is scheduled, so an interrupt landing
    # anywhere below can cancel the work; `finished` says when the coroutine
    # has really finished its cleanup (a cancelled future reports "done" first).
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    finished = threading.Event()
    scheduled = False
    try:
        _schedule(coro, future, finished)
        scheduled = True
        return future.result(timeout=timeout)
    except KeyboardInterrupt:
        logger.debug("interrupt received; cancelling the background call")
        future.cancel()
        if scheduled:
            finished.wait(timeout=_CANCEL_GRACE_S)
        raise


def _schedule(
    coro: Coroutine[Any, Any, T],
    future: concurrent.futures.Future[T],
    finished: threading.Event,
) -> None:
    """Run ``coro`` on the background loop, reporting into ``future``.

    Like :func:`asyncio.run_coroutine_threadsafe`, except that the caller
    holds the future before the coroutine is scheduled: cancelling it before
    the coroutine starts means it never runs, and after that cancels its task.
    ``finished`` is set once the coroutine has returned or never will run.
    """
    loop = get_loop()

    async def _tracked() -> T:
        try:
            return await coro
        finally:
            finished.set()

    def _report(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            future.cancel()
            return
        error = task.exception()
        if not future.set_running_or_notify_cancel():
            return  # cancelled by the caller meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())

    def _begin() -> None:
        if future.cancelled():
            coro.close()
            finished.set()
            return
        task = loop.create_task(_tracked())
        task.add_done_callback(_report)

        def _cancel_task(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled():
                loop.call_soon_threadsafe(task.cancel)

        # Called at once if the caller cancelled since the check above.
        future.add_done_callback(_cancel_task)

    loop.call_soon_threadsafe(_begin)
