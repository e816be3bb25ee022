"""add pairwise votes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What downgrade() deletes (see 0001): the votes table, with every vote in it.
DESTROYS: dict[str, tuple[str, ...] | None] = {"pairwise_votes": None}

# Frozen copy of the timestamp type as it is at this revision (revisions never
# import the ORM models, which describe only the newest schema).
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # A new table only: existing rows are untouched on SQLite and PostgreSQL.
    op.create_table(
        "pairwise_votes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("item_index", sa.Integer(), nullable=False),
        sa.Column("left_response_id", sa.String(32), nullable=False),
        sa.Column("right_response_id", sa.String(32), nullable=False),
        sa.Column("winner", sa.String(8), nullable=False),
        sa.Column("rater", sa.String(255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "winner IN ('left', 'right', 'tie')",
            name=op.f("ck_pairwise_votes_winner"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["orchestration_contexts.id"],
            name="fk_pairwise_votes_run_id_orchestration_contexts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["left_response_id"],
            ["model_responses.id"],
            name="fk_pairwise_votes_left_response_id_model_responses",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["right_response_id"],
            ["model_responses.id"],
            name="fk_pairwise_votes_right_response_id_model_responses",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_pairwise_votes"),
    )
    op.create_index(
        "ix_pairwise_votes_run_id_item_index",
        "pairwise_votes",
        ["run_id", "item_index"],
    )
    op.create_index(
        "ix_pairwise_votes_left_response_id", "pairwise_votes", ["left_response_id"]
    )
    op.create_index(
        "ix_pairwise_votes_right_response_id", "pairwise_votes", ["right_response_id"]
    )


def downgrade() -> None:
    # Drops every stored vote (DESTROYS above): `maquina-nb db downgrade` refuses
    # when there are votes unless given --force, and backs a SQLite file up first.
    op.drop_index("ix_pairwise_votes_right_response_id", table_name="pairwise_votes")
    op.drop_index("ix_pairwise_votes_left_response_id", table_name="pairwise_votes")
    op.drop_index("ix_pairwise_votes_run_id_item_index", table_name="pairwise_votes")
    op.drop_table("pairwise_votes")
