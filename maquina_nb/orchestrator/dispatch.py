"""Events to the caller's ``on_event``, and the progress bar.

Producers (the fan-out workers and the writer, on the background loop) call
:meth:`EventBus.emit` and :meth:`EventBus.delta`, which only append to buffers
under a lock and never call user code. A delivery thread of the run's own
calls ``on_event``, so a slow or blocking consumer delays its own events, never
the requests or the writes:

- text deltas are coalesced per response and delivered at most every
  ``delta_interval`` seconds (20 a second by default), always before that
  response's finished or failed event, so concatenated deltas give the text;
- the queue of other events is bounded: past ``max_queue`` the waiting
  ``response_started`` events are dropped (never a finished, failed or run
  event, which are bounded by the run's size anyway);
- at the end of the run, delivery gets ``close_timeout`` seconds to catch up;
  events still queued after that are dropped with a warning.

``on_event`` must be thread-safe (the comparison widget and the server's hub
are). An exception it raises is logged once and the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from maquina_nb._money import usd
from maquina_nb._redact import get_logger
from maquina_nb.orchestrator import events as ev

__all__ = ["EventBus", "ProgressBar", "progress_wanted"]

logger = get_logger(__name__)

Address = tuple[int, str, int]


class EventBus:
    """Deliver run events to ``on_event`` without slowing the run down."""

    def __init__(
        self,
        on_event: Callable[[ev.Event], Any] | None,
        *,
        run_id: str = "",
        delta_interval: float = 0.05,
        max_queue: int = 10_000,
        close_timeout: float = 2.0,
    ) -> None:
        self.on_event = on_event
        self.run_id = run_id
        self.delta_interval = delta_interval
        self.max_queue = max_queue
        self.close_timeout = close_timeout
        self.dropped = 0
        self._queue: deque[ev.Event] = deque()
        self._pending: dict[Address, list[str]] = {}
        # Responses whose buffered text starts over (a stream retried part-way).
        self._restarted: set[Address] = set()
        self._ready = threading.Condition()
        self._closing = False
        self._abandoned = False
        self._thread: threading.Thread | None = None
        self._failed_once = False

    @property
    def active(self) -> bool:
        """Whether anyone listens; producers skip building events otherwise."""
        return self.on_event is not None

    def start(self) -> None:
        """Start the delivery thread."""
        if self.active and self._thread is None:
            self._thread = threading.Thread(
                target=self._deliver_all,
                name=f"maquina-nb-events-{self.run_id[:8]}",
                daemon=True,
            )
            self._thread.start()

    def delta(self, address: Address, text: str, *, reset: bool = False) -> None:
        """Buffer streamed ``text`` of the response at ``address``.

        With ``reset`` the text streamed so far is void (the provider retried the
        stream from the start): the next delta event carries ``reset=True``.
        """
        if not self.active or not (text or reset):
            return
        with self._ready:
            if reset:
                self._pending[address] = [text]
                self._restarted.add(address)
                self._ready.notify()
                return
            buffered = self._pending.get(address)
            if buffered is None:
                self._pending[address] = [text]
                self._ready.notify()
            else:
                buffered.append(text)

    def emit(self, event: ev.Event) -> None:
        """Queue ``event``; the response's buffered text goes out before it."""
        if not self.active:
            return
        address = _address_of(event)
        with self._ready:
            if address is not None and address in self._pending:
                self._queue.append(
                    self._delta_event(address, self._pending.pop(address))
                )
            self._queue.append(event)
            if len(self._queue) > self.max_queue:
                self._shed()
            self._ready.notify()

    def _delta_event(self, address: Address, parts: list[str]) -> ev.TextDelta:
        return ev.TextDelta(
            run_id=self.run_id,
            item_index=address[0],
            model=address[1],
            sample_index=address[2],
            text="".join(parts),
            reset=_take_flag(self._restarted, address),
        )

    def _shed(self) -> None:
        # Started events are the only ones a consumer can do without.
        before = len(self._queue)
        self._queue = deque(
            e for e in self._queue if not isinstance(e, ev.ResponseStarted)
        )
        self.dropped += before - len(self._queue)

    def _deliver(self, event: ev.Event) -> None:
        assert self.on_event is not None
        try:
            self.on_event(event)
        except Exception:
            if not self._failed_once:
                self._failed_once = True
                logger.exception(
                    "on_event raised on a %s event; the run goes on", event.type
                )

    def _take(self, last_deltas: float) -> tuple[list[ev.Event], bool, float]:
        """Wait for work; return the events to deliver, whether to stop, and the delta time."""
        with self._ready:
            while not self._queue and not self._closing:
                if self._pending:
                    wait = self.delta_interval - (time.monotonic() - last_deltas)
                    if wait <= 0:
                        break
                    self._ready.wait(wait)
                else:
                    self._ready.wait()
            batch = list(self._queue)
            self._queue.clear()
            now = time.monotonic()
            if self._pending and (
                self._closing or now - last_deltas >= self.delta_interval
            ):
                last_deltas = now
                batch.extend(self._delta_event(a, p) for a, p in self._pending.items())
                self._pending.clear()
            done = self._closing and not self._queue and not self._pending
        return batch, done, last_deltas

    def _deliver_all(self) -> None:
        last_deltas = 0.0
        while True:
            batch, done, last_deltas = self._take(last_deltas)
            for event in batch:
                if self._abandoned:
                    return
                self._deliver(event)
            if done:
                return

    async def aclose(self, timeout: float | None = None) -> None:
        """Let delivery catch up (bounded by ``timeout``, default ``close_timeout``)."""
        if self._thread is None:
            return
        with self._ready:
            self._closing = True
            self._ready.notify()
        thread = self._thread
        await asyncio.to_thread(
            thread.join, self.close_timeout if timeout is None else timeout
        )
        if thread.is_alive():
            self._abandoned = True
            logger.warning(
                "on_event is too slow; events of run %s still queued were dropped",
                self.run_id,
            )


def _address_of(event: ev.Event) -> Address | None:
    item_index = getattr(event, "item_index", None)
    if item_index is None:
        return None
    return (item_index, event.model, event.sample_index)  # type: ignore[attr-defined]


def in_kernel() -> bool:
    """Tell whether this process is an IPython kernel."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    try:
        shell = shell_module.get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_wanted(explicit: bool | None = None) -> bool:
    """Decide whether to show the progress bar.

    An explicit ``True``/``False`` wins; then ``MAQUINA_NB_PROGRESS``
    (``0``/``false``/``off`` or ``1``/``true``/``on``); otherwise the bar shows
    outside notebooks, where the comparison widget shows progress instead.
    """
    if explicit is not None:
        return explicit
    setting = os.environ.get("MAQUINA_NB_PROGRESS", "").strip().lower()
    if setting in {"0", "false", "off", "no"}:
        return False
    if setting in {"1", "true", "on", "yes"}:
        return True
    return not in_kernel()


class ProgressBar:
    """A tqdm bar on stderr: responses done of total, failures and spend."""

    def __init__(self, total: int, *, description: str = "maquina") -> None:
        from tqdm.std import tqdm

        self._bar = tqdm(
            total=total,
            desc=description,
            unit="resp",
            file=sys.stderr,
            leave=True,
            mininterval=0.1,
        )
        self.failed = 0
        self.cost = 0.0

    def advance(self, status: str, cost: float | None) -> None:
        """Count one finished response."""
        if status in ("failed", "cancelled", "skipped"):
            self.failed += 1
        if cost:
            self.cost += cost
        self._bar.update(1)
        if self.failed:
            self._bar.set_postfix(
                failed=self.failed, cost=usd(self.cost), refresh=False
            )

    def close(self) -> None:
        """Draw the final state and release the bar."""
        self._bar.close()


def _take_flag(flags: set[Address], address: Address) -> bool:
    if address in flags:
        flags.discard(address)
        return True
    return False
