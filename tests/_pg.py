"""Throwaway PostgreSQL schemas for tests that share one server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def fresh_pg_schema(pg_url: str, prefix: str = "t") -> Iterator[str]:
    """Yield a URL whose ``search_path`` is a new, empty schema; drop it afterwards.

    Tests sharing the server never see each other's tables.
    """
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from maquina_nb.db import clear_engine_cache

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
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
