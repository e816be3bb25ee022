"""Fixtures for the storage tests.

- ``sqlite_url``: a fresh SQLite file under ``tmp_path``;
- ``pg_schema_url``: a fresh schema on the session's PostgreSQL, selected through
  ``search_path`` so tests sharing the server never see each other's tables;
- ``db_url``: each test once on SQLite and once on PostgreSQL (``postgres`` mark);
- ``repo``: a :class:`Repository` on ``db_url``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maquina_nb.db import Repository, clear_engine_cache
from tests._pg import fresh_pg_schema


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    clear_engine_cache()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'maquina.db'}"


@pytest.fixture
def pg_schema_url(pg_url: str) -> Iterator[str]:
    with fresh_pg_schema(pg_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def repo(db_url: str) -> Repository:
    return Repository.from_url(db_url)
