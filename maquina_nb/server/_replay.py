"""Turn stored rows back into the events a live run would have sent.

A client watching a run that is not live in this server process gets the same
event shapes as a live one: ``run_started``, one ``response_finished`` or
``response_failed`` per stored response, then ``run_finished``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FAILED_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "item_entry",
    "response_event",
    "run_finished_event",
    "run_started_event",
]

#: Response statuses reported as ``response_failed``; the rest finished.
FAILED_STATUSES = frozenset({"failed", "skipped", "cancelled"})
#: Run statuses after which nothing more is written.
TERMINAL_RUN_STATUSES = frozenset({"complete", "partial", "failed", "cancelled"})


def _prompt_of(messages: Any) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return str(message.get("content", ""))
    return ""


def response_event(row: Any) -> dict[str, Any]:
    """Return the final event of a stored response."""
    common = {
        "run_id": row.run_id,
        "item_index": row.item_index,
        "model": row.model_spec,
        "sample_index": row.sample_index,
        "response_id": row.id,
        "status": row.status,
    }
    if row.status in FAILED_STATUSES:
        return {
            "type": "response_failed",
            **common,
            "error_kind": row.error_kind or row.status,
            "error_message": row.error_message or "",
            "partial_text": row.text or "",
        }
    return {
        "type": "response_finished",
        **common,
        "text": row.text or "",
        "finish_reason": row.finish_reason or "",
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": row.cost_usd,
        "latency_s": row.latency_s,
        "ttft_s": row.ttft_s,
    }


def item_entry(item_index: int, messages: Any, variables: Any) -> dict[str, Any]:
    """Return one entry of ``run_started.items`` from a stored response's columns."""
    return {
        "item_index": item_index,
        "prompt": _prompt_of(messages),
        "variables": variables or {},
    }


def run_started_event(run: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a ``run_started`` event rebuilt from a run row and its items."""
    models = list(run.models or [])
    item_count = run.item_count if run.item_count is not None else len(items)
    samples = run.samples or 1
    return {
        "type": "run_started",
        "run_id": run.id,
        "name": run.name,
        "models": models,
        "items": items,
        "samples": samples,
        "total": item_count * len(models) * samples,
        "estimated_cost_usd": getattr(run, "estimated_cost_usd", None),
        "max_cost_usd": getattr(run, "max_cost_usd", None),
    }


def run_finished_event(run: Any, *, done: int, failed: int) -> dict[str, Any]:
    """Return a ``run_finished`` event from a finished run row and its counts."""
    started = getattr(run, "created_at", None)
    finished = getattr(run, "finished_at", None)
    duration = (finished - started).total_seconds() if started and finished else 0.0
    models = list(run.models or [])
    total = (run.item_count or 0) * len(models) * (run.samples or 1)
    return {
        "type": "run_finished",
        "run_id": run.id,
        "status": run.status,
        "done": done,
        "failed": failed,
        "total": total or done + failed,
        "cost_usd": getattr(run, "total_cost_usd", None),
        "duration_s": max(duration, 0.0),
        "extra": {"replayed": True},
    }
