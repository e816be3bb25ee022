"""Alembic: round trips on both dialects, model agreement, offline SQL, batch mode,
backups, a database newer than the package, and plain ``alembic`` from the checkout."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.util.exc import CommandError

from alembic import command
from maquina_nb.db import create_db_engine, make_engine
from maquina_nb.db.migrate import (
    current_revision,
    downgrade,
    head_revision,
    make_config,
    migration_connection,
    script_location,
    upgrade,
)
from maquina_nb.errors import SchemaTooNewError, StoreError
from tests.db.migration_helpers import Seed0001, check_round_trip, revisions

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_keeps_data_and_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        check_round_trip(engine)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with engine.connect() as connection:
        command.check(make_config(connection=connection))


def test_revisions_are_linear_and_head_is_latest() -> None:
    history = revisions()
    assert history[0] == "0001"
    assert history[-1] == head_revision()


def test_script_location_is_inside_package_or_checkout() -> None:
    location = script_location()
    assert (location / "env.py").is_file()
    assert location in {REPO_ROOT / "alembic", REPO_ROOT / "maquina_nb" / "_migrations"}


def test_env_renders_batch_mode_for_sqlite_only() -> None:
    env = (script_location() / "env.py").read_text()
    assert '"render_as_batch": dialect_name == "sqlite"' in env


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_offline_sql_creates_every_table(dialect: str) -> None:
    out = io.StringIO()
    url = (
        "sqlite:///offline.db"
        if dialect == "sqlite"
        else "postgresql+psycopg://u@127.0.0.1/x"
    )
    command.upgrade(make_config(url, stdout=out), "head", sql=True)
    sql = out.getvalue()
    for table in (
        "orchestration_contexts",
        "model_responses",
        "human_feedback",
        "decisions",
    ):
        assert f"CREATE TABLE {table}" in sql
    assert f"UPDATE alembic_version SET version_num='{head_revision()}'" in sql
    if dialect == "postgresql":
        assert "JSONB" in sql
        assert "TIMESTAMP WITH TIME ZONE" in sql


def test_open_refuses_a_newer_database(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    from maquina_nb.db import clear_engine_cache

    clear_engine_cache()
    head = head_revision()
    message = (
        f"The database is at revision '9999', newer than this maquina_nb's latest "
        f"revision {head!r}; upgrade the package (pip install -U maquina-nb) or point "
        "MAQUINA_DB_URL at another database."
    )
    with pytest.raises(SchemaTooNewError) as info:
        create_db_engine(sqlite_url)
    assert str(info.value) == message
    assert (info.value.current, info.value.head) == ("9999", head)


def test_sqlite_backup_taken_before_migrating(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    assert not list(tmp_path.glob("b.db.backup-*")), "an empty database needs no backup"
    with engine.begin() as connection:
        Seed0001.write(connection)
    upgrade(engine, "head")
    engine.dispose()

    backups = list(tmp_path.glob("b.db.backup-0001-*"))
    assert len(backups) == 1
    copy = sa.create_engine(f"sqlite:///{backups[0]}")
    with copy.connect() as connection:
        assert current_revision(connection) == "0001"
        assert Seed0001.read(connection)["runs"][0][0] == Seed0001.run
    copy.dispose()


def test_no_backup_unless_a_migration_runs(tmp_path: Path) -> None:
    """A refused or failed migration, or one with nothing to do, copies nothing."""
    url = f"sqlite:///{tmp_path / 'n.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        Seed0001.write(connection)
    upgrade(engine, "head")
    for backup in tmp_path.glob("n.db.backup-*"):
        backup.unlink()

    with pytest.raises(StoreError, match="fewer than 5 revisions above base"):
        downgrade(engine, "-5")
    with pytest.raises(CommandError, match="0999"):
        downgrade(engine, "0999")
    with pytest.raises(StoreError, match="fewer than 1 revisions below head"):
        upgrade(engine, "+1")
    with pytest.raises(CommandError, match="0999"):
        upgrade(engine, "0999")
    assert upgrade(engine, "head") == (head_revision(), head_revision())
    assert not list(tmp_path.glob("n.db.backup-*"))

    # A database migrated by a newer maquina_nb: refused before any copy.
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaTooNewError):
        upgrade(engine, "head")
    with pytest.raises(SchemaTooNewError):
        downgrade(engine, "-1")
    engine.dispose()
    assert not list(tmp_path.glob("n.db.backup-*"))


_BATCH_REVISION = '''
"""test-only: add feedback.rater_id, unique per response, and a run column"""
import sqlalchemy as sa
from alembic import op

revision = "t023"
down_revision = "{head}"
branch_labels = None
depends_on = None


def _recreate():
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade():
    with op.batch_alter_table("human_feedback") as batch:
        batch.add_column(sa.Column("rater_id", sa.String(64), nullable=True))
        batch.create_unique_constraint(
            "uq_human_feedback_response_id_rater_id", ["response_id", "rater_id"]
        )
    # Rebuild the parent table too on SQLite: with foreign keys on, dropping the
    # old copy would cascade-delete every response.
    with op.batch_alter_table("orchestration_contexts", recreate=_recreate()) as batch:
        batch.add_column(sa.Column("owner", sa.String(64), nullable=True))


def downgrade():
    with op.batch_alter_table("orchestration_contexts", recreate=_recreate()) as batch:
        batch.drop_column("owner")
    with op.batch_alter_table("human_feedback") as batch:
        batch.drop_constraint("uq_human_feedback_response_id_rater_id", type_="unique")
        batch.drop_column("rater_id")
'''


def test_batch_revision_on_populated_database_keeps_rows(
    db_url: str, tmp_path: Path
) -> None:
    """C23/C27: a constraint change on a table with rows, then back, loses nothing."""
    scripts = tmp_path / "scripts"
    source = script_location()
    (scripts / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        (scripts / name).write_text((source / name).read_text())
    for revision_file in (source / "versions").glob("*.py"):
        (scripts / "versions" / revision_file.name).write_text(
            revision_file.read_text()
        )
    (scripts / "versions" / "t023_batch.py").write_text(
        textwrap.dedent(_BATCH_REVISION).replace("{head}", head_revision())
    )

    engine = make_engine(db_url)
    upgrade(engine, "head")
    with engine.begin() as connection:
        Seed0001.write(connection)
    with engine.connect() as connection:
        before = Seed0001.read(connection)

    def run(direction: str, target: str) -> None:
        with migration_connection(engine) as connection:
            config = make_config(connection=connection)
            config.set_main_option("script_location", str(scripts))
            getattr(command, direction)(config, target)

    run("upgrade", "t023")
    with engine.connect() as connection:
        assert Seed0001.read(connection) == before
        assert current_revision(connection) == "t023"
    uniques = sa.inspect(engine).get_unique_constraints("human_feedback")
    assert [u["column_names"] for u in uniques] == [["response_id", "rater_id"]]

    def add_feedback(connection: sa.Connection, suffix: str) -> None:
        connection.exec_driver_sql(
            "INSERT INTO human_feedback (id, response_id, kind, value, rater, rater_id,"
            " created_at, updated_at) VALUES "
            f"('{suffix * 32}', '{Seed0001.left}', 'thumbs', 1, 'bo', 'r1',"
            " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )

    with engine.begin() as connection:
        add_feedback(connection, "1")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        add_feedback(connection, "2")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            f"DELETE FROM human_feedback WHERE id = '{'1' * 32}'"
        )

    run("downgrade", head_revision())
    with engine.connect() as connection:
        assert Seed0001.read(connection) == before
        command.check(make_config(connection=connection))
    engine.dispose()


def test_plain_alembic_from_checkout(tmp_path: Path) -> None:
    """`alembic upgrade head` in the repository, with the URL from MAQUINA_DB_URL."""
    db = tmp_path / "cli.db"
    env = {"MAQUINA_DB_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    engine.dispose()
