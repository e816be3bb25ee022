"""SQLite under concurrent processes (C19) and a writer killed mid-batch (C27)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from pathlib import Path

import pytest

from maquina_nb.db import Repository, create_db_engine, make_engine
from maquina_nb.db.migrate import head_revision
from tests.db import _db_workers

pytestmark = pytest.mark.timeout(180)


def test_two_processes_open_and_write_one_fresh_database(db_url: str) -> None:
    """Both migrate-on-open at once (one applies), then each writes 1,000 rows.

    On SQLite both write into one file; on PostgreSQL into one fresh schema.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Manager().Barrier(2)
    with context.Pool(2) as pool:
        pending = [
            pool.apply_async(
                _db_workers.write_responses, (db_url, tag, barrier, 1000, 50)
            )
            for tag in ("left", "right")
        ]
        results = [job.get(timeout=150) for job in pending]

    errors = [r["error"] for r in results if r["error"]]
    assert not errors, "\n".join(errors)
    assert sorted(r["applied"] for r in results) == [False, True]

    engine = make_engine(db_url)
    with engine.connect() as connection:
        counts = dict(
            connection.exec_driver_sql(
                "SELECT model_spec, count(*) FROM model_responses GROUP BY model_spec"
            ).all()
        )
        feedback = connection.exec_driver_sql(
            "SELECT count(*) FROM human_feedback"
        ).scalar_one()
        version = connection.exec_driver_sql(
            "SELECT version_num FROM alembic_version"
        ).all()
        if engine.dialect.name == "sqlite":
            assert (
                connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            )
    engine.dispose()
    assert counts == {"echo:left": 1000, "echo:right": 1000}
    assert feedback == 40
    assert [tuple(v) for v in version] == [(head_revision(),)]


def test_every_connection_gets_the_pragmas(sqlite_url: str) -> None:
    engine = create_db_engine(sqlite_url)
    connections = [engine.connect() for _ in range(3)]
    try:
        for connection in connections:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA busy_timeout").scalar_one() == 30_000
            assert pragma("PRAGMA journal_mode").scalar_one() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar_one() == 1
    finally:
        for connection in connections:
            connection.close()


def _progress(path: Path) -> tuple[str | None, int]:
    run_id, committed = None, 0
    if path.exists():
        for line in path.read_text().splitlines():
            word, _, value = line.partition(" ")
            if word == "run":
                run_id = value
            elif word == "committed":
                committed = int(value)
    return run_id, committed


@pytest.mark.slow
def test_writer_killed_mid_batch_leaves_every_committed_row(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    url = f"sqlite:///{db}"
    progress = tmp_path / "progress.txt"
    batch = 2000
    create_db_engine(url)  # migrated before the writer starts

    context = multiprocessing.get_context("spawn")
    writer = context.Process(
        target=_db_workers.write_until_killed, args=(url, str(progress), batch, 500)
    )
    writer.start()
    deadline = time.monotonic() + 120
    while _progress(progress)[1] < 3 * batch:
        assert writer.is_alive(), "the writer died before it was killed"
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.02)
    # Most of the writer's time is spent inside a batch's transaction.
    time.sleep(0.013)
    writer.kill()  # SIGKILL: no cleanup, no rollback, WAL left behind
    writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL

    run_id, committed = _progress(progress)
    repo = Repository.from_url(url)
    with repo.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
        stored = connection.exec_driver_sql(
            "SELECT count(*) FROM model_responses WHERE run_id = ?", (run_id,)
        ).scalar_one()
    # Every reported batch is there; at most the one in flight when killed also
    # committed (before its progress line); never part of a batch.
    assert committed <= stored <= committed + batch
    assert stored % batch == 0
    frame = repo.responses_frame(run_id)
    assert sorted(frame["item_index"].tolist()) == list(range(stored))

    # The file takes new writes.
    repo.add_responses(
        [
            {
                "run_id": run_id,
                "item_index": stored,
                "model_spec": "echo:k",
                "status": "done",
            }
        ]
    )
    assert len(repo.responses_frame(run_id)) == stored + 1
