"""Events a run emits while it works, for the widget, the server and logs.

Each event is a small frozen dataclass with a ``type`` tag and ``to_dict()`` for
JSON transport. A response is addressed by ``(item_index, model, sample_index)``
inside its run; ``response_id`` is set once the row exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "Event",
    "ResponseFailed",
    "ResponseFinished",
    "ResponseStarted",
    "RunFinished",
    "RunStarted",
    "TextDelta",
]

ResponseStatus = Literal[
    "queued",
    "streaming",
    "done",
    "failed",
    "cached",
    "truncated",
    "skipped",
    "cancelled",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every run event."""

    run_id: str

    @property
    def type(self) -> str:
        """The event's tag, e.g. ``response_finished``."""
        return _TYPES[type(self)]

    def to_dict(self) -> dict[str, Any]:
        """Return the event as a JSON-ready dict with its ``type``."""
        data = asdict(self)
        data["type"] = self.type
        return data


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run has been planned and starts sending requests."""

    name: str | None
    models: tuple[str, ...]
    """Model specs, in column order."""
    items: tuple[dict[str, Any], ...]
    """Per item: ``item_index``, ``prompt`` (the first user turn, rendered),
    ``turns`` (every user turn, rendered, in order: two or more for MT-Bench
    items and conversations) and ``variables``."""
    samples: int
    total: int
    """Number of responses the run will produce (items x models x samples)."""
    estimated_cost_usd: float | None
    max_cost_usd: float | None


@dataclass(frozen=True, slots=True)
class ResponseStarted(Event):
    """A request has been sent to a model."""

    item_index: int
    model: str
    sample_index: int


@dataclass(frozen=True, slots=True)
class TextDelta(Event):
    """New text for one response.

    Deltas may be coalesced; concatenated in order they give the full text.
    With ``reset`` the response's text so far is void (its stream was retried
    from the start) and ``text`` replaces it.
    """

    item_index: int
    model: str
    sample_index: int
    text: str
    reset: bool = False


@dataclass(frozen=True, slots=True)
class ResponseFinished(Event):
    """A response is complete (answered, cached or truncated) and stored."""

    item_index: int
    model: str
    sample_index: int
    response_id: str | None
    text: str
    status: ResponseStatus
    """``done``, ``cached`` or ``truncated``."""
    finish_reason: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    assistant_turns: tuple[str, ...] = ()
    """The assistant turns of the conversation before ``text``, in order: the
    model's own answers to the earlier turns of an MT-Bench item (or those the
    prompt gave); empty for a single-turn item."""


@dataclass(frozen=True, slots=True)
class ResponseFailed(Event):
    """A response failed, was skipped (budget) or was cancelled; stored as such."""

    item_index: int
    model: str
    sample_index: int
    response_id: str | None
    status: ResponseStatus
    """``failed``, ``skipped`` or ``cancelled``."""
    error_kind: str
    error_message: str
    partial_text: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """The run ended; ``status`` is complete, partial, failed or cancelled."""

    status: str
    done: int
    failed: int
    total: int
    cost_usd: float | None
    duration_s: float
    extra: dict[str, Any] = field(default_factory=dict)


_TYPES: dict[type[Event], str] = {
    RunStarted: "run_started",
    ResponseStarted: "response_started",
    TextDelta: "text_delta",
    ResponseFinished: "response_finished",
    ResponseFailed: "response_failed",
    RunFinished: "run_finished",
}
