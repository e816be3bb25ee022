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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from sqlalchemy import (
    CheckConstraint,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    select,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column, validates

from maquina_nb._redact import get_logger, redact
from maquina_nb.db.ids import new_id
from maquina_nb.db.models import Base, ModelResponse, TimestampMixin
from maquina_nb.db.validation import check_choice, check_non_empty, check_non_negative
from maquina_nb.errors import InvalidFieldError, StoreError

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.db import Repository

__all__ = [
    "VOTES_COLUMNS",
    "VOTE_WINNERS",
    "PairwiseVote",
    "record_vote",
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
        return check_choice("PairwiseVote", key, value, VOTE_WINNERS)  # type: ignore[no-any-return]

    @validates("rater")
    def _check_rater(self, key: str, value: str) -> str:
        return check_non_empty("PairwiseVote", key, value)  # type: ignore[no-any-return]

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
    check_choice("PairwiseVote", "winner", winner, VOTE_WINNERS)
    if left_response_id == right_response_id:
        raise InvalidFieldError(
            "PairwiseVote",
            "right_response_id",
            right_response_id,
            "a different response than the left one",
        )
    if rater is None:
        from maquina_nb.config import rater_name

        rater = rater_name()

    # BEGIN IMMEDIATE on SQLite: take the write lock before reading, as every
    # repository writer does, so the read-then-insert cannot hit a lock upgrade.
    writer = _engine(target).execution_options(sqlite_immediate=True)
    with Session(writer, expire_on_commit=False) as session, session.begin():
        # Both responses must exist; the left one supplies the defaults.
        found = dict(
            session.execute(
                select(ModelResponse.id, ModelResponse).where(
                    ModelResponse.id.in_((left_response_id, right_response_id))
                )
            ).all()
        )
        for response_id in (left_response_id, right_response_id):
            if response_id not in found:
                raise StoreError(
                    f"No response with id {response_id!r}; pass the id of a stored "
                    "response (see responses_frame())."
                )
        left = found[left_response_id]
        vote = PairwiseVote(
            run_id=run_id if run_id is not None else left.run_id,
            item_index=item_index if item_index is not None else left.item_index,
            left_response_id=left_response_id,
            right_response_id=right_response_id,
            winner=winner,
            rater=rater,
        )
        session.add(vote)
        session.flush()
        vote_id = vote.id

    logger.debug("vote %s stored: %s by %s", vote_id, winner, rater)
    return vote_id


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

    left = aliased(ModelResponse)
    right = aliased(ModelResponse)
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
            PairwiseVote.created_at,
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

    with _engine(target).connect() as connection:
        rows = list(connection.execute(query).all())

    frame = pd.DataFrame(rows, columns=list(VOTES_COLUMNS))
    frame["winner"] = frame["winner"].map(_ARENA_WINNER).astype("string")
    frame["item_index"] = frame["item_index"].astype("Int64")
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    for column in (
        "id",
        "run_id",
        "model_a",
        "model_b",
        "left_response_id",
        "right_response_id",
        "rater",
    ):
        frame[column] = frame[column].astype("string")
    return frame
