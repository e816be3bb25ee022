"""Fixtures for the storage tests.

- ``sqlite_url``: a fresh SQLite file under ``tmp_path``;
- ``pg_schema_url``: a fresh schema on the session's PostgreSQL, selected through
  ``search_path`` so tests sharing the server never see each other's tables;
- ``db_url``: each test once on SQLite and once on PostgreSQL (``postgres`` mark);
- ``repo``: a :class:`Repository` on ``db_url``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from maquina_nb.db import Repository, clear_engine_cache


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    clear_engine_cache()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'maquina.db'}"


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def repo(db_url: str) -> Repository:
    return Repository.from_url(db_url)
