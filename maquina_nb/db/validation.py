"""Value checks shared by the ORM ``@validates`` hooks and the bulk insert path.

Bulk inserts go through SQLAlchemy Core for speed and so skip the ORM hooks;
both paths call the same functions here, so a bad value is rejected the same way
whichever path writes it. Every failure is an
:class:`~maquina_nb.errors.InvalidFieldError` naming the field and the value.

Some values are cleaned rather than refused, the same way on both paths and
both backends (:func:`clean_text`, :func:`clean_json`), so that a model's odd
output never costs its row:

- a NUL character (U+0000, which PostgreSQL text and jsonb cannot hold) and
  a lone surrogate (which UTF-8 cannot encode) become U+FFFD;
- a non-finite float (``inf``, ``-inf``, ``nan``) inside a JSON value becomes
  ``null`` (JSON has no such numbers; SQLite would store invalid JSON and
  PostgreSQL refuses them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, MutableMapping
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
    "clean_json",
    "clean_row",
    "clean_text",
    "dumps_storable",
    "json_needs_cleaning",
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


# --- cleaning -------------------------------------------------------------------


def _unstorable(value: str) -> bool:
    # memchr and an ASCII check first: a UTF-8 encode only for non-ASCII text.
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def clean_text(value: str) -> str:
    """Return ``value`` with NUL and lone surrogates as U+FFFD (the same object if clean)."""
    if not _unstorable(value):
        return value
    if not value.isascii():
        # A surrogate pair left by a JSON decoder becomes its character; a
        # lone surrogate becomes U+FFFD.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "\ufffd")


def clean_json(value: Any) -> Any:
    """Return a JSON value with clean strings and non-finite floats as ``None``.

    Containers are copied only when something in them changes.
    """
    kind = type(value)
    if kind is str:
        return clean_text(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is dict or isinstance(value, Mapping):
        changed = False
        items = []
        for key, item in value.items():
            new_key = clean_text(key) if type(key) is str else key
            new_item = clean_json(item)
            changed = changed or new_key is not key or new_item is not item
            items.append((new_key, new_item))
        return dict(items) if changed else value
    if kind is list or kind is tuple or isinstance(value, (list, tuple)):
        cleaned = [clean_json(item) for item in value]
        if any(new is not old for new, old in zip(cleaned, value, strict=True)):
            return cleaned
        return value
    if isinstance(value, float):  # numpy floats and other float subclasses
        return float(value) if math.isfinite(value) else None
    return value


def json_needs_cleaning(text: str) -> bool:
    """Tell whether JSON text (ASCII-escaped) may hold NUL, a surrogate or inf/nan.

    May say yes for clean text (an emoji's escaped surrogate pair, the word
    NaN in a string); then :func:`clean_json` just finds nothing to change.
    """
    return "\\u0000" in text or "\\ud" in text or "Infinity" in text or "NaN" in text


def dumps_storable(value: Any, dumps: Callable[[Any], str] = json.dumps) -> str:
    """Encode ``value`` as JSON both databases take (the engines' serializer).

    Encodes once; only when the text shows a NUL, a surrogate or a non-finite
    number is the value cleaned (:func:`clean_json`) and encoded again.
    """
    text = dumps(value)
    if json_needs_cleaning(text):
        text = dumps(clean_json(value))
    return text


def clean_row(row: MutableMapping[str, Any], keys: Iterable[str] | None = None) -> None:
    """Clean the text values of ``row`` (only ``keys`` when given) in place.

    JSON values are cleaned when encoded (:func:`dumps_storable`).
    """
    for key in row if keys is None else keys:
        value = row[key]
        if type(value) is str and _unstorable(value):
            row[key] = clean_text(value)
