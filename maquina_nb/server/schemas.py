"""Request and response bodies of the REST API (pydantic models).

Request models forbid unknown fields, so a typo answers 422 naming the field
instead of being ignored. Response models list every field a client may rely
on; they are part of the public contract, like the DataFrame columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

__all__ = [
    "DecisionIn",
    "DecisionOut",
    "DecisionPage",
    "ErrorOut",
    "FeedbackIn",
    "FeedbackOut",
    "FeedbackPage",
    "ModelOut",
    "ResponseOut",
    "ResponsePage",
    "RunOut",
    "RunPage",
    "RunParameters",
    "RunStartIn",
    "RunStartOut",
    "StatisticsOut",
]

FeedbackKind = Literal["thumbs", "rating", "comment", "label"]
ModelSource = Literal["alias", "config", "builtin", "registered"]
Strategy = Literal["human", "judge", "fastest", "cheapest", "expected", "majority"]

_SHORT = 200
_LONG = 20_000

#: A model spec or alias: something other than spaces, at most 200 characters.
ModelSpec = Annotated[
    str, StringConstraints(min_length=1, max_length=_SHORT, pattern=r"\S")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ErrorOut(BaseModel):
    """Body of every 4xx answer."""

    detail: Any = Field(
        description="A sentence, or for 422 the list of fields at fault."
    )


# --- runs --------------------------------------------------------------------


class RunOut(BaseModel):
    """One run (orchestration context)."""

    id: str
    name: str | None = None
    status: str
    template: str | None = None
    system_prompt: str | None = None
    models: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    item_count: int | None = None
    samples: int | None = None
    estimated_cost_usd: float | None = None
    max_cost_usd: float | None = None
    total_cost_usd: float | None = None
    notebook_path: str | None = None
    package_version: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None


class RunPage(BaseModel):
    """A page of runs, newest first; pass ``next_cursor`` back as ``cursor``."""

    runs: list[RunOut]
    next_cursor: str | None = None


class RunParameters(_Request):
    """Sampling parameters applied to every model of a started run."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=16, description="Stop sequences."
    )
    seed: int | None = Field(
        default=None,
        ge=-(2**63),
        le=2**63 - 1,
        description="Sent to providers that take one; part of the cache key for all.",
    )


class RunStartIn(_Request):
    """Start a run: a prompt template sent to several models.

    The template is Jinja2 (``{{ column }}``), rendered once per row of ``over``
    (or once, with no variables, when ``over`` is absent).
    """

    template: str = Field(min_length=1, max_length=_LONG)
    models: list[ModelSpec] = Field(
        min_length=1,
        max_length=16,
        description="Plain specs or aliases the server knows (GET /api/models); "
        "'?options' and replay files are refused: they are configured in the "
        "server's maquina.toml.",
    )
    over: list[dict[str, Any]] | None = Field(default=None, max_length=5_000)
    system: str | None = Field(default=None, max_length=_LONG)
    samples: int = Field(default=1, ge=1, le=20)
    parameters: RunParameters = Field(default_factory=RunParameters)
    name: str | None = Field(default=None, max_length=_SHORT)
    tags: list[str] = Field(default_factory=list, max_length=32)
    max_cost_usd: float | None = Field(default=None, ge=0)
    cache: bool = True


class RunStartOut(BaseModel):
    """Where to find a run that has started."""

    run_id: str
    status: str
    run_url: str
    events_url: str


# --- responses ---------------------------------------------------------------


class ResponseOut(BaseModel):
    """One model's answer to one item."""

    id: str
    run_id: str
    item_index: int
    sample_index: int
    model_spec: str
    provider: str | None = None
    model_id: str | None = None
    status: str
    text: str | None = None
    finish_reason: str | None = None
    raw_finish_reason: str | None = None
    error_kind: str | None = None
    error_message: str | None = None
    request_parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    variables: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    cost_is_estimate: bool | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    cached_from_id: str | None = None
    created_at: datetime | None = None


class ResponsePage(BaseModel):
    """A page of responses in item order; pass ``next_cursor`` back as ``cursor``."""

    responses: list[ResponseOut]
    next_cursor: str | None = None


# --- feedback and decisions --------------------------------------------------


class FeedbackIn(_Request):
    """A person's signal on one response.

    ``thumbs`` takes ``value`` -1 or 1; ``rating`` takes 1 to 5; ``comment``
    takes ``comment``; ``label`` takes ``label``.
    """

    kind: FeedbackKind
    value: int | None = Field(default=None, ge=-1, le=5, validate_default=True)
    comment: str | None = Field(default=None, max_length=_LONG, validate_default=True)
    label: str | None = Field(
        default=None, min_length=1, max_length=_SHORT, validate_default=True
    )
    rater: str = Field(min_length=1, max_length=_SHORT)

    # Each check is on the field it concerns, so a 422 names that field; "kind"
    # comes first in the class, so it is already in ``info.data``.

    @field_validator("value")
    @classmethod
    def _check_value(cls, value: int | None, info: ValidationInfo) -> int | None:
        kind = info.data.get("kind")
        if kind == "thumbs" and value not in (-1, 1):
            raise ValueError(f"A thumbs value must be -1 or 1, not {value!r}.")
        if kind == "rating" and (value is None or not 1 <= value <= 5):
            raise ValueError(f"A rating value must be 1 to 5, not {value!r}.")
        return value

    @field_validator("comment")
    @classmethod
    def _check_comment(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") == "comment" and not (value and value.strip()):
            raise ValueError("A comment needs a non-empty 'comment'.")
        return value

    @field_validator("label")
    @classmethod
    def _check_label(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") == "label" and not (value and value.strip()):
            raise ValueError("A label needs a non-empty 'label'.")
        return value


class FeedbackOut(BaseModel):
    """One stored feedback row."""

    id: str
    response_id: str
    kind: str
    value: int | None = None
    comment: str | None = None
    label: str | None = None
    rater: str | None = None
    created_at: datetime | None = None


class FeedbackPage(BaseModel):
    """A page of feedback, oldest first."""

    feedback: list[FeedbackOut]
    next_cursor: str | None = None


class DecisionIn(_Request):
    """Which response won an item, and by what strategy."""

    item_index: int = Field(ge=0, le=2**31 - 1)
    strategy: Strategy
    winner_response_id: str | None = Field(default=None, max_length=64)
    decided_by: str = Field(min_length=1, max_length=_SHORT)
    rationale: str | None = Field(default=None, max_length=_LONG)
    details: dict[str, Any] | None = None


class DecisionOut(BaseModel):
    """One stored decision."""

    id: str
    run_id: str
    item_index: int
    strategy: str
    winner_response_id: str | None = None
    decided_by: str | None = None
    rationale: str | None = None
    details: dict[str, Any] | None = None
    created_at: datetime | None = None


class DecisionPage(BaseModel):
    """A page of decisions, oldest first."""

    decisions: list[DecisionOut]
    next_cursor: str | None = None


# --- models and statistics -----------------------------------------------------


class ModelOut(BaseModel):
    """A model a run may name; never carries a key or a header."""

    name: str
    spec: str
    provider: str | None = None
    source: ModelSource = "alias"
    credentials: str | None = Field(
        default=None, description="ok, missing or malformed (no key is ever shown)."
    )


class ModelSummary(BaseModel):
    """Per-model figures of one run."""

    model: str
    responses: int
    failed: int
    mean_latency_s: float | None = None
    p95_latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    thumbs_up: int = 0
    thumbs_down: int = 0
    mean_rating: float | None = None
    ratings: int = 0


class WinRate(BaseModel):
    """A model's record over the votes of a run (ties count half)."""

    model: str
    wins: int
    losses: int
    ties: int
    games: int
    score: float
    win_rate: float | None = None
    ci_low: float | None = Field(default=None, description="Wilson 95% interval.")
    ci_high: float | None = None


class StatisticsOut(BaseModel):
    """A run's statistics from its responses, feedback and decisions."""

    run_id: str
    models: list[ModelSummary]
    win_rates: list[WinRate]
    decided_items: int
    votes: int = Field(
        description="Pairwise votes behind the win rates: one per pair of models "
        "for each decision, plus each blind A/B vote."
    )
    feedback_win_rates: list[WinRate] = Field(
        default_factory=list,
        description="Win rates from feedback: per item, each pair of models "
        "compared on their answers' mean rating (or, without ratings, mean thumb).",
    )
    feedback_votes: int = 0
