"""C27: a downgrade that would delete data is refused before anything changes.

Every test runs on a SQLite file and, marked ``postgres``, in a private schema on
the session's PostgreSQL (``db_url`` from tests/db/conftest.py). What each
revision's downgrade deletes is declared in its ``DESTROYS``; the first tests
check those declarations against what the downgrades really drop, so a new
revision cannot forget one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from maquina_nb.cli import main
from maquina_nb.db.engine import make_engine
from maquina_nb.db.migrate import (
    current_revision,
    destroyed_by,
    downgrade,
    head_revision,
    rows_at_risk,
    upgrade,
)
from maquina_nb.errors import DowngradeRefusedError
from tests._pg import fresh_pg_schema
from tests.db.migration_helpers import SEEDS, revisions, schema_snapshot

ALL_ROWS = {
    "orchestration_contexts": 1,
    "model_responses": 2,
    "human_feedback": 1,
    "decisions": 1,
    "pairwise_votes": 1,
}


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def twin_url(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A second, empty database of the same dialect as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'twin.db'}"
        return
    with fresh_pg_schema(str(request.getfixturevalue("pg_url")), "twin") as url:
        yield url


def _seeded_head(engine: sa.Engine) -> None:
    """Upgrade to head, writing each revision's seed at its own revision.

    The backups those upgrades take are deleted, so that a test sees only its own.
    """
    for revision in revisions():
        upgrade(engine, revision)
        with engine.begin() as connection:
            SEEDS[revision].write(connection)
    for backup in _backups(engine):
        backup.unlink()


def _data(engine: sa.Engine, upto: list[str] | None = None) -> dict[str, object]:
    with engine.connect() as connection:
        return {rev: SEEDS[rev].read(connection) for rev in upto or revisions()}


def _revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return current_revision(connection)


def _backups(engine: sa.Engine) -> list[Path]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database:
        return []
    path = Path(database)
    return sorted(path.parent.glob(f"{path.name}.backup-*"))


def _columns(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


# --- the declarations ---------------------------------------------------------------


def test_every_revision_declares_what_its_downgrade_deletes() -> None:
    for revision in revisions():
        declared = destroyed_by(revision)
        for table, columns in declared.items():
            assert isinstance(table, str)
            assert columns is None or (
                isinstance(columns, tuple) and all(isinstance(c, str) for c in columns)
            ), f"{revision}: DESTROYS[{table!r}] must be None or a tuple of names"


def test_declarations_match_what_each_downgrade_drops(engine: sa.Engine) -> None:
    # Empty tables: every one of these downgrades proceeds without force.
    for revision in revisions():
        upgrade(engine, revision)
        up = _columns(engine)
        downgrade(engine, "-1")
        down = _columns(engine)

        dropped_tables = set(up) - set(down)
        dropped_columns = {
            table: up[table] - down[table]
            for table in down
            if table in up and up[table] - down[table]
        }
        declared = destroyed_by(revision)
        assert {t for t, c in declared.items() if c is None} == dropped_tables, (
            f"revision {revision}: DESTROYS lists other tables than its downgrade drops"
        )
        assert {t: set(c) for t, c in declared.items() if c} == dropped_columns, (
            f"revision {revision}: DESTROYS lists other columns than its downgrade drops"
        )
        upgrade(engine, revision)


# --- refusal ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "losses"),
    [
        ("0001", {"pairwise_votes": 1}),
        ("-1", {"pairwise_votes": 1}),
        ("base", ALL_ROWS),
    ],
)
def test_downgrade_with_data_is_refused_before_anything_changes(
    engine: sa.Engine, target: str, losses: dict[str, int]
) -> None:
    _seeded_head(engine)
    schema, data = schema_snapshot(engine), _data(engine)

    with pytest.raises(DowngradeRefusedError) as info:
        downgrade(engine, target)

    assert info.value.losses == losses
    assert list(info.value.losses) == list(losses), "oldest table first"
    assert (info.value.before, info.value.target) == (
        head_revision(),
        None if target == "base" else "0001",
    )
    assert _revision(engine) == head_revision()
    assert schema_snapshot(engine) == schema
    assert _data(engine) == data
    assert _backups(engine) == [], "a refused downgrade takes no backup"


def test_refusal_is_one_sentence_naming_counts_and_what_to_do(
    engine: sa.Engine,
) -> None:
    _seeded_head(engine)
    with pytest.raises(DowngradeRefusedError) as info:
        downgrade(engine, "base")

    shown = engine.url.render_as_string(hide_password=True)
    if engine.dialect.name == "sqlite":
        copy = f"{Path(str(engine.url.database)).resolve()}.backup-{head_revision()}"
        advice = (
            "rerun with --force (force=True), which first copies the file to "
            f"'{copy}-<UTC time>'."
        )
    else:
        advice = "back it up first (pg_dump), then rerun with --force (force=True)."
    assert str(info.value) == (
        f"Downgrading {shown} from {head_revision()} to base would delete 1 row of "
        "orchestration_contexts, 2 rows of model_responses, 1 row of human_feedback, "
        "1 row of decisions and 1 row of pairwise_votes; nothing was changed; " + advice
    )


def test_empty_tables_downgrade_without_force(engine: sa.Engine) -> None:
    upgrade(engine, "head")
    assert downgrade(engine, "base") == (head_revision(), None)
    assert _columns(engine) == {}


def test_counts_only_what_the_undone_revisions_drop(engine: sa.Engine) -> None:
    upgrade(engine, "0001")
    with engine.begin() as connection:
        SEEDS["0001"].write(connection)
    upgrade(engine, "head")
    before = _data(engine, ["0001"])

    # Rows in 0001's tables do not block undoing 0002, which leaves them alone.
    with engine.connect() as connection:
        assert rows_at_risk(connection, [head_revision()]) == {}
    assert downgrade(engine, "0001") == (head_revision(), "0001")
    assert _data(engine, ["0001"]) == before
    with engine.begin() as connection:
        assert rows_at_risk(connection, ["0001"]) == {
            k: v for k, v in ALL_ROWS.items() if k != "pairwise_votes"
        }


# --- forced round trip -------------------------------------------------------------


def test_forced_downgrade_then_upgrade_matches_fresh_schemas(
    engine: sa.Engine, twin_url: str
) -> None:
    history = revisions()
    previous, head = history[-2], history[-1]
    _seeded_head(engine)
    kept = _data(engine, history[:-1])

    assert downgrade(engine, "-1", force=True) == (head, previous)
    backups = _backups(engine)

    twin = make_engine(twin_url)
    try:
        upgrade(twin, previous)
        assert schema_snapshot(engine) == schema_snapshot(twin)
        assert _data(engine, history[:-1]) == kept

        upgrade(engine, "head")
        upgrade(twin, "head")
        assert schema_snapshot(engine) == schema_snapshot(twin)
    finally:
        twin.dispose()
    assert _data(engine, history[:-1]) == kept
    with engine.connect() as connection:
        assert SEEDS[head].read(connection) == []

    assert len(backups) == (1 if engine.dialect.name == "sqlite" else 0)
    if backups:
        # One copy, taken before the forced downgrade, still holds the vote.
        assert [b.name.split("-")[1] for b in backups] == [head]
        copy = sa.create_engine(f"sqlite:///{backups[0]}")
        try:
            with copy.connect() as connection:
                assert current_revision(connection) == head
                assert len(SEEDS[head].read(connection)) == 1
        finally:
            copy.dispose()


# --- the command ---------------------------------------------------------------------


def test_cli_refuses_in_one_line_and_force_goes_ahead(
    engine: sa.Engine, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seeded_head(engine)
    shown = make_url(db_url).render_as_string(hide_password=True)

    for target in ("0001", "base"):
        status = main(["db", "downgrade", target, "--url", db_url])
        out, err = capsys.readouterr()
        assert (status, out) == (1, "")
        assert err.startswith(f"maquina-nb: Downgrading {shown} from {head_revision()}")
        assert err.endswith(".\n")
        assert err.count("\n") == 1
        assert "Traceback" not in err
        assert "1 row of pairwise_votes" in err
        assert "--force" in err
    assert _revision(engine) == head_revision()
    assert _backups(engine) == []

    status = main(["db", "downgrade", "0001", "--force", "--url", db_url])
    out, err = capsys.readouterr()
    assert _revision(engine) == "0001"
    said = f"Downgraded {shown} from {head_revision()} to 0001"
    if engine.dialect.name == "sqlite":
        # The one backup, named in the sentence so the votes can be got back.
        (backup,) = _backups(engine)
        said += f"; the file as it was is kept at {str(backup.resolve())!r}"
    else:
        assert _backups(engine) == []
    assert (status, out, err) == (0, said + ".\n", "")


def test_plain_alembic_downgrade_refuses_too(sqlite_url: str) -> None:
    """`alembic downgrade` in the checkout goes through the same check (-x force=1)."""
    engine = make_engine(sqlite_url)
    _seeded_head(engine)
    env = {"MAQUINA_DB_URL": sqlite_url, "PATH": "/usr/bin:/bin"}
    repo_root = Path(__file__).resolve().parents[2]

    def alembic(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alembic", *argv],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = alembic("downgrade", "-1")
    assert refused.returncode != 0
    assert "would delete 1 row of pairwise_votes; nothing was changed" in (
        refused.stderr
    )
    assert _revision(engine) == head_revision()
    assert _backups(engine) == []

    forced = alembic("-x", "force=1", "downgrade", "-1")
    assert forced.returncode == 0, forced.stderr
    assert _revision(engine) == "0001"
    assert len(_backups(engine)) == 1
    engine.dispose()


@pytest.mark.postgres
def test_a_failing_plan_releases_the_lock_and_shows_its_own_error(
    pg_schema_url: str,
) -> None:
    """A query that fails while planning (a table gone missing) ends the PostgreSQL
    transaction before unlocking: the real error surfaces and the lock is free."""
    engine = make_engine(pg_schema_url)
    try:
        upgrade(engine, "head")
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE pairwise_votes")

        with pytest.raises(sa.exc.ProgrammingError, match="pairwise_votes"):
            downgrade(engine, "0001")

        with engine.connect() as connection:
            held = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            ).scalar_one()
        assert held == 0
        assert engine.pool.checkedin() == 1  # the connection checked above was it
    finally:
        engine.dispose()
