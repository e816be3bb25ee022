"""The ORM: runs, responses, feedback and decisions (SQLAlchemy 2.0 typed style).

The schema itself is created and changed only by the Alembic revisions shipped
with the package; these classes describe head, and a test proves the two agree
(``alembic check``). Deleting a run deletes its responses, their feedback and
its decisions, both through the ORM and in the database (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    event,
)
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Mapper,
    mapped_column,
    relationship,
    validates,
)

from maquina_nb._redact import redact
from maquina_nb.db.ids import new_id
from maquina_nb.db.types import UtcDateTime, json_type, utcnow
from maquina_nb.db.validation import (
    DECISION_STRATEGIES,
    FEEDBACK_KINDS,
    RESPONSE_STATUSES,
    RUN_STATUSES,
    check_choice,
    check_feedback,
    check_non_empty,
    check_non_negative,
    clean_json,
)

__all__ = [
    "Base",
    "Decision",
    "HumanFeedback",
    "ModelResponse",
    "OrchestrationContext",
    "TimestampMixin",
]

#: Constraint names are fixed so that batch migrations on SQLite (which rebuild
#: tables) and ALTERs on PostgreSQL can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_REPR_TEXT = 40


def _short(text: str | None, limit: int = _REPR_TEXT) -> str:
    if text is None:
        return "None"
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}…({len(text)} chars)"


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    """``created_at`` and ``updated_at``, timezone-aware UTC on every backend."""

    created_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime(), default=utcnow, nullable=False
    )
    """When the row was written (UTC)."""
    updated_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )
    """When the row last changed (UTC)."""


def _id_column() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


class OrchestrationContext(TimestampMixin, Base):
    """One run: a template sent to several models over some items."""

    __tablename__ = "orchestration_contexts"
    __table_args__ = (
        Index("ix_orchestration_contexts_created_at_id", "created_at", "id"),
        Index("ix_orchestration_contexts_name", "name"),
    )

    id: Mapped[str] = _id_column()
    name: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    """A label the researcher gave the run (may be empty)."""
    template: Mapped[str] = mapped_column(Text, nullable=False)
    """The prompt template as written, before rendering."""
    system_prompt: Mapped[str | None] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(
        MutableList.as_mutable(json_type()), default=list, nullable=False
    )
    """The model specs, in the order the user gave them."""
    parameters: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict, nullable=False
    )
    """Request parameters shared by every call (temperature, max_tokens …)."""
    tags: Mapped[list[str]] = mapped_column(
        MutableList.as_mutable(json_type()), default=list, nullable=False
    )
    item_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    samples: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="running", nullable=False)
    """One of ``pending, running, complete, partial, failed, cancelled``."""
    estimated_cost_usd: Mapped[float | None] = mapped_column(Float)
    max_cost_usd: Mapped[float | None] = mapped_column(Float)
    total_cost_usd: Mapped[float | None] = mapped_column(Float)
    notebook_path: Mapped[str | None] = mapped_column(Text)
    package_version: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    """The maquina_nb version that ran it."""
    sdk_versions: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict, nullable=False
    )
    """Versions of the provider SDKs and Python at run time."""
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", MutableDict.as_mutable(json_type()), default=dict, nullable=False
    )
    """Free-form extra facts about the run (column ``metadata``)."""
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    responses: Mapped[list[ModelResponse]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(ModelResponse.item_index, ModelResponse.sample_index, ModelResponse.id)",
    )
    decisions: Mapped[list[Decision]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(Decision.item_index, Decision.id)",
    )

    @validates("status")
    def _check_status(self, key: str, value: str) -> str:
        return check_choice("OrchestrationContext", key, value, RUN_STATUSES)

    @validates("item_count", "samples")
    def _check_counts(self, key: str, value: int) -> int:
        return check_non_negative(
            "OrchestrationContext", key, value, integer=True, required=True
        )

    @validates("estimated_cost_usd", "max_cost_usd", "total_cost_usd")
    def _check_cost(self, key: str, value: float | None) -> float | None:
        return check_non_negative("OrchestrationContext", key, value)

    @validates("models")
    def _check_models(self, key: str, value: list[str]) -> list[str]:
        for spec in value:
            check_non_empty("OrchestrationContext", "models", spec)
        return value

    def __repr__(self) -> str:
        return redact(
            f"<OrchestrationContext id={self.id!r} name={_short(self.name)} "
            f"status={self.status!r} models={list(self.models or [])!r} "
            f"items={self.item_count!r}>"
        )


class ModelResponse(TimestampMixin, Base):
    """One model's answer to one item (one sample of it)."""

    __tablename__ = "model_responses"
    __table_args__ = (
        Index("ix_model_responses_run_id_item_index", "run_id", "item_index"),
        Index("ix_model_responses_cache_key", "cache_key"),
    )

    id: Mapped[str] = _id_column()
    run_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("orchestration_contexts.id", ondelete="CASCADE"),
        nullable=False,
    )
    item_index: Mapped[int] = mapped_column(Integer, nullable=False)
    sample_index: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    model_spec: Mapped[str] = mapped_column(String(255), nullable=False)
    """How the user named the model (``openai:gpt-4o``, ``claude`` …)."""
    provider: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(255))
    """The exact model id the provider reported (``gpt-4o-2024-08-06``)."""
    request_parameters: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict, nullable=False
    )
    messages: Mapped[list[dict[str, Any]]] = mapped_column(
        MutableList.as_mutable(json_type()), default=list, nullable=False
    )
    """The rendered messages exactly as sent."""
    variables: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict, nullable=False
    )
    """The item's template variables (its DataFrame row)."""
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    """Normalized: ``stop, length, content_filter, tool_calls, empty, error, cancelled``."""
    raw_finish_reason: Mapped[str | None] = mapped_column(String(64))
    error_kind: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(
        MutableList.as_mutable(json_type())
    )
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    """None when the price is unknown (never 0 for "unknown")."""
    cost_is_estimate: Mapped[bool] = mapped_column(
        Boolean, default=False, nullable=False
    )
    latency_s: Mapped[float | None] = mapped_column(Float)
    ttft_s: Mapped[float | None] = mapped_column(Float)
    """Time to first token, for streamed responses."""
    cache_key: Mapped[str | None] = mapped_column(String(128))
    cached_from_id: Mapped[str | None] = mapped_column(String(32))
    """The response this one was copied from. NOTE: not a foreign key, so the
    provenance stays readable after the source run is deleted."""

    run: Mapped[OrchestrationContext] = relationship(back_populates="responses")
    feedback: Mapped[list[HumanFeedback]] = relationship(
        back_populates="response",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="(HumanFeedback.created_at, HumanFeedback.id)",
    )

    @validates("model_spec")
    def _check_spec(self, key: str, value: str) -> str:
        return check_non_empty("ModelResponse", key, value)

    @validates("status")
    def _check_status(self, key: str, value: str) -> str:
        return check_choice("ModelResponse", key, value, RESPONSE_STATUSES)

    @validates("input_tokens", "output_tokens", "cached_tokens")
    def _check_tokens(self, key: str, value: int | None) -> int | None:
        return check_non_negative("ModelResponse", key, value, integer=True)

    @validates("item_index", "sample_index")
    def _check_index(self, key: str, value: int) -> int:
        return check_non_negative(
            "ModelResponse", key, value, integer=True, required=True
        )

    @validates("cost_usd", "latency_s", "ttft_s")
    def _check_number(self, key: str, value: float | None) -> float | None:
        return check_non_negative("ModelResponse", key, value)

    def __repr__(self) -> str:
        return redact(
            f"<ModelResponse id={self.id!r} run_id={self.run_id!r} "
            f"item={self.item_index!r} sample={self.sample_index!r} "
            f"model={self.model_spec!r} status={self.status!r} text={_short(self.text)}>"
        )


class HumanFeedback(TimestampMixin, Base):
    """A person's signal on one response: thumbs, rating, comment or label."""

    __tablename__ = "human_feedback"
    __table_args__ = (Index("ix_human_feedback_response_id", "response_id"),)

    id: Mapped[str] = _id_column()
    response_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("model_responses.id", ondelete="CASCADE"),
        nullable=False,
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    """One of ``thumbs`` (value ±1), ``rating`` (1 to 5), ``comment``, ``label``."""
    value: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(255))
    rater: Mapped[str] = mapped_column(String(255), nullable=False)
    """Who gave it (``MAQUINA_NB_RATER``, config, or the login name)."""

    response: Mapped[ModelResponse] = relationship(back_populates="feedback")

    @validates("kind", "value", "comment", "label")
    def _check_kind_value(self, key: str, value: Any) -> Any:
        fields: dict[str, Any] = {
            "kind": self.kind,
            "value": self.value,
            "comment": self.comment,
            "label": self.label,
        }
        fields[key] = value
        # Attributes arrive one at a time, so a missing value is only checked
        # when the row is flushed (see _check_complete_feedback).
        if fields["value"] is not None or key == "value":
            check_feedback(
                fields["kind"], fields["value"], fields["comment"], fields["label"]
            )
        elif fields["kind"] is not None:
            check_choice("HumanFeedback", "kind", fields["kind"], FEEDBACK_KINDS)
        return value

    @validates("rater")
    def _check_rater(self, key: str, value: str) -> str:
        return check_non_empty("HumanFeedback", key, value)

    def __repr__(self) -> str:
        return redact(
            f"<HumanFeedback id={self.id!r} response_id={self.response_id!r} "
            f"kind={self.kind!r} value={self.value!r} rater={self.rater!r} "
            f"comment={_short(self.comment)}>"
        )


class Decision(TimestampMixin, Base):
    """Which response won an item, and by which strategy."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_run_id_item_index", "run_id", "item_index"),
        Index("ix_decisions_winner_response_id", "winner_response_id"),
    )

    id: Mapped[str] = _id_column()
    run_id: Mapped[str] = mapped_column(
        String(32),
        ForeignKey("orchestration_contexts.id", ondelete="CASCADE"),
        nullable=False,
    )
    item_index: Mapped[int] = mapped_column(Integer, nullable=False)
    strategy: Mapped[str] = mapped_column(String(16), nullable=False)
    """One of ``human, judge, fastest, cheapest, expected, majority``."""
    winner_response_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("model_responses.id", ondelete="SET NULL")
    )
    """None for a tie or when no response qualified."""
    decided_by: Mapped[str] = mapped_column(String(255), nullable=False)
    """A rater name, a judge model spec, or the rule's name."""
    rationale: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        MutableDict.as_mutable(json_type()), default=dict, nullable=False
    )

    run: Mapped[OrchestrationContext] = relationship(back_populates="decisions")
    winner: Mapped[ModelResponse | None] = relationship()

    @validates("strategy")
    def _check_strategy(self, key: str, value: str) -> str:
        return check_choice("Decision", key, value, DECISION_STRATEGIES)

    @validates("item_index")
    def _check_index(self, key: str, value: int) -> int:
        return check_non_negative("Decision", key, value, integer=True, required=True)

    @validates("decided_by")
    def _check_decided_by(self, key: str, value: str) -> str:
        return check_non_empty("Decision", key, value)

    def __repr__(self) -> str:
        return redact(
            f"<Decision id={self.id!r} run_id={self.run_id!r} item={self.item_index!r} "
            f"strategy={self.strategy!r} winner={self.winner_response_id!r} "
            f"decided_by={self.decided_by!r}>"
        )


@event.listens_for(HumanFeedback, "before_insert")
@event.listens_for(HumanFeedback, "before_update")
def _check_complete_feedback(
    mapper: Mapper[HumanFeedback], connection: Connection, target: HumanFeedback
) -> None:
    check_feedback(target.kind, target.value, target.comment, target.label)
    if target.kind == "comment" and target.comment is None:
        check_non_empty("HumanFeedback", "comment", target.comment)
    if target.kind == "label" and target.label is None:
        check_non_empty("HumanFeedback", "label", target.label)


@event.listens_for(Base, "before_insert", propagate=True)
@event.listens_for(Base, "before_update", propagate=True)
def _clean_values(mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    """Store NUL and lone surrogates as U+FFFD, inf/nan in JSON as null (validation.py)."""
    state = target.__dict__
    for prop in mapper.column_attrs:
        value = state.get(prop.key)
        if isinstance(value, (str, dict, list)):
            cleaned = clean_json(value)
            if cleaned is not value:
                setattr(target, prop.key, cleaned)
