"""Read a stored run back as the events and clicks that built it, for redisplay."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maquina_nb.orchestrator.events import (
    Event,
    ResponseFailed,
    ResponseFinished,
    RunFinished,
)

if TYPE_CHECKING:
    from maquina_nb.db import Repository

__all__ = ["StoredRun", "load_stored_run"]

_ENDED_RUN = ("complete", "partial", "failed", "cancelled")
_NOT_ANSWERED = ("failed", "skipped", "cancelled")


@dataclass
class StoredRun:
    """What the comparison table needs from a stored run."""

    name: str | None
    status: str
    models: list[str]
    items: list[dict[str, Any]]
    samples: int
    max_cost_usd: float | None
    estimated_cost_usd: float | None
    events: list[Event] = field(default_factory=list)
    feedback: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per response id, the latest ``thumbs``, ``rating`` and ``comment``."""
    decisions: dict[int, str] = field(default_factory=dict)
    """Per item, the response id of the latest human pick."""


def _number(value: Any) -> Any:
    # JSON has no NaN; a stored NaN shows as unknown.
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping)
        )
    return ""


def _turns(messages: Any, role: str) -> list[str]:
    """Return the texts of every ``role`` turn of a stored message list, in order."""
    return [
        _text(message.get("content"))
        for message in messages or []
        if isinstance(message, Mapping) and message.get("role") == role
    ]


def _event_of(run_id: str, response: Any) -> Event:
    common = {
        "run_id": run_id,
        "item_index": response.item_index,
        "model": response.model_spec,
        "sample_index": response.sample_index,
        "response_id": response.id,
    }
    if response.status in _NOT_ANSWERED:
        return ResponseFailed(
            **common,
            status=response.status,
            error_kind=response.error_kind or response.status,
            error_message=response.error_message or "",
            partial_text=response.text or "",
        )
    return ResponseFinished(
        **common,
        text=response.text or "",
        status=response.status,
        finish_reason=response.finish_reason or "",
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        cost_usd=_number(response.cost_usd),
        latency_s=_number(response.latency_s),
        ttft_s=_number(response.ttft_s),
        assistant_turns=tuple(_turns(response.messages, "assistant")),
    )


def load_stored_run(repository: Repository, run_id: str) -> StoredRun:
    """Load a run, its responses, feedback and human picks from ``repository``.

    Raises:
        StoreError: There is no run ``run_id``.
    """
    run = repository.get_run(run_id)
    responses = sorted(
        run.responses, key=lambda r: (r.item_index, r.sample_index, r.id)
    )

    # An item's user turns, as RunStarted gives them: the longest conversation
    # stored for it (a response that failed on turn 1 holds turn 1 only).
    turns: dict[int, list[str]] = {}
    for response in responses:
        asked = _turns(response.messages, "user")
        if len(asked) > len(turns.get(response.item_index, [])):
            turns[response.item_index] = asked
    count = max([run.item_count, *(index + 1 for index in turns)])
    stored = StoredRun(
        name=run.name or None,
        status=run.status,
        models=list(run.models),
        items=[
            {
                "item_index": i,
                "prompt": (turns.get(i) or [""])[0],
                "turns": turns.get(i) or [""],
            }
            for i in range(count)
        ],
        samples=run.samples,
        max_cost_usd=run.max_cost_usd,
        estimated_cost_usd=run.estimated_cost_usd,
    )

    # Responses replay as finish events; the run's end closes the table.
    stored.events = [_event_of(run_id, response) for response in responses]
    if run.status in _ENDED_RUN:
        failed = sum(r.status == "failed" for r in responses)
        duration = 0.0
        if run.finished_at is not None and run.created_at is not None:
            duration = max((run.finished_at - run.created_at).total_seconds(), 0.0)
        stored.events.append(
            RunFinished(
                run_id=run_id,
                status=run.status,
                done=sum(r.status not in _NOT_ANSWERED for r in responses),
                failed=failed,
                total=len(stored.models) * count * run.samples,
                cost_usd=_number(run.total_cost_usd),
                duration_s=duration,
            )
        )

    # Ids are time-ordered, so the last one per kind is the latest click.
    for response in responses:
        for feedback in sorted(response.feedback, key=lambda f: f.id):
            values = stored.feedback.setdefault(response.id, {})
            if feedback.kind == "thumbs":
                values["thumbs"] = feedback.value
            elif feedback.kind == "rating":
                values["rating"] = feedback.value
            elif feedback.kind == "comment":
                values["comment"] = feedback.comment or ""
    for decision in sorted(run.decisions, key=lambda d: d.id):
        if decision.strategy == "human" and decision.winner_response_id:
            stored.decisions[decision.item_index] = decision.winner_response_id
    return stored
