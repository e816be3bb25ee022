"""A real uvicorn on 127.0.0.1 and a real WebSocket client watching a live run.

The run is started through ``POST /api/runs`` and answered by the real openai
SDK talking to :class:`~maquina_nb.testing.FakeLLMServer`, which streams each
answer a word at a time, so the client sees deltas while the run is going.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from maquina_nb.db import Repository
from maquina_nb.server import create_app
from maquina_nb.server._uvicorn import serve_in_thread
from maquina_nb.testing import FakeLLMServer, Reply

TOKEN = "live-test-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def fake_model() -> Iterator[str]:
    from maquina_nb.providers.settings import clear_configured, configure_model

    with FakeLLMServer() as fake:
        fake.default_reply = Reply(
            text="one two three four five six seven eight", chunk_delay=0.03
        )
        configure_model(
            "fake-gpt",
            spec="openai:gpt-4o",
            base_url=fake.openai_base_url,
            api_key="sk-test-not-a-real-key-000",
        )
        try:
            yield "fake-gpt"
        finally:
            clear_configured()


async def _read_all(
    url: str, headers: dict[str, str] = HEADERS
) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    async with connect(url, additional_headers=headers) as ws:
        try:
            while True:
                events.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            return events, closed.rcvd.code if closed.rcvd else -1


async def _watch(
    url: str, *, timeout_s: float = 30.0
) -> tuple[list[dict[str, Any]], int]:
    return await asyncio.wait_for(_read_all(url), timeout=timeout_s)


async def test_live_run_streams_deltas_to_a_real_websocket_client(
    repo: Repository, fake_model: str
) -> None:
    app = create_app(repo, token=TOKEN)
    with serve_in_thread(app) as base:
        async with httpx.AsyncClient(
            base_url=base, headers=HEADERS, timeout=30
        ) as http:
            started = await http.post(
                "/api/runs",
                json={
                    "template": "Say {{ word }}",
                    "models": [fake_model, "echo"],
                    "over": [{"word": "alpha"}, {"word": "beta"}],
                    "name": "live-ws",
                    "cache": False,
                },
            )
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]

            ws_url = base.replace("http://", "ws://") + started.json()["events_url"]
            events, code = await _watch(ws_url)

            stored = (await http.get(f"/api/runs/{run_id}/responses")).json()[
                "responses"
            ]
            run = (await http.get(f"/api/runs/{run_id}")).json()

    assert code == 1000
    types = [event["type"] for event in events]
    assert types[0] == "run_started"
    assert types[-1] == "run_finished"
    assert events[-1]["status"] == "complete"
    assert "text_delta" in types
    assert types.count("response_finished") == 4

    # Deltas, concatenated in order, give each response's final and stored text.
    deltas: dict[tuple[int, str], list[str]] = defaultdict(list)
    final: dict[tuple[int, str], str] = {}
    for event in events:
        key = (event.get("item_index"), event.get("model"))
        if event["type"] == "text_delta":
            deltas[key].append(event["text"])
        elif event["type"] == "response_finished":
            final[key] = event["text"]
    for item in (0, 1):
        key = (item, fake_model)
        assert final[key] == "one two three four five six seven eight"
        assert "".join(deltas[key]) == final[key]
    assert {(r["item_index"], r["model_spec"]): r["text"] for r in stored} == final
    assert run["status"] == "complete"
    assert run["name"] == "live-ws"


async def test_real_server_refuses_bad_token_and_big_body(repo: Repository) -> None:
    app = create_app(repo, token=TOKEN, max_body_bytes=2_000)
    with serve_in_thread(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            refused = await http.get("/api/runs")
            too_big = await http.post(
                "/api/runs",
                headers=HEADERS,
                json={"template": "x" * 5_000, "models": ["echo"]},
            )
        with pytest.raises(InvalidStatus) as rejected:
            await asyncio.wait_for(
                _read_all(
                    base.replace("http://", "ws://")
                    + "/api/runs/"
                    + "0" * 32
                    + "/events",
                    headers={},
                ),
                timeout=10,
            )

    assert refused.status_code == 401
    assert too_big.status_code == 413
    assert rejected.value.response.status_code == 403


def test_server_shutdown_cancels_a_run_it_started(repo: Repository) -> None:
    from fastapi.testclient import TestClient

    from maquina_nb.providers.settings import clear_configured, configure_model

    with FakeLLMServer() as fake:
        fake.default_reply = Reply(text="slow " * 200, chunk_delay=0.2)
        configure_model(
            "slow-gpt",
            spec="openai:gpt-4o",
            base_url=fake.openai_base_url,
            api_key="sk-test-not-a-real-key-000",
        )
        try:
            with TestClient(create_app(repo)) as client:
                started = client.post(
                    "/api/runs",
                    json={"template": "go", "models": ["slow-gpt"], "cache": False},
                )
                assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
            # Leaving the block shut the app down, which cancels and waits.
        finally:
            clear_configured()

    run = repo.get_run(run_id)
    assert run.status == "cancelled"
