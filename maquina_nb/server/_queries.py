"""Read queries the REST API needs beyond the repository's own methods.

Pages of one run's responses, feedback and decisions, keyed on stable columns
so that a client walking pages never sees a row twice or skips one while the
run is still writing. Every value a client sends is a bound parameter of a
SQLAlchemy expression; nothing is pasted into SQL text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from maquina_nb.db import Decision, HumanFeedback, ModelResponse, OrchestrationContext

__all__ = [
    "CursorError",
    "decisions_page",
    "feedback_page",
    "get_decision",
    "get_feedback",
    "get_response",
    "get_run_row",
    "responses_page",
    "responses_since",
    "run_items",
]

_ID = re.compile(r"^[0-9a-f]{32}$")

# NOTE: responses are read as plain rows, not ORM objects: they are only
# serialized, and the ORM's change tracking of their four JSON columns cost
# more than the query itself on a page of a hundred.
_RESPONSES = ModelResponse.__table__


class CursorError(ValueError):
    """A pagination cursor the server did not hand out."""

    def __init__(self, cursor: str) -> None:
        self.cursor = cursor
        shown = cursor if len(cursor) <= 60 else cursor[:57] + "..."
        super().__init__(
            f"The cursor {shown!r} is not one this server handed out; pass back "
            "the next_cursor of the previous page, or omit it to start over."
        )


def encode_cursor(*values: Any) -> str:
    """Pack a page's last sort key into an opaque, URL-safe cursor."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise CursorError(cursor) from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise CursorError(cursor)
    for value, kind in zip(values, kinds, strict=True):
        if type(value) is not kind:
            raise CursorError(cursor)
    return values


def is_id(value: str) -> bool:
    """Tell whether ``value`` has the shape of a stored id (32 lower-hex)."""
    return bool(_ID.match(value))


def get_run_row(engine: Engine, run_id: str) -> OrchestrationContext | None:
    """Return the run with id ``run_id``, or ``None``."""
    if not is_id(run_id):
        return None
    with Session(engine, expire_on_commit=False) as session:
        return session.get(OrchestrationContext, run_id)


def get_response(engine: Engine, response_id: str) -> Row[Any] | None:
    """Return the response with id ``response_id``, or ``None``."""
    if not is_id(response_id):
        return None
    query = select(_RESPONSES).where(ModelResponse.id == response_id)
    with engine.connect() as connection:
        return connection.execute(query).first()


def get_feedback(engine: Engine, feedback_id: str) -> HumanFeedback | None:
    """Return the feedback row with id ``feedback_id``, or ``None``."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(HumanFeedback, feedback_id)


def get_decision(engine: Engine, decision_id: str) -> Decision | None:
    """Return the decision with id ``decision_id``, or ``None``."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Decision, decision_id)


def responses_page(
    engine: Engine,
    run_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    model: str | None = None,
    status: str | None = None,
    item_index: int | None = None,
) -> tuple[list[Row[Any]], str | None]:
    """Return one page of a run's responses ordered by (item_index, id)."""
    query = select(_RESPONSES).where(ModelResponse.run_id == run_id)
    if model is not None:
        query = query.where(ModelResponse.model_spec == model)
    if status is not None:
        query = query.where(ModelResponse.status == status)
    if item_index is not None:
        query = query.where(ModelResponse.item_index == item_index)
    if cursor:
        last_item, last_id = _decode_cursor(cursor, (int, str))
        query = query.where(
            or_(
                ModelResponse.item_index > last_item,
                and_(ModelResponse.item_index == last_item, ModelResponse.id > last_id),
            )
        )
    query = query.order_by(ModelResponse.item_index, ModelResponse.id).limit(limit + 1)

    with engine.connect() as connection:
        rows = list(connection.execute(query))
    return _cut_page(rows, limit, "item_index", "id")


def responses_since(
    engine: Engine, run_id: str, since: datetime | None
) -> list[Row[Any]]:
    """Return a run's responses updated at or after ``since`` (all when ``None``)."""
    query = select(_RESPONSES).where(ModelResponse.run_id == run_id)
    if since is not None:
        query = query.where(ModelResponse.updated_at >= since)
    query = query.order_by(ModelResponse.item_index, ModelResponse.id)
    with engine.connect() as connection:
        return list(connection.execute(query))


def run_items(engine: Engine, run_id: str) -> list[Row[Any]]:
    """Return ``(item_index, messages, variables)`` of each item's first response."""
    first = (
        select(ModelResponse.item_index, func.min(ModelResponse.id).label("first_id"))
        .where(ModelResponse.run_id == run_id)
        .group_by(ModelResponse.item_index)
        .subquery()
    )
    query = (
        select(
            ModelResponse.item_index, ModelResponse.messages, ModelResponse.variables
        )
        .join(first, ModelResponse.id == first.c.first_id)
        .order_by(ModelResponse.item_index)
    )
    with engine.connect() as connection:
        return list(connection.execute(query))


def _cut_page(rows: list[Any], limit: int, *key: str) -> tuple[list[Any], str | None]:
    # The queries fetch limit + 1 rows: one more means there is a next page,
    # whose cursor is the sort key of this page's last row.
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*(getattr(rows[-1], name) for name in key))


def _id_page(
    engine: Engine, query: Select[Any], id_column: Any, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """Run ``query`` for ORM rows as one page ordered by ``id_column``."""
    if cursor is not None:
        (last_id,) = _decode_cursor(cursor, (str,))
        query = query.where(id_column > last_id)
    query = query.order_by(id_column).limit(limit + 1)

    with Session(engine, expire_on_commit=False) as session:
        rows = list(session.scalars(query))
    return _cut_page(rows, limit, "id")


def feedback_page(
    engine: Engine,
    run_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    response_id: str | None = None,
    kind: str | None = None,
    rater: str | None = None,
) -> tuple[list[HumanFeedback], str | None]:
    """Return one page of the feedback on a run's responses, oldest first."""
    query = (
        select(HumanFeedback)
        .join(ModelResponse, HumanFeedback.response_id == ModelResponse.id)
        .where(ModelResponse.run_id == run_id)
    )
    if response_id is not None:
        query = query.where(HumanFeedback.response_id == response_id)
    if kind is not None:
        query = query.where(HumanFeedback.kind == kind)
    if rater is not None:
        query = query.where(HumanFeedback.rater == rater)
    return _id_page(engine, query, HumanFeedback.id, cursor, limit)


def decisions_page(
    engine: Engine,
    run_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    strategy: str | None = None,
    item_index: int | None = None,
) -> tuple[list[Decision], str | None]:
    """Return one page of a run's decisions, oldest first."""
    query = select(Decision).where(Decision.run_id == run_id)
    if strategy is not None:
        query = query.where(Decision.strategy == strategy)
    if item_index is not None:
        query = query.where(Decision.item_index == item_index)
    return _id_page(engine, query, Decision.id, cursor, limit)


def all_feedback(engine: Engine, run_id: str) -> list[tuple[int, str, str, int | None]]:
    """Return ``(item_index, model_spec, kind, value)`` per thumbs or rating on a run."""
    query = (
        select(
            ModelResponse.item_index,
            ModelResponse.model_spec,
            HumanFeedback.kind,
            HumanFeedback.value,
        )
        .join(ModelResponse, HumanFeedback.response_id == ModelResponse.id)
        .where(ModelResponse.run_id == run_id)
        .where(HumanFeedback.kind.in_(("thumbs", "rating")))
    )
    with engine.connect() as connection:
        return [(row[0], row[1], row[2], row[3]) for row in connection.execute(query)]


def all_decisions(engine: Engine, run_id: str) -> list[tuple[int, str | None]]:
    """Return ``(item_index, winner_response_id)`` for every decision of a run."""
    query = select(Decision.item_index, Decision.winner_response_id).where(
        Decision.run_id == run_id
    )
    with Session(engine) as session:
        return [
            (row[0], row[1]) for row in session.execute(query.order_by(Decision.id))
        ]
