"""The per-run WebSocket through TestClient: replay, follow, unknown ids, token."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from maquina_nb.db import Repository
from maquina_nb.server import create_app

from .conftest import MODELS, Seeded, add_run, response_row


def _drain(ws: Any, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
    """Read JSON events until the server closes; return them and the close code."""
    events: list[dict[str, Any]] = []
    for _ in range(limit):
        message = ws.receive()
        if message["type"] == "websocket.close":
            return events, message["code"]
        events.append(json.loads(message["text"]))
    raise AssertionError("the stream did not end")


def test_finished_run_is_replayed_from_the_database(
    seeded: Seeded, client: TestClient
) -> None:
    with client.websocket_connect(f"/api/runs/{seeded.run_id}/events") as ws:
        events, code = _drain(ws)

    assert code == 1000
    assert [e["type"] for e in events] == ["run_started"] + [
        "response_finished"
    ] * 4 + ["run_finished"]
    started, finished = events[0], events[-1]
    assert started["models"] == list(MODELS)
    assert started["items"][1] == {
        "item_index": 1,
        "prompt": "Question 1?",
        "variables": {"n": 1},
    }
    assert started["total"] == 4
    assert (finished["status"], finished["done"], finished["failed"]) == (
        "complete",
        4,
        0,
    )
    texts = {(e["item_index"], e["model"]): e["text"] for e in events[1:-1]}
    assert texts[(1, MODELS[0])] == f"{MODELS[0]} answers 1"


def test_failed_responses_are_replayed_as_response_failed(
    repo: Repository, client: TestClient
) -> None:
    run_id = repo.add_run(
        name="oops",
        template="x",
        system_prompt=None,
        models=["echo"],
        parameters={},
        tags=[],
        item_count=1,
        samples=1,
        status="failed",
    )
    repo.add_responses(
        [
            response_row(
                run_id,
                0,
                "echo",
                status="failed",
                text=None,
                error_kind="timeout",
                error_message="took too long",
            )
        ]
    )

    with client.websocket_connect(f"/api/runs/{run_id}/events") as ws:
        events, _ = _drain(ws)

    failed = events[1]
    assert failed["type"] == "response_failed"
    assert (failed["error_kind"], failed["error_message"]) == (
        "timeout",
        "took too long",
    )
    assert events[-1]["status"] == "failed"
    assert events[-1]["failed"] == 1


def test_unknown_run_closes_with_4404(client: TestClient) -> None:
    with client.websocket_connect(
        "/api/runs/ffffffffffffffffffffffffffffffff/events"
    ) as ws:
        events, code = _drain(ws)
    assert (events, code) == ([], 4404)


def test_a_run_written_by_another_process_is_followed_until_it_ends(
    repo: Repository,
) -> None:
    seeded = add_run(repo, items=1, status="running")
    app = create_app(repo, poll_interval_s=0.05)

    def finish_later(ready: threading.Event) -> None:
        ready.wait(timeout=10)
        repo.add_responses(
            [response_row(seeded.run_id, 1, MODELS[0], text="late answer")]
        )
        repo.update_run(
            seeded.run_id, status="partial", finished_at=datetime.now(timezone.utc)
        )

    ready = threading.Event()
    writer = threading.Thread(target=finish_later, args=(ready,), daemon=True)
    writer.start()
    with (
        TestClient(app) as client,
        client.websocket_connect(f"/api/runs/{seeded.run_id}/events") as ws,
    ):
        first = [ws.receive_json() for _ in range(3)]
        ready.set()
        rest, code = _drain(ws)
    writer.join(timeout=10)

    assert [e["type"] for e in first] == [
        "run_started",
        "response_finished",
        "response_finished",
    ]
    assert [e["type"] for e in rest] == ["response_finished", "run_finished"]
    assert rest[0]["text"] == "late answer"
    assert rest[1]["status"] == "partial"
    assert code == 1000


def test_websocket_needs_the_token_when_set(seeded: Seeded, repo: Repository) -> None:
    token = "ws-token-0123456789abcdef"
    url = f"/api/runs/{seeded.run_id}/events"
    with TestClient(create_app(repo, token=token)) as client:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect(url) as ws,
        ):
            ws.receive_json()
        assert refused.value.code == 1008

        with client.websocket_connect(
            url, headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            events, _ = _drain(ws)
        assert events[-1]["type"] == "run_finished"

        with client.websocket_connect(url, subprotocols=[f"bearer.{token}"]) as ws:
            assert ws.accepted_subprotocol == f"bearer.{token}"
            events, _ = _drain(ws)
        assert events[0]["type"] == "run_started"


def test_a_client_too_slow_for_a_live_run_is_closed_with_4008(repo: Repository) -> None:
    from maquina_nb.orchestrator.events import RunStarted, TextDelta

    run_id = "a" * 32
    app = create_app(repo, max_pending_events=3)
    started = RunStarted(run_id, None, ("echo",), (), 1, 1, None, None).to_dict()
    deltas = [TextDelta(run_id, 0, "echo", 0, f"w{i} ").to_dict() for i in range(10)]

    with TestClient(app) as client:
        hub = app.state.maquina.hub
        publish = hub.threadsafe_publisher()
        publish(started)
        with client.websocket_connect(f"/api/runs/{run_id}/events") as ws:
            assert ws.receive_json()["type"] == "run_started"
            # All ten in one loop callback: the queue of three overflows at once.
            hub._loop.call_soon_threadsafe(lambda: [hub.publish(d) for d in deltas])
            events, code = _drain(ws)

    assert code == 4008
    assert len(events) <= 3


def test_a_websocket_from_another_sites_page_is_refused(
    seeded: Seeded, client: TestClient
) -> None:
    url = f"/api/runs/{seeded.run_id}/events"

    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(url, headers={"Origin": "https://evil.example"}) as ws,
    ):
        ws.receive_json()
    with client.websocket_connect(
        url, headers={"Origin": "http://127.0.0.1:8765"}
    ) as ws:
        events, code = _drain(ws)

    assert refused.value.code == 1008
    assert code == 1000
    assert events[-1]["type"] == "run_finished"


def test_a_large_run_is_replayed_page_by_page_in_item_order(
    repo: Repository, client: TestClient
) -> None:
    seeded = add_run(repo, items=300)  # 600 responses: more than one replay page

    with client.websocket_connect(f"/api/runs/{seeded.run_id}/events") as ws:
        events, code = _drain(ws, limit=1_000)

    answers = events[1:-1]
    assert code == 1000
    assert len(answers) == 600
    assert len({e["response_id"] for e in answers}) == 600
    assert [e["item_index"] for e in answers] == sorted(
        e["item_index"] for e in answers
    )
    assert [item["item_index"] for item in events[0]["items"]] == list(range(300))
    assert (events[-1]["done"], events[-1]["failed"], events[-1]["total"]) == (
        600,
        0,
        600,
    )
