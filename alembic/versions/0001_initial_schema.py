"""create runs, responses, feedback and decisions

Revision ID: 0001
Revises:
Create Date: 2026-12-04 17:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What downgrade() deletes: a table name maps to None (the whole table is dropped),
# or to the names of its columns that are dropped. `maquina-nb db downgrade` counts
# these rows first and refuses without --force; tests/db/test_downgrade_safety.py
# checks this against what downgrade() really drops.
DESTROYS: dict[str, tuple[str, ...] | None] = {
    "orchestration_contexts": None,
    "model_responses": None,
    "human_feedback": None,
    "decisions": None,
}

# Frozen copies of the column types as they were at this revision; revisions never
# import the ORM models, which describe only the newest schema.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "orchestration_contexts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("models", JSON, nullable=False),
        sa.Column("parameters", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("estimated_cost_usd", sa.Float(), nullable=True),
        sa.Column("max_cost_usd", sa.Float(), nullable=True),
        sa.Column("total_cost_usd", sa.Float(), nullable=True),
        sa.Column("notebook_path", sa.Text(), nullable=True),
        sa.Column("package_version", sa.String(64), nullable=False),
        sa.Column("sdk_versions", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_orchestration_contexts"),
    )
    op.create_index(
        "ix_orchestration_contexts_created_at_id",
        "orchestration_contexts",
        ["created_at", "id"],
    )
    op.create_index(
        "ix_orchestration_contexts_name", "orchestration_contexts", ["name"]
    )

    op.create_table(
        "model_responses",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("model_spec", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("model_id", sa.String(255), nullable=True),
        sa.Column("request_parameters", JSON, nullable=False),
        sa.Column("messages", JSON, nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("raw_finish_reason", sa.String(64), nullable=True),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("tool_calls", JSON, nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("cost_is_estimate", sa.Boolean(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=True),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("cache_key", sa.String(128), nullable=True),
        sa.Column("cached_from_id", sa.String(32), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["orchestration_contexts.id"],
            name="fk_model_responses_run_id_orchestration_contexts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_responses"),
    )
    op.create_index(
        "ix_model_responses_run_id_item_index",
        "model_responses",
        ["run_id", "item_index"],
    )
    op.create_index("ix_model_responses_cache_key", "model_responses", ["cache_key"])

    op.create_table(
        "human_feedback",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("response_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("label", sa.String(255), nullable=True),
        sa.Column("rater", sa.String(255), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["model_responses.id"],
            name="fk_human_feedback_response_id_model_responses",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_human_feedback"),
    )
    op.create_index("ix_human_feedback_response_id", "human_feedback", ["response_id"])

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("winner_response_id", sa.String(32), nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["orchestration_contexts.id"],
            name="fk_decisions_run_id_orchestration_contexts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["winner_response_id"],
            ["model_responses.id"],
            name="fk_decisions_winner_response_id_model_responses",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_decisions"),
    )
    op.create_index(
        "ix_decisions_run_id_item_index", "decisions", ["run_id", "item_index"]
    )
    op.create_index(
        "ix_decisions_winner_response_id", "decisions", ["winner_response_id"]
    )


def downgrade() -> None:
    # Down to base means no maquina_nb tables at all; the migration backup of a
    # SQLite file (and MIGRATION_GUIDE.md for PostgreSQL) is how data comes back.
    op.drop_table("decisions")
    op.drop_table("human_feedback")
    op.drop_table("model_responses")
    op.drop_table("orchestration_contexts")
