"""Blind pairwise votes: which of two responses to one item a rater preferred.

A vote remembers where each response was shown (``left_response_id`` on the
left, ``right_response_id`` on the right), so position bias can be measured, and
who cast it (a person's name, or ``judge:<spec>`` for a judge model). Deleting a
run, or either response, deletes its votes (``ON DELETE CASCADE``).

:func:`votes_frame` exports votes in the layout of public arena data — the left
response's model is ``model_a``, the right one's ``model_b``, and ``winner`` is
``"model_a"``, ``"model_b"`` or ``"tie"`` — ready for :mod:`maquina_nb.analysis`.

The table is added by Alembic revision 0002 (``add pairwise votes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import (
    CheckConstraint,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    delete,
    insert,
    select,
    type_coerce,
)
from sqlalchemy.orm import Mapped, aliased, mapped_column, validates

from maquina_nb._redact import get_logger, redact
from maquina_nb.db.ids import new_id
from maquina_nb.db.models import Base, ModelResponse, TimestampMixin
from maquina_nb.db.types import utcnow
from maquina_nb.db.validation import check_choice, check_non_empty, check_non_negative
from maquina_nb.errors import InvalidFieldError, StoreError

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.db import Repository

__all__ = [
    "VOTES_COLUMNS",
    "VOTE_WINNERS",
    "PairwiseVote",
    "delete_vote",
    "record_vote",
    "record_votes",
    "votes_frame",
]

logger = get_logger(__name__)

#: ``pairwise_votes.winner``: the side that won, or a tie.
VOTE_WINNERS: tuple[str, ...] = ("left", "right", "tie")

#: Columns of :func:`votes_frame`, in order.
VOTES_COLUMNS: tuple[str, ...] = (
    "id",
    "run_id",
    "item_index",
    "model_a",
    "model_b",
    "winner",
    "left_response_id",
    "right_response_id",
    "rater",
    "created_at",
)

_ARENA_WINNER = {"left": "model_a", "right": "model_b", "tie": "tie"}
_STRING_COLUMNS = (
    "id",
    "run_id",
    "model_a",
    "model_b",
    "left_response_id",
    "right_response_id",
    "rater",
)
# Ids per IN (...) lookup; far below SQLite's limit on bound parameters.
_LOOKUP_CHUNK = 500

Winner = Literal["left", "right", "tie"]


class PairwiseVote(TimestampMixin, Base):
    """One blind A/B judgment between two responses to the same item."""

    __tablename__ = "pairwise_votes"
    __table_args__ = (
        Index("ix_pairwise_votes_run_id_item_index", "run_id", "item_index"),
        Index("ix_pairwise_votes_left_response_id", "left_response_id"),
        Index("ix_pairwise_votes_right_response_id", "right_response_id"),
        CheckConstraint("winner IN ('left', 'right', 'tie')", name="winner"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("orchestration_contexts.id", ondelete="CASCADE"),
        nullable=False,
    )
    """The run the vote belongs to (for an A/B test over several runs, the first)."""
    item_index: Mapped[int] = mapped_column(Integer, nullable=False)
    left_response_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("model_responses.id", ondelete="CASCADE"), nullable=False
    )
    """The response shown on the left (first)."""
    right_response_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("model_responses.id", ondelete="CASCADE"), nullable=False
    )
    """The response shown on the right (second)."""
    winner: Mapped[str] = mapped_column(String(8), nullable=False)
    """``left``, ``right`` or ``tie``."""
    rater: Mapped[str] = mapped_column(String(255), nullable=False)
    """Who voted: a person's name, or ``judge:<spec>`` for a judge model."""

    @validates("winner")
    def _check_winner(self, key: str, value: str) -> str:
        return check_choice("PairwiseVote", key, value, VOTE_WINNERS)

    @validates("rater")
    def _check_rater(self, key: str, value: str) -> str:
        return check_non_empty("PairwiseVote", key, value)

    @validates("item_index")
    def _check_index(self, key: str, value: int) -> int:
        checked: int = check_non_negative(
            "PairwiseVote", key, value, integer=True, required=True
        )
        return checked

    def __repr__(self) -> str:
        return redact(
            f"<PairwiseVote id={self.id!r} run_id={self.run_id!r} item={self.item_index!r} "
            f"left={self.left_response_id!r} right={self.right_response_id!r} "
            f"winner={self.winner!r} rater={self.rater!r}>"
        )


def _engine(target: Repository | Engine) -> Engine:
    if isinstance(target, Engine):
        return target
    engine = getattr(target, "engine", None)
    if not isinstance(engine, Engine):
        raise TypeError(
            f"Expected a Repository or an Engine, got {type(target).__name__}."
        )
    return engine


def record_vote(
    target: Repository | Engine,
    *,
    left_response_id: str,
    right_response_id: str,
    winner: Winner,
    rater: str | None = None,
    run_id: str | None = None,
    item_index: int | None = None,
) -> str:
    """Store one pairwise vote and return its id.

    Args:
        target: the repository (or engine) of the database holding the responses.
        left_response_id: the response shown on the left.
        right_response_id: the response shown on the right.
        winner: ``left``, ``right`` or ``tie``.
        rater: who voted; default the configured rater name (``MAQUINA_NB_RATER``).
        run_id: the run the vote belongs to; default the left response's run.
        item_index: the item; default the left response's item.

    Raises:
        InvalidFieldError: an unknown winner, an empty rater, or the same response
            on both sides.
        StoreError: either response does not exist.
    """
    vote = {
        "left_response_id": left_response_id,
        "right_response_id": right_response_id,
        "winner": winner,
        "rater": rater,
        "run_id": run_id,
        "item_index": item_index,
    }
    return record_votes(target, [vote])[0]


def record_votes(
    target: Repository | Engine, votes: Sequence[Mapping[str, Any]]
) -> list[str]:
    """Store several votes in one transaction and return their ids, in order.

    Each vote is a mapping with the keyword arguments of :func:`record_vote`
    (``left_response_id``, ``right_response_id``, ``winner`` and, optionally,
    ``rater``, ``run_id``, ``item_index``). Nothing is stored unless every vote
    is valid.

    Raises:
        InvalidFieldError: a vote has an unknown winner, an empty rater, a
            negative item, or the same response on both sides.
        StoreError: a response does not exist.
    """
    rows = [_checked(vote) for vote in votes]
    if not rows:
        return []
    wanted = sorted(
        {r[k] for r in rows for k in ("left_response_id", "right_response_id")}
    )
    responses = ModelResponse.__table__

    # BEGIN IMMEDIATE on SQLite: take the write lock before reading, as every
    # repository writer does, so the read-then-insert cannot hit a lock upgrade.
    writer = _engine(target).execution_options(sqlite_immediate=True)
    with writer.begin() as connection:
        # Every response must exist; the left one supplies the run and item.
        found: dict[str, tuple[str, int]] = {}
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            query = select(responses.c.id, responses.c.run_id, responses.c.item_index)
            for response_id, run, item in connection.execute(
                query.where(responses.c.id.in_(chunk))
            ):
                found[response_id] = (run, item)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise StoreError(
                f"No response with id {missing[0]!r}; pass the id of a stored "
                "response (see responses_frame())."
            )

        now = utcnow()
        for row in rows:
            left_run, left_item = found[row["left_response_id"]]
            row["id"] = new_id()
            row["run_id"] = row["run_id"] if row["run_id"] is not None else left_run
            if row["item_index"] is None:
                row["item_index"] = left_item
            row["created_at"] = row["updated_at"] = now
        connection.execute(insert(PairwiseVote), rows)

    logger.debug("%d pairwise vote(s) stored", len(rows))
    return [row["id"] for row in rows]


def delete_vote(target: Repository | Engine, vote_id: str) -> None:
    """Delete one vote (a rater's undo).

    Raises:
        StoreError: no vote has that id.
    """
    writer = _engine(target).execution_options(sqlite_immediate=True)
    with writer.begin() as connection:
        result = connection.execute(
            delete(PairwiseVote).where(PairwiseVote.id == vote_id)
        )
        if result.rowcount == 0:
            raise StoreError(
                f"No vote with id {vote_id!r}; it may have been deleted with its run."
            )
    logger.debug("vote %s deleted", vote_id)


def _checked(vote: Mapping[str, Any]) -> dict[str, Any]:
    left, right = vote.get("left_response_id"), vote.get("right_response_id")
    check_non_empty("PairwiseVote", "left_response_id", left)
    check_non_empty("PairwiseVote", "right_response_id", right)
    if left == right:
        raise InvalidFieldError(
            "PairwiseVote",
            "right_response_id",
            right,
            "a different response than the left one",
        )
    check_choice("PairwiseVote", "winner", vote.get("winner"), VOTE_WINNERS)
    rater = vote.get("rater")
    if rater is None:
        from maquina_nb.config import rater_name

        rater = rater_name()
    check_non_empty("PairwiseVote", "rater", rater)
    item_index = vote.get("item_index")
    if item_index is not None:
        check_non_negative("PairwiseVote", "item_index", item_index, integer=True)
    return {
        "left_response_id": left,
        "right_response_id": right,
        "winner": vote["winner"],
        "rater": rater,
        "run_id": vote.get("run_id"),
        "item_index": item_index,
    }


def votes_frame(
    target: Repository | Engine,
    run_id: str | Sequence[str] | None = None,
    *,
    rater: str | None = None,
) -> pd.DataFrame:
    """Return pairwise votes as an arena-style DataFrame, oldest first.

    Args:
        target: the repository (or engine) to read from.
        run_id: one run id, several, or ``None`` for every vote.
        rater: only the votes of this rater.

    Returns:
        One row per vote with columns ``id``, ``run_id``, ``item_index``,
        ``model_a`` (model spec of the left response), ``model_b`` (of the right
        one), ``winner`` (``"model_a"``, ``"model_b"`` or ``"tie"``),
        ``left_response_id``, ``right_response_id``, ``rater`` and ``created_at``
        (UTC). ``item_index`` is a nullable ``Int64``.
    """
    import pandas as pd

    engine = _engine(target)
    left = aliased(ModelResponse)
    right = aliased(ModelResponse)
    created_at: Any = PairwiseVote.created_at
    if engine.dialect.name == "sqlite":
        # SQLite stores UTC text; pandas parses a whole column far faster than
        # SQLAlchemy converts row by row.
        created_at = type_coerce(PairwiseVote.created_at, String)
    query = (
        select(
            PairwiseVote.id,
            PairwiseVote.run_id,
            PairwiseVote.item_index,
            left.model_spec.label("model_a"),
            right.model_spec.label("model_b"),
            PairwiseVote.winner,
            PairwiseVote.left_response_id,
            PairwiseVote.right_response_id,
            PairwiseVote.rater,
            created_at.label("created_at"),
        )
        .join(left, left.id == PairwiseVote.left_response_id)
        .join(right, right.id == PairwiseVote.right_response_id)
        .order_by(PairwiseVote.created_at, PairwiseVote.id)
    )
    if run_id is not None:
        ids = [run_id] if isinstance(run_id, str) else list(run_id)
        query = query.where(PairwiseVote.run_id.in_(ids))
    if rater is not None:
        query = query.where(PairwiseVote.rater == rater)

    with engine.connect() as connection:
        rows = connection.execute(query).fetchall()

    # Column-wise construction: pandas probes each Row object otherwise.
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in VOTES_COLUMNS]
    frame = pd.DataFrame(dict(zip(VOTES_COLUMNS, columns, strict=True)))
    frame["winner"] = frame["winner"].map(_ARENA_WINNER).astype("string")
    frame["item_index"] = frame["item_index"].astype("Int64")
    frame["created_at"] = pd.to_datetime(
        frame["created_at"], utc=True, format="ISO8601"
    )
    for column in _STRING_COLUMNS:
        frame[column] = frame[column].astype("string")
    return frame
