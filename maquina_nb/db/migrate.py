"""Alembic, driven from code: configuration, locking, backups, upgrade on open.

The Alembic :class:`~alembic.config.Config` is built here, not read from an
``alembic.ini``, so migrations work from any working directory. Its
``script_location`` is the copy of ``alembic/`` shipped inside the wheel
(``maquina_nb/_migrations``) or, in a source checkout, the repository's
``alembic/`` folder.

Every migration runs through :func:`migration_connection`, which

1. takes a lock, so that when several processes open a fresh database at once
   exactly one migrates and the others wait, then find it at head (a file lock
   next to a SQLite file, an advisory lock on PostgreSQL);
2. plans the migration under that lock: a database newer than the package, an
   unknown target, a relative step past base or head, and a downgrade that would
   delete rows (see ``DESTROYS`` in each revision) are refused here, before
   anything is copied or changed;
3. copies a SQLite file that already holds a schema to
   ``<file>.backup-<revision>-<UTC time>``, only when a migration will run;
4. on SQLite, switches foreign keys off for the migration (so that a batch
   table rebuild cannot cascade-delete child rows), runs everything in one
   transaction, and refuses to commit if ``PRAGMA foreign_key_check`` finds a
   broken reference.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine

from alembic import command
from maquina_nb._redact import get_logger
from maquina_nb.db._lockfile import LockTimeout, removable_file_lock
from maquina_nb.errors import DowngradeRefusedError, SchemaTooNewError, StoreError

__all__ = [
    "MIGRATION_LOCK_TIMEOUT_S",
    "current_revision",
    "describe_migration",
    "destroyed_by",
    "downgrade",
    "downgrade_plan",
    "ensure_schema",
    "head_revision",
    "make_config",
    "migration_connection",
    "rows_at_risk",
    "script_location",
    "sqlite_path",
    "upgrade",
]

logger = get_logger(__name__)

#: How long an opener waits for another process's migration to finish.
MIGRATION_LOCK_TIMEOUT_S = 300.0
# Any fixed 64-bit number; it names maquina_nb's migration lock on a PostgreSQL server.
_PG_LOCK_KEY = 0x6D61_7175_696E_61


def script_location() -> Path:
    """Return the folder holding ``env.py`` and ``versions/``."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "_migrations", package_dir.parent / "alembic"):
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    raise StoreError(
        f"The Alembic migrations were not found next to {str(package_dir)!r}; "
        "reinstall maquina-nb (the wheel ships them as maquina_nb/_migrations)."
    )


def make_config(
    url: str | None = None,
    *,
    connection: Connection | None = None,
    stdout: TextIO | None = None,
) -> Config:
    """Build the Alembic config in code, for ``url`` or an open ``connection``.

    ``stdout`` receives Alembic's messages and, in offline (``--sql``) mode,
    the SQL; by default both are discarded.
    """
    stream = stdout or io.StringIO()
    config = Config(stdout=stream, output_buffer=stream)
    config.set_main_option("script_location", str(script_location()))
    if url is not None:
        # configparser interpolation treats % specially (URL-encoded passwords).
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.lru_cache(maxsize=4)
def _script_directory(location: str) -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", location)
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """Return the newest revision this package ships."""
    head = _script_directory(str(script_location())).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise StoreError(
            "The packaged migrations have no revisions; reinstall maquina-nb."
        )
    return head


def current_revision(connection: Connection) -> str | None:
    """Return the database's revision (``None`` for an empty database)."""
    return MigrationContext.configure(connection).get_current_revision()


def describe_migration(
    url: str,
    before: str | None,
    after: str | None,
    *,
    direction: str = "upgrade",
) -> str:
    """Say in one sentence what a migration of ``url`` did (password hidden).

    Args:
        url: The database URL (shown with its password masked).
        before: The revision before (``None`` for an empty database).
        after: The revision after.
        direction: ``"upgrade"`` or ``"downgrade"``.
    """
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    latest = " (the latest schema)" if after == head_revision() else ""
    if before == after:
        return f"{shown} is already at {after or 'base (no schema)'}{latest}."
    verb = "Upgraded" if direction == "upgrade" else "Downgraded"
    return f"{verb} {shown} from {before or 'base'} to {after or 'base'}{latest}."


def _is_known(revision: str) -> bool:
    try:
        return (
            _script_directory(str(script_location())).get_revision(revision) is not None
        )
    except CommandError:
        return False


def sqlite_path(engine: Engine) -> Path | None:
    """Return the file behind a SQLite engine, or None (memory, other backends)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).resolve()


@contextlib.contextmanager
def _migration_lock(engine: Engine, connection: Connection) -> Iterator[None]:
    path = sqlite_path(engine)
    if path is not None:
        lock = path.with_name(f"{path.name}.migrate-lock")
        try:
            with removable_file_lock(lock, MIGRATION_LOCK_TIMEOUT_S):
                yield
        except LockTimeout as exc:
            raise StoreError(
                f"Waited {MIGRATION_LOCK_TIMEOUT_S:.0f}s for another process to finish "
                f"migrating {str(path)!r}; check for a stuck process, then retry."
            ) from exc
        return

    if engine.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_LOCK_KEY})")
        connection.commit()
        try:
            yield
        finally:
            # A failed plan or migration may leave its transaction aborted; end it
            # so the unlock runs (else the session keeps the lock, and the
            # unlock's error hides the real one).
            connection.rollback()
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_LOCK_KEY})")
            connection.commit()
        return

    yield


def _backup_sqlite(path: Path, revision: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.backup-{revision}-{stamp}")
    # The online backup API copies a consistent snapshot, WAL contents included.
    source = sqlite3.connect(str(path))
    try:
        destination = sqlite3.connect(str(target))
        try:
            source.backup(destination)
        finally:
            destination.close()
    finally:
        source.close()
    logger.info("backed up %s to %s before migrating", path, target)
    return target


def _sqlite_foreign_keys(connection: Connection, *, on: bool) -> None:
    # PRAGMA foreign_keys is ignored inside a transaction, so it goes to the
    # driver connection directly, outside any transaction SQLAlchemy begins.
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - an invalidated connection
        raise StoreError("The SQLite connection was closed during a migration; retry.")
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


#: A migration plan: given the locked connection and the database's revision, it
#: raises to refuse, or returns whether a migration will run (no backup if not).
Plan = Callable[[Connection, str | None], bool]


@contextlib.contextmanager
def migration_connection(
    engine: Engine,
    *,
    target: str | None = None,
    plan: Plan | None = None,
    on_backup: Callable[[Path], None] | None = None,
) -> Iterator[Connection]:
    """Yield a locked connection inside one transaction, ready to migrate.

    See the module docstring for the lock, the backup and the SQLite
    foreign-key handling. The transaction commits when the block ends.

    Args:
        engine: The database to migrate.
        target: Without ``plan``, no backup is taken when the database is
            already at this revision.
        plan: Called under the lock, before any backup, with the connection
            and the current revision; it raises to refuse (nothing is copied or
            changed) and returns whether a migration will run. Without it, a
            migration is assumed unless the database is at ``target``.
        on_backup: Called with the path of the SQLite backup, if one is taken.
    """
    is_sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection, _migration_lock(engine, connection):
        if is_sqlite:
            _sqlite_foreign_keys(connection, on=False)
        try:
            revision = current_revision(connection)
            if plan is not None:
                will_run = plan(connection, revision)
            else:
                will_run = revision != target
            connection.commit()
            path = sqlite_path(engine)
            if path is not None and revision is not None and will_run:
                backup = _backup_sqlite(path, revision)
                if on_backup is not None:
                    on_backup(backup)

            with connection.begin():
                yield connection
                if is_sqlite:
                    broken = connection.exec_driver_sql(
                        "PRAGMA foreign_key_check"
                    ).all()
                    if broken:
                        raise StoreError(
                            f"The migration left {len(broken)} broken references "
                            f"(first: {tuple(broken[0])!r}); nothing was changed. "
                            "Report this with the revision you upgraded to."
                        )
        finally:
            if is_sqlite:
                _sqlite_foreign_keys(connection, on=True)


@contextlib.contextmanager
def _plain_relative_steps(
    direction: str, revision: str, before: str | None
) -> Iterator[None]:
    """Say in plain words that a relative step (-1, +2) goes past base or head."""
    try:
        yield
    except CommandError as exc:
        if not str(exc).startswith("Relative revision"):
            raise
        if direction == "downgrade" and before is None:
            raise StoreError(
                f"Cannot downgrade by {revision}: the database has no schema yet, "
                "so there is nothing to undo."
            ) from exc
        steps = revision.lstrip("+-")
        end = "base" if direction == "downgrade" else "head"
        side = "above base" if direction == "downgrade" else "below head"
        raise StoreError(
            f"Cannot {direction} by {revision}: the database is at {before or 'base'}, "
            f"fewer than {steps} revisions {side}; give a revision from "
            f"'maquina-nb db history', or {end}."
        ) from exc


def _refuse_unknown(before: str | None) -> None:
    if before is not None and not _is_known(before):
        raise SchemaTooNewError(before, head_revision())


def _steps(direction: str, revision: str, before: str | None) -> list[Any]:
    """Return the revision scripts a migration from ``before`` would run, in order.

    This is the planner ``alembic.command.upgrade``/``downgrade`` use (private
    to Alembic; pyproject keeps ``alembic<2``), so the plan is exactly what
    runs next.

    Raises:
        StoreError: a relative step goes past base or head.
        CommandError: the target revision is unknown.
    """
    script = _script_directory(str(script_location()))
    # Alembic itself hands these the tuple of current heads: () when empty.
    current: Any = (before,) if before is not None else ()
    with _plain_relative_steps(direction, revision, before):
        if direction == "upgrade":
            steps = script._upgrade_revs(revision, current)
        else:
            steps = script._downgrade_revs(revision, current)
    return [step.revision for step in steps]


def destroyed_by(revision: str) -> dict[str, tuple[str, ...] | None]:
    """Return what undoing ``revision`` deletes, as declared in its ``DESTROYS``.

    A table name maps to ``None`` when the downgrade drops the table, or to the
    names of its columns that it drops.

    Raises:
        StoreError: the revision does not declare ``DESTROYS``.
    """
    script = _script_directory(str(script_location())).get_revision(revision)
    declared = getattr(script.module, "DESTROYS", None) if script else None
    if not isinstance(declared, dict):
        raise StoreError(
            f"Revision {revision!r} does not say what its downgrade deletes; add a "
            "DESTROYS mapping to it (see MIGRATION_GUIDE.md)."
        )
    return dict(declared)


def rows_at_risk(connection: Connection, revisions: list[str]) -> dict[str, int]:
    """Count what undoing ``revisions`` (newest first) would delete.

    Returns:
        ``{"table": rows}`` for each dropped table that holds rows and
        ``{"table.column": values}`` for each dropped column holding non-null
        values, oldest revision first; empty when nothing would be lost.
    """
    tables: dict[str, None] = {}
    columns: dict[str, list[str]] = {}
    for revision in reversed(revisions):
        for table, dropped in destroyed_by(revision).items():
            if dropped is None:
                tables[table] = None
            else:
                columns.setdefault(table, []).extend(dropped)

    losses: dict[str, int] = {}
    for table in tables:
        count = connection.execute(
            sa.select(sa.func.count()).select_from(sa.table(table))
        ).scalar_one()
        if count:
            losses[table] = int(count)
    for table, names in columns.items():
        if table in tables:  # the whole table goes; counted above
            continue
        for name in dict.fromkeys(names):
            count = connection.execute(
                sa.select(sa.func.count())
                .select_from(sa.table(table, sa.column(name)))
                .where(sa.column(name).is_not(None))
            ).scalar_one()
            if count:
                losses[f"{table}.{name}"] = int(count)
    return losses


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to ``revision``; return (revision before, after).

    Nothing is backed up or changed when the database is already there, is
    newer than the package, or the target cannot be reached.

    Raises:
        SchemaTooNewError: the database is at a revision this package does not know.
        StoreError: a relative step (``+2``) goes past head.
        CommandError: ``revision`` is not a revision this package ships.
    """

    def plan(connection: Connection, before: str | None) -> bool:
        _refuse_unknown(before)
        return bool(_steps("upgrade", revision, before))

    with migration_connection(engine, plan=plan) as connection:
        before = current_revision(connection)
        command.upgrade(make_config(connection=connection), revision)
        after = current_revision(connection)
    if before != after:
        logger.info("migrated database schema from %s to %s", before, after)
    return before, after


def downgrade_plan(engine: Engine, revision: str, *, force: bool = False) -> Plan:
    """Return the plan (see :func:`migration_connection`) of a downgrade.

    It refuses a database newer than the package, an unreachable target and,
    unless ``force``, a downgrade that would delete rows; it says whether a
    downgrade will run. ``env.py`` uses it for a plain ``alembic downgrade``.
    """

    def plan(connection: Connection, before: str | None) -> bool:
        _refuse_unknown(before)
        steps = _steps("downgrade", revision, before)
        if steps and before is not None and not force:
            losses = rows_at_risk(connection, [s.revision for s in steps])
            if losses:
                path = sqlite_path(engine)
                raise DowngradeRefusedError(
                    engine.url.render_as_string(hide_password=True),
                    before,
                    steps[-1].down_revision,
                    losses,
                    sqlite_file=str(path) if path is not None else None,
                )
        return bool(steps)

    return plan


def downgrade(
    engine: Engine,
    revision: str,
    *,
    force: bool = False,
    on_backup: Callable[[Path], None] | None = None,
) -> tuple[str | None, str | None]:
    """Downgrade the database to ``revision``; return (revision before, after).

    Before anything is copied or changed, the rows the downgrade would delete
    (the tables and columns each undone revision declares in ``DESTROYS``) are
    counted; if there are any, the downgrade is refused unless ``force``. A
    SQLite file is backed up whenever a downgrade runs; ``on_backup`` is
    called with the copy's path.

    Raises:
        DowngradeRefusedError: rows would be deleted and ``force`` is false.
        SchemaTooNewError: the database is at a revision this package does not know.
        StoreError: a relative step (``-2``) goes past base.
        CommandError: ``revision`` is not a revision this package ships.
    """
    plan = downgrade_plan(engine, revision, force=force)
    with migration_connection(engine, plan=plan, on_backup=on_backup) as connection:
        before = current_revision(connection)
        command.downgrade(make_config(connection=connection), revision)
        after = current_revision(connection)
    if before != after:
        logger.info("downgraded database schema from %s to %s", before, after)
    return before, after


def ensure_schema(engine: Engine) -> bool:
    """Bring the database to head; return whether this call migrated it.

    Raises:
        SchemaTooNewError: the database is at a revision this package does not
            know, i.e. a newer maquina_nb migrated it.
    """
    head = head_revision()
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == head:
        return False
    if revision is not None and not _is_known(revision):
        raise SchemaTooNewError(revision, head)

    before, after = upgrade(engine, "head")
    return before != after
