"""Value checks shared by the ORM ``@validates`` hooks and the bulk insert path.

Bulk inserts go through SQLAlchemy Core for speed and so skip the ORM hooks;
both paths call the same functions here, so a bad value is rejected the same way
whichever path writes it. Every failure is an
:class:`~maquina_nb.errors.InvalidFieldError` naming the field and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from maquina_nb.errors import InvalidFieldError

__all__ = [
    "DECISION_STRATEGIES",
    "FEEDBACK_KINDS",
    "RESPONSE_STATUSES",
    "RUN_STATUSES",
    "check_choice",
    "check_feedback",
    "check_non_empty",
    "check_non_negative",
    "check_response_row",
]

#: ``orchestration_contexts.status``.
RUN_STATUSES: tuple[str, ...] = (
    "pending",
    "running",
    "complete",
    "partial",
    "failed",
    "cancelled",
)
#: ``model_responses.status``.
RESPONSE_STATUSES: tuple[str, ...] = (
    "done",
    "cached",
    "truncated",
    "empty",
    "tool_call_only",
    "content_filtered",
    "failed",
    "skipped",
    "cancelled",
)
#: ``human_feedback.kind``.
FEEDBACK_KINDS: tuple[str, ...] = ("thumbs", "rating", "comment", "label")
#: ``decisions.strategy``.
DECISION_STRATEGIES: tuple[str, ...] = (
    "human",
    "judge",
    "fastest",
    "cheapest",
    "expected",
    "majority",
)

_T = TypeVar("_T")

_RESPONSE_STATUS_SET = frozenset(RESPONSE_STATUSES)
_RESPONSE_INDEX_FIELDS = ("item_index", "sample_index")
_RESPONSE_INT_FIELDS = ("input_tokens", "output_tokens", "cached_tokens")
_RESPONSE_NUMBER_FIELDS = ("cost_usd", "latency_s", "ttft_s")


def check_choice(model: str, field: str, value: _T, choices: tuple[str, ...]) -> _T:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise InvalidFieldError(model, field, value, f"one of {', '.join(choices)}")
    return value


def check_non_empty(model: str, field: str, value: _T) -> _T:
    """Return ``value`` if it is a string with something other than spaces."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidFieldError(model, field, value, "a non-empty string")
    return value


def check_non_negative(
    model: str, field: str, value: _T, *, integer: bool = False, required: bool = False
) -> _T:
    """Return ``value`` if it is a finite number >= 0 (or ``None`` when optional)."""
    if value is None and not required:
        return value
    if integer:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        expected = "a non-negative integer" + ("" if required else " or None")
    else:
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        )
        expected = "a non-negative number" + ("" if required else " or None")
    if not ok:
        raise InvalidFieldError(model, field, value, expected)
    return value


def check_feedback(
    kind: str | None, value: Any, comment: str | None = None, label: str | None = None
) -> None:
    """Check that a feedback ``value`` (and text) fits its ``kind``."""
    if kind is not None:
        check_choice("HumanFeedback", "kind", kind, FEEDBACK_KINDS)
    if kind == "thumbs" and value not in (1, -1):
        raise InvalidFieldError("HumanFeedback", "value", value, "1 or -1 for thumbs")
    if kind == "rating" and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5
    ):
        raise InvalidFieldError(
            "HumanFeedback", "value", value, "an integer from 1 to 5 for a rating"
        )
    if kind == "comment" and comment is not None:
        check_non_empty("HumanFeedback", "comment", comment)
    if kind == "label" and label is not None:
        check_non_empty("HumanFeedback", "label", label)


def check_response_row(row: Mapping[str, Any]) -> None:
    """Check one ``model_responses`` row given as a plain mapping.

    Written for the bulk path: the common case costs a few type checks, and
    the detailed checkers run only to build the error for a bad value.
    """
    spec = row.get("model_spec")
    if type(spec) is not str or not spec.strip():
        check_non_empty("ModelResponse", "model_spec", spec)
    if row.get("status") not in _RESPONSE_STATUS_SET:
        check_choice("ModelResponse", "status", row.get("status"), RESPONSE_STATUSES)
    for field in _RESPONSE_INDEX_FIELDS:
        value = row.get(field)
        if type(value) is not int or value < 0:
            check_non_negative(
                "ModelResponse", field, value, integer=True, required=True
            )
    for field in _RESPONSE_INT_FIELDS:
        value = row.get(field)
        if value is not None and (type(value) is not int or value < 0):
            check_non_negative("ModelResponse", field, value, integer=True)
    for field in _RESPONSE_NUMBER_FIELDS:
        value = row.get(field)
        if value is not None and (
            type(value) not in (float, int) or not 0 <= value < math.inf
        ):
            check_non_negative("ModelResponse", field, value)
