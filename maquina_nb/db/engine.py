"""The engine factory: one configured engine per database URL, at head on open.

SQLite gets, on every connection: a 30 s busy timeout (a second writer waits
instead of failing with "database is locked"), WAL journaling (readers never
block the writer), ``synchronous=NORMAL`` (durable across a killed process;
WAL's usual setting) and foreign keys on. Transactions begin explicitly:
writers ask for ``BEGIN IMMEDIATE`` (execution option ``sqlite_immediate``),
which takes the write lock up front, so a reader that later writes can never
hit an unretryable lock upgrade.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from maquina_nb._redact import get_logger
from maquina_nb.config import default_db_url
from maquina_nb.db.validation import dumps_storable

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "clear_engine_cache",
    "create_db_engine",
    "make_engine",
]

logger = get_logger(__name__)

#: How long a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _is_memory(database: str | None) -> bool:
    return (
        not database or database == ":memory:" or database.startswith("file::memory:")
    )


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode, waiting out a concurrent opener.

    Switching a new file to WAL needs an exclusive lock, and SQLite reports
    "database is locked" at once, without its busy handler, when another
    process is opening the same fresh file. So wait and retry, within the
    busy timeout. A file already in WAL mode (the usual case) costs one query.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            logger.debug("journal mode switch waiting: %s", exc)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """Return a new engine for ``url`` with maquina_nb's settings, not migrated."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, json_serializer=dumps_storable)

    if _is_memory(parsed.database):
        # One shared connection, or every checkout would see a new empty database.
        engine = create_engine(
            parsed,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            json_serializer=dumps_storable,
        )
        _install_sqlite_hooks(engine, wal=False)
        return engine

    # An absolute path, fixed now: connections open lazily, and a notebook that
    # changes directory later must keep writing into the same file.
    path = Path(parsed.database or "").expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed.set(database=str(path)),
        connect_args={"check_same_thread": False},
        json_serializer=dumps_storable,
    )
    _install_sqlite_hooks(engine, wal=True)
    return engine


def create_db_engine(url: str | None = None) -> Engine:
    """Return the engine for ``url``, upgrading the database to head on first open.

    Args:
        url: A SQLAlchemy URL; default ``MAQUINA_DB_URL``, else
            ``sqlite:///maquina.db`` in the working directory.

    Returns:
        An engine shared by every caller in this process with the same URL.

    Raises:
        SchemaTooNewError: the database was migrated by a newer maquina_nb.
        StoreError: the migration lock could not be taken in time.
    """
    from maquina_nb.db.migrate import ensure_schema

    url = url or default_db_url()
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine

        engine = make_engine(url)
        try:
            migrated = ensure_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        if migrated:
            logger.info(
                "upgraded %s to the latest schema",
                engine.url.render_as_string(hide_password=True),
            )
        _engines[url] = engine
        return engine


def clear_engine_cache() -> None:
    """Dispose of every cached engine (tests, or after pointing at a new file)."""
    with _engines_lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def _forget_engines_after_fork() -> None:
    # A forked child must not reuse its parent's open connections, nor a lock
    # another parent thread held at the fork.
    global _engines_lock
    _engines_lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines_after_fork)
