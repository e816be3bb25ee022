"""Feedback text with a NUL is stored (as U+FFFD) on every backend, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests._pg import fresh_pg_schema

from .conftest import MODELS, Seeded


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    # This module's runs go to both backends (PostgreSQL cannot hold a NUL).
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    with fresh_pg_schema(str(request.getfixturevalue("pg_url"))) as url:
        yield url


def test_feedback_with_nul_in_comment_and_rater_is_stored(
    seeded: Seeded, client: TestClient
) -> None:
    response_id = seeded.response_ids[(0, MODELS[0])]

    created = client.post(
        f"/api/responses/{response_id}/feedback",
        json={"kind": "comment", "comment": "nice\u0000one", "rater": "ada\u0000"},
    )

    assert created.status_code == 201, created.text
    listed = client.get(f"/api/runs/{seeded.run_id}/feedback").json()["feedback"]
    assert [(f["comment"], f["rater"]) for f in listed] == [
        ("nice\ufffdone", "ada\ufffd")
    ]
