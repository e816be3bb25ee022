"""Revision 0002 (pairwise votes): upgrade over existing data, downgrade, cascade.

Runs on SQLite and, marked ``postgres``, in a private schema on the session's
PostgreSQL server (``db_url`` and ``repo`` from tests/db/conftest.py), so other
tests sharing the server never see a downgraded schema. The walk of every
revision with seeded data (``migration_helpers.check_round_trip``, which seeds
0002 with a vote) runs in test_migrations.py.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
import sqlalchemy as sa

from alembic import command
from maquina_nb.db import Repository
from maquina_nb.db.engine import make_engine
from maquina_nb.db.migrate import current_revision, downgrade, make_config, upgrade
from maquina_nb.db.votes import VOTES_COLUMNS, record_vote, votes_frame
from maquina_nb.errors import InvalidFieldError, StoreError

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)


def _seed_0001(engine: sa.Engine) -> dict[str, str]:
    """Write a run, two responses, feedback and a decision with plain SQL at 0001."""
    ids = {"run": "0" * 31 + "1", "left": "0" * 31 + "2", "right": "0" * 31 + "3"}
    stamps = {"created_at": NOW, "updated_at": NOW}
    meta = sa.MetaData()
    meta.reflect(engine)
    t = meta.tables
    with engine.begin() as connection:
        connection.execute(
            t["orchestration_contexts"].insert(),
            {
                "id": ids["run"], "name": "before-0002", "template": "{{ q }}",
                "system_prompt": None, "models": ["echo:a", "echo:b"], "parameters": {},
                "tags": [], "item_count": 1, "samples": 1, "status": "complete",
                "package_version": "0.1.0", "sdk_versions": {}, "metadata": {}, **stamps,
            },
        )  # fmt: skip
        for key, model in (("left", "echo:a"), ("right", "echo:b")):
            connection.execute(
                t["model_responses"].insert(),
                {
                    "id": ids[key], "run_id": ids["run"], "item_index": 0,
                    "sample_index": 0, "model_spec": model, "provider": "echo",
                    "request_parameters": {}, "messages": [], "variables": {},
                    "text": f"answer {key}", "status": "done",
                    "cost_is_estimate": False, **stamps,
                },
            )  # fmt: skip
        connection.execute(
            t["human_feedback"].insert(),
            {
                "id": "0" * 31 + "4", "response_id": ids["left"], "kind": "rating",
                "value": 4, "rater": "ada", **stamps,
            },
        )  # fmt: skip
        connection.execute(
            t["decisions"].insert(),
            {
                "id": "0" * 31 + "5", "run_id": ids["run"], "item_index": 0,
                "strategy": "human", "winner_response_id": ids["left"],
                "decided_by": "ada", "details": {"note": "kept"}, **stamps,
            },
        )  # fmt: skip
    return ids


def _old_rows(engine: sa.Engine) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "runs": "SELECT id, name, status FROM orchestration_contexts ORDER BY id",
        "responses": "SELECT id, model_spec, text FROM model_responses ORDER BY id",
        "feedback": "SELECT id, kind, value, rater FROM human_feedback ORDER BY id",
        "decisions": "SELECT id, strategy, winner_response_id FROM decisions ORDER BY id",
    }
    with engine.connect() as connection:
        return {
            k: [tuple(r) for r in connection.exec_driver_sql(q)]
            for k, q in queries.items()
        }


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _round_trip(url: str) -> None:
    engine = make_engine(url)
    try:
        # At 0001 with data, then up to 0002: old rows unchanged, table present.
        upgrade(engine, "0001")
        ids = _seed_0001(engine)
        before = _old_rows(engine)
        upgrade(engine, "0002")
        with engine.connect() as connection:
            assert current_revision(connection) == "0002"
        assert "pairwise_votes" in _tables(engine)
        assert _old_rows(engine) == before

        # Votes work against the pre-existing responses.
        vote_id = record_vote(
            engine,
            left_response_id=ids["left"],
            right_response_id=ids["right"],
            winner="left",
            rater="ada",
        )
        frame = votes_frame(engine, ids["run"])
        assert list(frame.columns) == list(VOTES_COLUMNS)
        assert frame[["id", "model_a", "model_b", "winner", "rater"]].to_dict(
            "records"
        ) == [
            {
                "id": vote_id,
                "model_a": "echo:a",
                "model_b": "echo:b",
                "winner": "model_a",
                "rater": "ada",
            }
        ]

        # The database itself refuses a bad winner (not only the ORM).
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO pairwise_votes (id, run_id, item_index, left_response_id, "
                "right_response_id, winner, rater, created_at, updated_at) VALUES "
                f"('{'9' * 32}', '{ids['run']}', 0, '{ids['left']}', '{ids['right']}', "
                "'both', 'ada', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )

        # Down to 0001 (forced: there is a vote to lose): the votes table goes,
        # everything older stays.
        downgrade(engine, "0001", force=True)
        assert "pairwise_votes" not in _tables(engine)
        assert _old_rows(engine) == before

        # Up again: an empty votes table, and the models agree with the migrations.
        upgrade(engine, "head")
        assert votes_frame(engine).empty
        assert _old_rows(engine) == before
        with engine.connect() as connection:
            command.check(make_config(connection=connection))
    finally:
        engine.dispose()


def test_votes_migration_round_trip(db_url: str) -> None:
    # db_url (tests/db/conftest.py): a SQLite file, and a private schema on the
    # session's PostgreSQL (``postgres`` mark).
    _round_trip(db_url)


# --- votes through the repository -------------------------------------------------


@pytest.fixture
def repository(repo: Repository) -> Repository:
    # Every repository test runs on SQLite and on PostgreSQL (tests/db/conftest.py).
    return repo


def _two_responses(repository: Repository) -> tuple[str, str, str]:
    run_id = repository.add_run(
        name="votes", template="{{ q }}", system_prompt=None, models=["echo:a", "echo:b"],
        parameters={}, tags=[], item_count=1, samples=1,
    )  # fmt: skip
    rows = [
        {
            "run_id": run_id,
            "item_index": 3,
            "sample_index": 0,
            "model_spec": m,
            "text": m,
            "status": "done",
        }
        for m in ("echo:a", "echo:b")
    ]
    left, right = repository.add_responses(rows)
    return run_id, left, right


def test_votes_frame_is_arena_shaped_with_dtypes(repository: Repository) -> None:
    run_id, left, right = _two_responses(repository)
    ids = [
        record_vote(
            repository,
            left_response_id=left,
            right_response_id=right,
            winner="right",
            rater="ada",
        ),
        record_vote(
            repository, left_response_id=right, right_response_id=left, winner="tie"
        ),
    ]

    frame = votes_frame(repository, run_id)

    expected = pd.DataFrame(
        {
            "id": ids,
            "run_id": [run_id, run_id],
            "item_index": [3, 3],
            "model_a": ["echo:a", "echo:b"],
            "model_b": ["echo:b", "echo:a"],
            "winner": ["model_b", "tie"],
            "left_response_id": [left, right],
            "right_response_id": [right, left],
            "rater": ["ada", "test-rater"],  # the second from MAQUINA_NB_RATER
        }
    ).astype("string")
    expected["item_index"] = expected["item_index"].astype("Int64")
    pd.testing.assert_frame_equal(frame.drop(columns="created_at"), expected)
    dtype = frame["created_at"].dtype
    assert isinstance(dtype, pd.DatetimeTZDtype)
    assert str(dtype.tz) == "UTC"
    assert votes_frame(repository, rater="ada")["id"].tolist() == [ids[0]]
    assert votes_frame(repository, ["nope"]).empty


def test_record_vote_rejects_bad_input(repository: Repository) -> None:
    _, left, right = _two_responses(repository)
    with pytest.raises(
        InvalidFieldError,
        match=re.escape("PairwiseVote.winner must be one of left, right, tie"),
    ):
        record_vote(
            repository, left_response_id=left, right_response_id=right, winner="both"
        )  # type: ignore[arg-type]
    with pytest.raises(InvalidFieldError, match="different response"):
        record_vote(
            repository, left_response_id=left, right_response_id=left, winner="tie"
        )
    with pytest.raises(StoreError, match=f"No response with id {'f' * 32!r}"):
        record_vote(
            repository, left_response_id=left, right_response_id="f" * 32, winner="tie"
        )
    assert votes_frame(repository).empty


def test_votes_cascade_with_their_run(repository: Repository) -> None:
    run_id, left, right = _two_responses(repository)
    record_vote(
        repository, left_response_id=left, right_response_id=right, winner="left"
    )
    assert len(votes_frame(repository)) == 1

    repository.delete_run(run_id)

    assert votes_frame(repository).empty
    with repository.engine.connect() as connection:
        assert (
            connection.exec_driver_sql("SELECT count(*) FROM pairwise_votes").scalar()
            == 0
        )


def test_record_votes_is_all_or_nothing(repository: Repository) -> None:
    from maquina_nb.db.votes import record_votes

    run_id, left, right = _two_responses(repository)
    good = {"left_response_id": left, "right_response_id": right, "winner": "left"}

    with pytest.raises(StoreError, match="No response with id"):
        record_votes(repository, [good, {**good, "right_response_id": "e" * 32}])
    with pytest.raises(InvalidFieldError, match=re.escape("PairwiseVote.rater")):
        record_votes(repository, [good, {**good, "rater": "  "}])
    assert votes_frame(repository).empty

    ids = record_votes(repository, [good, {**good, "winner": "tie", "item_index": 9}])
    frame = votes_frame(repository, run_id)
    assert list(frame["id"]) == ids
    assert list(frame["item_index"]) == [3, 9]
    assert record_votes(repository, []) == []
