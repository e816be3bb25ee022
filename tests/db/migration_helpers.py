"""Prove that data written at any revision survives every later one, up and down.

Each revision registers a :class:`Seed`: ``write`` inserts rows with plain SQL
that is valid *at that revision* (never through the ORM, which describes only
head), and ``read`` returns those rows as plain comparable values. Then
:func:`check_round_trip` walks the whole history on a database:

1. upgrade one revision at a time from base to head; at each, snapshot the
   reflected schema, write that revision's seed, and check that every seed
   written so far still reads back the same;
2. downgrade one revision at a time to the first; at each, the schema must equal
   the snapshot taken on the way up (same tables, columns, keys, indexes, on
   both dialects) and every seed of a revision at or below it must read the same;
3. upgrade to head again, one revision at a time, comparing schemas and the first
   revision's rows; then down to base (no tables left) and up to head once more.

To add revision 0003: write a seed below with ``@seed("0003")`` that fills the
new columns or tables, and its ``read``. Nothing else changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from maquina_nb.db.migrate import current_revision, downgrade, script_location, upgrade

NOW = dt.datetime(2026, 12, 4, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)
_STAMPS = {"created_at": NOW, "updated_at": NOW}


@dataclass(frozen=True)
class Seed:
    """Rows written at one revision and how to read them back."""

    revision: str
    write: Callable[[sa.Connection], None]
    read: Callable[[sa.Connection], Any]


SEEDS: dict[str, Seed] = {}


def seed(revision: str) -> Callable[[type], type]:
    """Register a class with static ``write`` and ``read`` as ``revision``'s seed."""

    def register(cls: type) -> type:
        SEEDS[revision] = Seed(revision, cls.write, cls.read)  # type: ignore[attr-defined]
        return cls

    return register


def _tables(connection: sa.Connection) -> dict[str, sa.Table]:
    metadata = sa.MetaData()
    metadata.reflect(connection)
    return dict(metadata.tables)


def _rows(connection: sa.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.exec_driver_sql(sql)]


@seed("0001")
class Seed0001:
    """A run with two responses, feedback on one, and a decision."""

    run = "a" * 32
    left = "b" * 32
    right = "c" * 32

    @staticmethod
    def write(connection: sa.Connection) -> None:
        t = _tables(connection)
        connection.execute(
            t["orchestration_contexts"].insert(),
            {
                "id": Seed0001.run, "name": "seeded at 0001", "template": "Q: {{ q }}",
                "system_prompt": "be brief", "models": ["echo:a", "echo:b"],
                "parameters": {"temperature": 0.5}, "tags": ["seed"], "item_count": 1,
                "samples": 1, "status": "complete", "total_cost_usd": 0.25,
                "package_version": "0.1.0", "sdk_versions": {"openai": "1.0"},
                "metadata": {"k": [1, 2]}, "notebook_path": "n.ipynb", **_STAMPS,
            },
        )  # fmt: skip
        for response_id, spec, tokens in (
            (Seed0001.left, "echo:a", 3),
            (Seed0001.right, "echo:b", None),
        ):
            connection.execute(
                t["model_responses"].insert(),
                {
                    "id": response_id, "run_id": Seed0001.run, "item_index": 0,
                    "sample_index": 0, "model_spec": spec, "provider": "echo",
                    "model_id": spec, "request_parameters": {"max_tokens": 9},
                    "messages": [{"role": "user", "content": "Q: 1"}],
                    "variables": {"q": 1}, "text": f"answer from {spec}",
                    "status": "done", "finish_reason": "stop", "output_tokens": tokens,
                    "cost_usd": 0.125, "cost_is_estimate": True, "latency_s": 0.5,
                    "cache_key": f"key-{spec}", **_STAMPS,
                },
            )  # fmt: skip
        connection.execute(
            t["human_feedback"].insert(),
            {"id": "d" * 32, "response_id": Seed0001.left, "kind": "rating", "value": 5,
             "comment": None, "label": None, "rater": "ada", **_STAMPS},
        )  # fmt: skip
        connection.execute(
            t["decisions"].insert(),
            {"id": "e" * 32, "run_id": Seed0001.run, "item_index": 0, "strategy": "human",
             "winner_response_id": Seed0001.left, "decided_by": "ada",
             "rationale": "clearer", "details": {"margin": 1}, **_STAMPS},
        )  # fmt: skip

    @staticmethod
    def read(connection: sa.Connection) -> Any:
        return {
            "runs": _rows(connection, "SELECT id, name, template, system_prompt, item_count, status, total_cost_usd, notebook_path FROM orchestration_contexts ORDER BY id"),
            "responses": _rows(connection, "SELECT id, run_id, item_index, model_spec, text, status, output_tokens, cost_usd, cache_key FROM model_responses ORDER BY id"),
            "feedback": _rows(connection, "SELECT id, response_id, kind, value, rater FROM human_feedback ORDER BY id"),
            "decisions": _rows(connection, "SELECT id, run_id, winner_response_id, strategy, rationale FROM decisions ORDER BY id"),
        }  # fmt: skip


@seed("0002")
class Seed0002:
    """A pairwise vote between the two responses of the 0001 seed."""

    @staticmethod
    def write(connection: sa.Connection) -> None:
        t = _tables(connection)
        connection.execute(
            t["pairwise_votes"].insert(),
            {"id": "f" * 32, "run_id": Seed0001.run, "item_index": 0,
             "left_response_id": Seed0001.left, "right_response_id": Seed0001.right,
             "winner": "tie", "rater": "ada", **_STAMPS},
        )  # fmt: skip

    @staticmethod
    def read(connection: sa.Connection) -> Any:
        return _rows(
            connection,
            "SELECT id, left_response_id, right_response_id, winner, rater FROM pairwise_votes",
        )


def revisions() -> list[str]:
    """Return the shipped revisions, oldest first."""
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    script = ScriptDirectory.from_config(config)
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def schema_snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Return the reflected schema (without alembic_version) as plain values."""
    inspector = sa.inspect(engine)
    snapshot: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        snapshot[table] = {
            "columns": [
                (c["name"], str(c["type"]).split("(")[0], c["nullable"])
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options") or {}).get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in inspector.get_indexes(table)
            ),
        }
    return snapshot


def _read_all(engine: sa.Engine, upto: list[str]) -> dict[str, Any]:
    with engine.connect() as connection:
        return {rev: SEEDS[rev].read(connection) for rev in upto if rev in SEEDS}


def check_round_trip(engine: sa.Engine) -> None:
    """Walk every revision up, down and up again, checking schema and data."""
    history = revisions()
    missing = [rev for rev in history if rev not in SEEDS]
    assert not missing, f"add a seed for revision(s) {missing} in migration_helpers.py"

    # 1. Up, one revision at a time, seeding each.
    schemas: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for index, rev in enumerate(history):
        upgrade(engine, rev)
        schemas[rev] = schema_snapshot(engine)
        with engine.begin() as connection:
            SEEDS[rev].write(connection)
        expected[rev] = _read_all(engine, [rev])[rev]
        assert _read_all(engine, history[: index + 1]) == {
            r: expected[r] for r in history[: index + 1]
        }, f"rows changed on the way up at {rev}"

    # 2. Down to the first revision, one step at a time.
    for index in range(len(history) - 2, -1, -1):
        rev = history[index]
        # force: the seeds fill what these downgrades drop (the refusal without
        # it is tested in test_downgrade_safety.py).
        downgrade(engine, rev, force=True)
        with engine.connect() as connection:
            assert current_revision(connection) == rev
        assert schema_snapshot(engine) == schemas[rev], (
            f"schema differs after downgrade to {rev}"
        )
        assert _read_all(engine, history[: index + 1]) == {
            r: expected[r] for r in history[: index + 1]
        }, f"rows lost by the downgrade to {rev}"

    # 3. Up again; the first revision's rows survive the whole trip.
    first = history[0]
    for rev in history[1:]:
        upgrade(engine, rev)
        assert schema_snapshot(engine) == schemas[rev], (
            f"schema differs after re-upgrade to {rev}"
        )
        assert _read_all(engine, [first]) == {first: expected[first]}

    # 4. Base means no tables; head again rebuilds the same schema.
    downgrade(engine, "base", force=True)
    assert schema_snapshot(engine) == {}
    upgrade(engine, "head")
    assert schema_snapshot(engine) == schemas[history[-1]]
