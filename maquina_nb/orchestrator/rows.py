"""Response rows: what is stored for each planned request, whatever happened.

Every row carries the ``model_responses`` columns of docs/INTERNALS.md (the
timestamps are filled by the database). Statuses come from the completion's
normalized finish reason:

==============  ==================
finish reason   status
==============  ==================
stop            done
length          truncated
empty           empty
tool_calls      tool_call_only
content_filter  content_filtered
error           failed
cancelled       cancelled
==============  ==================

A raised error gives ``failed`` with ``error_kind`` from the exception
(``ProviderError.kind``: auth, rate_limit, timeout, connection, response …;
``missing_key``, ``template`` or ``configuration`` for a ``ConfigurationError``;
``maquina_error`` only for other maquina errors) and a
redacted one-sentence message. A reused answer gives ``cached``, costs 0 and
names the response it came from in ``cached_from_id``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from maquina_nb._money import usd
from maquina_nb._redact import redact
from maquina_nb.errors import (
    ConfigurationError,
    MaquinaError,
    MissingKeyError,
    ProviderError,
    ReplayMissError,
    TemplateError,
)

if TYPE_CHECKING:
    from maquina_nb.orchestrator.plan import PlannedRequest
    from maquina_nb.providers.base import Completion

__all__ = [
    "FINISH_STATUS",
    "cached_row",
    "completion_row",
    "error_message",
    "error_row",
    "unsent_row",
]

FINISH_STATUS: dict[str, str] = {
    "stop": "done",
    "length": "truncated",
    "empty": "empty",
    "tool_calls": "tool_call_only",
    "content_filter": "content_filtered",
    "error": "failed",
    "cancelled": "cancelled",
}

_MAX_MESSAGE = 400


def _new_id() -> str:
    from maquina_nb.db.ids import new_id

    return new_id()


def _base(run_id: str, planned: PlannedRequest) -> dict[str, Any]:
    return {
        "id": _new_id(),
        "run_id": run_id,
        "item_index": planned.item_index,
        "sample_index": planned.sample_index,
        "model_spec": planned.model_spec,
        "provider": planned.model.provider,
        "model_id": planned.model.model,
        "request_parameters": planned.request.parameters(),
        "messages": [m.to_dict() for m in planned.request.messages],
        "variables": planned.variables,
        "text": None,
        "status": "failed",
        "finish_reason": None,
        "raw_finish_reason": None,
        "error_kind": None,
        "error_message": None,
        "tool_calls": None,
        "input_tokens": None,
        "output_tokens": None,
        "cached_tokens": None,
        "cost_usd": None,
        "cost_is_estimate": False,
        "latency_s": None,
        "ttft_s": None,
        "cache_key": planned.cache_key,
        "cached_from_id": None,
    }


def completion_row(
    run_id: str,
    planned: PlannedRequest,
    completion: Completion,
    messages: list[dict[str, str]],
    *,
    started: float,
) -> dict[str, Any]:
    """Return the row of an answered request."""
    row = _base(run_id, planned)
    status = FINISH_STATUS.get(completion.finish_reason, "done")
    row.update(
        model_id=completion.model_id or planned.model.model,
        messages=messages,
        text=completion.text,
        status=status,
        finish_reason=completion.finish_reason,
        raw_finish_reason=completion.raw_finish_reason,
        tool_calls=completion.tool_calls,
        input_tokens=completion.input_tokens,
        output_tokens=completion.output_tokens,
        cached_tokens=completion.cached_tokens,
        cost_usd=completion.cost_usd,
        cost_is_estimate=bool(completion.cost_is_estimate),
        latency_s=(
            completion.latency_s
            if completion.latency_s is not None
            else time.perf_counter() - started
        ),
        ttft_s=completion.ttft_s,
    )
    if status == "failed":
        row["error_kind"] = "provider_error"
        row["error_message"] = "The provider reported an error instead of an answer."
    return row


def error_kind(exc: BaseException) -> str:
    """Return the short machine-readable kind of ``exc``."""
    if isinstance(exc, ProviderError):
        return exc.kind
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    if isinstance(exc, MissingKeyError):
        return "missing_key"
    if isinstance(exc, TemplateError):
        return "template"
    if isinstance(exc, ConfigurationError):
        return "configuration"
    if isinstance(exc, ReplayMissError):
        return "replay_miss"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, MaquinaError):
        return "maquina_error"
    return "exception"


def error_message(exc: BaseException) -> str:
    """Return a redacted, one-line message for ``exc`` (type name for foreign ones)."""
    text = " ".join(str(exc).split()) or "no details"
    if not isinstance(exc, MaquinaError):
        text = f"{type(exc).__name__}: {text}"
    text = redact(text)
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1].rstrip() + "…"
    return text


def error_row(
    run_id: str,
    planned: PlannedRequest,
    failure: BaseException | str,
    partial_text: str,
    *,
    started: float,
    message: str | None = None,
) -> dict[str, Any]:
    """Return the row of a request that failed, timed out or was cancelled.

    Args:
        run_id: the run the row belongs to.
        planned: the planned request.
        failure: the exception, or ``"cancelled"`` / ``"timeout"``.
        partial_text: the text streamed before the end (kept, flagged by status).
        started: ``time.perf_counter()`` when the request was sent.
        message: a message to store instead of the exception's.
    """
    row = _base(run_id, planned)
    row["text"] = partial_text or None
    row["latency_s"] = time.perf_counter() - started
    if failure == "cancelled":
        row.update(
            status="cancelled",
            finish_reason="cancelled",
            error_kind="cancelled",
            error_message=message
            or "Cancelled while the answer was in flight; the text received so far is kept.",
        )
    elif failure == "timeout":
        row.update(
            status="failed",
            finish_reason="error",
            error_kind="timeout",
            error_message=message or "No answer before the timeout.",
        )
    else:
        assert isinstance(failure, BaseException)
        row.update(
            status="failed",
            finish_reason="error",
            error_kind=error_kind(failure),
            error_message=message or error_message(failure),
        )
    return row


def unsent_row(
    run_id: str,
    planned: PlannedRequest,
    status: str,
    max_cost: float | None = None,
    *,
    message: str | None = None,
) -> dict[str, Any]:
    """Return the row of a request never sent: ``skipped`` (budget) or ``cancelled``.

    ``message`` replaces the default "spend reached max_cost" of a skipped row.
    """
    row = _base(run_id, planned)
    if status == "skipped":
        row.update(
            status="skipped",
            error_kind="budget",
            error_message=message
            or f"Not sent: spend reached max_cost={usd(max_cost or 0)}.",
        )
    else:
        row.update(
            status="cancelled",
            finish_reason="cancelled",
            error_kind="cancelled",
            error_message="Not sent: the run was cancelled first.",
        )
    return row


def cached_row(run_id: str, planned: PlannedRequest, hit: Any) -> dict[str, Any]:
    """Return the row reusing the stored response ``hit`` (costs 0)."""
    row = _base(run_id, planned)
    for name in (
        "provider",
        "model_id",
        "messages",
        "text",
        "finish_reason",
        "raw_finish_reason",
        "tool_calls",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "latency_s",
        "ttft_s",
    ):
        value = getattr(hit, name, None)
        if value is not None:
            row[name] = value
    row.update(
        status="cached", cost_usd=0.0, cost_is_estimate=False, cached_from_id=hit.id
    )
    return row
