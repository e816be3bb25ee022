"""The run hub: snapshots for late subscribers, live fan-out, slow clients."""

from __future__ import annotations

import asyncio
from typing import Any

from maquina_nb.orchestrator.events import (
    ResponseFinished,
    ResponseStarted,
    RunFinished,
    RunStarted,
    TextDelta,
)
from maquina_nb.server._hub import RunHub

RUN = "0" * 32


def _events() -> list[dict[str, Any]]:
    return [
        RunStarted(
            RUN,
            "demo",
            ("echo",),
            ({"item_index": 0, "prompt": "hi", "variables": {}},),
            1,
            1,
            None,
            None,
        ).to_dict(),
        ResponseStarted(RUN, 0, "echo", 0).to_dict(),
        TextDelta(RUN, 0, "echo", 0, "Hel").to_dict(),
        TextDelta(RUN, 0, "echo", 0, "lo").to_dict(),
    ]


async def test_late_subscriber_gets_a_compact_snapshot_then_live_events() -> None:
    hub = RunHub()
    hub.bind(asyncio.get_running_loop())
    for event in _events():
        hub.publish(event)

    subscription = hub.subscribe(RUN)
    assert subscription is not None
    snapshot, subscriber = subscription

    assert [e["type"] for e in snapshot] == [
        "run_started",
        "response_started",
        "text_delta",
    ]
    assert snapshot[-1]["text"] == "Hello"

    finished = ResponseFinished(
        RUN, 0, "echo", 0, "r" * 32, "Hello!", "done", "stop"
    ).to_dict()
    hub.publish(finished)
    hub.publish(RunFinished(RUN, "complete", 1, 0, 1, None, 0.1).to_dict())

    received = [subscriber.queue.get_nowait() for _ in range(3)]
    assert received[0] == finished
    assert received[1]["type"] == "run_finished"
    assert received[2] is None  # end of stream

    # After the end the snapshot holds the final events only.
    snapshot, late = hub.subscribe(RUN)  # type: ignore[misc]
    assert [e["type"] for e in snapshot] == [
        "run_started",
        "response_finished",
        "run_finished",
    ]
    assert late.queue.get_nowait() is None


async def test_a_subscriber_that_falls_behind_is_dropped_not_waited_for() -> None:
    hub = RunHub(queue_size=2)
    hub.bind(asyncio.get_running_loop())
    hub.publish(_events()[0])
    _, slow = hub.subscribe(RUN)  # type: ignore[misc]
    _, fast = hub.subscribe(RUN)  # type: ignore[misc]

    for event in _events()[1:]:
        hub.publish(event)
        if not fast.queue.empty():
            fast.queue.get_nowait()

    assert slow.overflowed
    assert not fast.overflowed


async def test_events_published_from_another_thread_arrive_on_the_loop() -> None:
    hub = RunHub()
    hub.bind(asyncio.get_running_loop())
    hub.publish(_events()[0])
    _, subscriber = hub.subscribe(RUN)  # type: ignore[misc]
    publish = hub.threadsafe_publisher()

    await asyncio.to_thread(publish, _events()[1])

    event = await asyncio.wait_for(subscriber.queue.get(), timeout=5)
    assert event["type"] == "response_started"
    assert hub.subscribe("f" * 32) is None
