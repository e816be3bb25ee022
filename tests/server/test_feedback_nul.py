"""Feedback text with a NUL is stored (as U+FFFD) on every backend, never a 500."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from .conftest import MODELS, Seeded


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    # This module's runs go to both backends (PostgreSQL cannot hold a NUL).
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from maquina_nb.db import clear_engine_cache

    schema = f"t_{uuid.uuid4().hex[:12]}"
    pg_url = str(request.getfixturevalue("pg_url"))
    admin = sa.create_engine(pg_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        clear_engine_cache()
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


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
