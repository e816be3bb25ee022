"""Fan a live run's events out to WebSocket subscribers.

The orchestrator calls ``on_event`` on maquina_nb's background loop thread; the
hub moves each event onto the server's own loop with ``call_soon_threadsafe``
and does all its book-keeping there, so a subscriber's snapshot and its queue
are taken in one step and no event falls between them.

Each live run keeps a compact state: the ``run_started`` event, per response
either its final event or its text so far, and the ``run_finished`` event. A
client that connects mid-run gets that state first (a few events, however many
deltas came before), then the live stream. A subscriber that falls a whole queue
behind is dropped (it can reconnect and get the snapshot again) so that one slow
client never holds memory or slows the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maquina_nb._redact import get_logger

__all__ = ["RunHub", "Subscriber"]

logger = get_logger(__name__)

_Key = tuple[int, str, int]


def _key(event: dict[str, Any]) -> _Key:
    return (int(event["item_index"]), str(event["model"]), int(event["sample_index"]))


@dataclass(eq=False)
class Subscriber:
    """One WebSocket's queue of pending events."""

    queue: asyncio.Queue[dict[str, Any] | None]
    overflowed: bool = False


@dataclass
class _ResponseState:
    started: dict[str, Any] | None = None
    text: list[str] = field(default_factory=list)
    final: dict[str, Any] | None = None


@dataclass
class _LiveRun:
    run_id: str
    started: dict[str, Any] | None = None
    responses: dict[_Key, _ResponseState] = field(default_factory=dict)
    finished: dict[str, Any] | None = None
    subscribers: set[Subscriber] = field(default_factory=set)

    def snapshot(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if self.started is not None:
            events.append(self.started)
        for key in sorted(self.responses):
            state = self.responses[key]
            if state.final is not None:
                events.append(state.final)
                continue
            if state.started is not None:
                events.append(state.started)
            if state.text:
                item_index, model, sample_index = key
                events.append(
                    {
                        "type": "text_delta",
                        "run_id": self.run_id,
                        "item_index": item_index,
                        "model": model,
                        "sample_index": sample_index,
                        "text": "".join(state.text),
                    }
                )
        if self.finished is not None:
            events.append(self.finished)
        return events


class RunHub:
    """Live runs of this server process and their subscribers.

    Args:
        queue_size: events a subscriber may fall behind before it is dropped.
        keep_finished_s: how long a finished run stays in memory (later
            subscribers replay it from the database).
    """

    def __init__(
        self, *, queue_size: int = 10_000, keep_finished_s: float = 30.0
    ) -> None:
        self.queue_size = queue_size
        self.keep_finished_s = keep_finished_s
        self._runs: dict[str, _LiveRun] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the hub to the server's event loop (done at start-up)."""
        self._loop = loop

    def threadsafe_publisher(self) -> Callable[[dict[str, Any]], None]:
        """Return a callable that publishes an event dict from any thread."""
        loop = self._loop
        if loop is None:
            raise RuntimeError(
                "The run hub is not bound to a loop; start the app first."
            )

        def publish(event: dict[str, Any]) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self.publish, event)

        return publish

    def is_live(self, run_id: str) -> bool:
        """Tell whether ``run_id`` is running (or just finished) in this process."""
        return run_id in self._runs

    def is_finished(self, run_id: str) -> bool:
        """Tell whether a live run has sent its ``run_finished`` event."""
        live = self._runs.get(run_id)
        return live is not None and live.finished is not None

    def publish(self, event: dict[str, Any]) -> None:
        """Record ``event`` and pass it to every subscriber (server loop only)."""
        run_id = str(event["run_id"])
        live = self._runs.get(run_id)
        if live is None:
            live = self._runs[run_id] = _LiveRun(run_id)

        # Step 1: fold the event into the run's state.
        kind = event.get("type")
        if kind == "run_started":
            live.started = event
        elif kind == "run_finished":
            if live.finished is not None:
                return  # a synthesized failure after the orchestrator's own end
            live.finished = event
        elif kind in (
            "response_started",
            "text_delta",
            "response_finished",
            "response_failed",
        ):
            state = live.responses.setdefault(_key(event), _ResponseState())
            if kind == "response_started":
                state.started = event
            elif kind == "text_delta":
                state.text.append(str(event.get("text", "")))
            else:
                state.final = event
                state.text = []

        # Step 2: hand it to the subscribers; drop any that fell too far behind.
        for subscriber in list(live.subscribers):
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                logger.warning("dropping a slow subscriber of run %s", run_id)
                subscriber.overflowed = True
                live.subscribers.discard(subscriber)

        # Step 3: a finished run ends every stream and is forgotten a bit later.
        if kind == "run_finished":
            for subscriber in list(live.subscribers):
                try:
                    subscriber.queue.put_nowait(None)
                except asyncio.QueueFull:
                    subscriber.overflowed = True
            live.subscribers.clear()
            if self._loop is not None:
                self._loop.call_later(self.keep_finished_s, self._forget, run_id)

    def subscribe(self, run_id: str) -> tuple[list[dict[str, Any]], Subscriber] | None:
        """Return the run's snapshot and a new subscriber, or ``None`` if not live.

        When the run has already finished, the subscriber's queue already holds
        the end marker, so the caller sends the snapshot and stops.
        """
        live = self._runs.get(run_id)
        if live is None:
            return None
        subscriber = Subscriber(asyncio.Queue(maxsize=self.queue_size))
        if live.finished is not None:
            subscriber.queue.put_nowait(None)
        else:
            live.subscribers.add(subscriber)
        return live.snapshot(), subscriber

    def unsubscribe(self, run_id: str, subscriber: Subscriber) -> None:
        """Stop sending events of ``run_id`` to ``subscriber``."""
        live = self._runs.get(run_id)
        if live is not None:
            live.subscribers.discard(subscriber)

    def _forget(self, run_id: str) -> None:
        live = self._runs.get(run_id)
        if live is not None and live.finished is not None and not live.subscribers:
            del self._runs[run_id]
