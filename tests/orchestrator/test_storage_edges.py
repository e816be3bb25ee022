"""Odd values reach the database; a row that still cannot be saved is not hidden."""

from __future__ import annotations

import math
from typing import Any

import pytest

from maquina_nb.db import Repository
from maquina_nb.errors import StoreError
from maquina_nb.orchestrator import orchestrate
from maquina_nb.providers.base import Completion

from .conftest import ScriptedModel


def _nul_answer(request: Any) -> Completion:
    return Completion(text="before\x00after", finish_reason="stop")


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("pg", marks=pytest.mark.postgres)]
)
def test_nul_output_and_infinite_row_values_are_saved(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("db_url")
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    import uuid

    model = ScriptedModel(f"nul-{uuid.uuid4().hex[:8]}", script=_nul_answer)
    rows = [{"q": math.inf, "r": "a\x00b"}, {"q": -math.inf, "r": "c"}]

    run = orchestrate("{{ q }} {{ r }}", [model], over=rows, db=url)

    assert (run.status, run.unsaved, run.notice) == ("complete", 0, None)
    frame = run.to_pandas()
    assert frame["text"].tolist() == ["before\ufffdafter"] * 2
    assert frame["variables"].tolist() == [
        {"q": None, "r": "a\ufffdb"},
        {"q": None, "r": "c"},
    ]


def test_a_row_that_cannot_be_saved_makes_the_run_partial(db_url: str) -> None:
    repository = Repository.from_url(db_url)
    original = repository.add_responses

    def refuse_item_one(rows: Any) -> list[str]:
        if any(row["item_index"] == 1 for row in rows):
            raise StoreError("refused for the test")
        return original(rows)

    repository.add_responses = refuse_item_one  # type: ignore[method-assign]

    run = orchestrate(["a", "b", "c"], [ScriptedModel("m")], db=repository)

    assert run.unsaved == 1
    assert run.status == "partial"
    assert run.notice is not None
    assert "1 of 3 responses could not be saved" in run.notice
    assert Repository.from_url(db_url).get_run(run.id).status == "partial"
