"""The same orchestration on the team backend, PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from maquina_nb.db import Repository
from maquina_nb.orchestrator import orchestrate

from .conftest import ScriptedModel

pytestmark = pytest.mark.postgres


def test_orchestrate_stores_and_reuses_answers_on_postgres(pg_url: str) -> None:
    # A model name of its own, so rows other tests leave in the shared
    # database cannot answer from the cache.
    name = f"pg-{uuid.uuid4().hex[:8]}"
    first_model, second_model = (
        ScriptedModel(name, cost=0.1),
        ScriptedModel(name, cost=0.1),
    )

    first = orchestrate(["a", "b"], [first_model], db=pg_url, samples=2)
    second = orchestrate(["a", "b"], [second_model], db=pg_url, samples=2)

    assert (first.status, [r.status for r in first.responses]) == (
        "complete",
        ["done"] * 4,
    )
    assert [r.cached_from_id for r in second.responses] == [
        r.id for r in first.responses
    ]
    assert second_model.calls == []
    frame = Repository.from_url(pg_url).responses_frame(first.id)
    assert sorted(frame["text"]) == [f"{name}: a"] * 2 + [f"{name}: b"] * 2
