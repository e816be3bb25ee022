"""The same API over PostgreSQL, the team backend."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from maquina_nb.server import create_app

from .conftest import MODELS, add_run
from .test_events import _drain

pytestmark = pytest.mark.postgres


def test_server_over_postgres(pg_url: str) -> None:
    from maquina_nb.db import Repository

    repo = Repository.from_url(pg_url)
    tag = f"server-test-{uuid.uuid4().hex[:12]}"
    seeded = [add_run(repo, name=f"pg-{i}", tags=(tag,)) for i in range(3)]

    with TestClient(create_app(repo)) as client:
        # Keyset pages filtered by a JSON tag (JSONB containment on PostgreSQL).
        first = client.get("/api/runs", params={"tag": tag, "limit": 2}).json()
        second = client.get(
            "/api/runs", params={"tag": tag, "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        listed = [run["id"] for run in first["runs"] + second["runs"]]
        assert listed == [s.run_id for s in reversed(seeded)]
        assert second["next_cursor"] is None

        # Feedback with hostile text round-trips unchanged.
        response_id = seeded[0].response_ids[(0, MODELS[0])]
        text = "<b>bold</b>'); DELETE FROM human_feedback; --"
        made = client.post(
            f"/api/responses/{response_id}/feedback",
            json={"kind": "comment", "comment": text, "rater": "pg"},
        )
        assert made.status_code == 201
        feedback = client.get(f"/api/runs/{seeded[0].run_id}/feedback").json()[
            "feedback"
        ]
        assert [f["comment"] for f in feedback] == [text]

        # A run started through the API and replayed from PostgreSQL.
        started = client.post(
            "/api/runs",
            json={
                "template": "Say {{ w }}",
                "models": ["echo"],
                "over": [{"w": "a"}, {"w": "b"}],
                "tags": [tag],
            },
        )
        assert started.status_code == 202, started.text
        with client.websocket_connect(started.json()["events_url"]) as ws:
            live, _ = _drain(ws, limit=200)
        assert live[-1]["status"] == "complete"

        with client.websocket_connect(f"/api/runs/{seeded[1].run_id}/events") as ws:
            replayed, code = _drain(ws)
        assert code == 1000
        assert [e["type"] for e in replayed].count("response_finished") == 4

    for s in seeded:
        repo.delete_run(s.run_id)
    repo.delete_run(started.json()["run_id"])
