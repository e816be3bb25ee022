"""One cell of the comparison table: its JSON shape, status names and limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ANSWERED",
    "DEFAULT_DISPLAY_CAP",
    "ENDED",
    "ERROR_CAP",
    "MAX_NOTICES",
    "MAX_TURNS",
    "PROMPT_CAP",
    "Slot",
    "final_status",
    "new_cell",
    "prompt_of",
    "turns_of",
]

DEFAULT_DISPLAY_CAP = 20_000
"""Characters of one answer sent to the page; the rest stays in the database."""

ANSWERED = frozenset(
    {"done", "cached", "truncated", "empty", "tool_call_only", "content_filtered"}
)
ENDED = ANSWERED | {"failed", "skipped", "cancelled"}
PROMPT_CAP = 4_000
ERROR_CAP = 1_000
MAX_NOTICES = 5


def final_status(status: str, text: str | None, finish_reason: str | None) -> str:
    """Name what a finished response really is, for the badge and placeholder.

    A ``done`` answer without text is ``content_filtered``, ``tool_call_only`` or
    ``empty`` depending on why it stopped (C17); other statuses pass through.
    """
    if status != "done" or text:
        return status
    reason = (finish_reason or "").lower()
    if "filter" in reason or reason == "refusal":
        return "content_filtered"
    if "tool" in reason or reason == "function_call":
        return "tool_call_only"
    return "empty"


@dataclass(slots=True)
class Slot:
    """Kernel-side bookkeeping of one response (its whole text stays here)."""

    key: str
    item: int
    model: str
    sample: int
    chunks: list[str] = field(default_factory=list)
    length: int = 0
    shown: int = 0
    response_id: str | None = None


MAX_TURNS = 20
"""User turns of an item, and earlier assistant turns of an answer, kept for display."""


def prompt_of(item: Any) -> tuple[int | None, str]:
    """Return ``(item_index or None, prompt)`` of a prompt string or item mapping."""
    if isinstance(item, Mapping):
        index = item.get("item_index", item.get("index"))
        return (int(index) if index is not None else None), str(item.get("prompt", ""))
    return None, str(item)


def turns_of(item: Any) -> list[str]:
    """Return the user turns of an item: its ``turns``, else just its prompt."""
    turns = item.get("turns") if isinstance(item, Mapping) else None
    if isinstance(turns, (list, tuple)) and turns:
        return [str(turn)[:PROMPT_CAP] for turn in turns[:MAX_TURNS]]
    return [prompt_of(item)[1][:PROMPT_CAP]]


def new_cell(
    item: int, position: int, sample: int, model: str | None
) -> dict[str, Any]:
    """Return a queued cell as the page sees it (``model`` is ``None`` when hidden)."""
    return {
        "item": item,
        "pos": position,
        "sample": sample,
        "model": model,
        "status": "queued",
        "text": "",
        "n": 0,
        "html": None,
        "length": 0,
        "capped": False,
        "finish_reason": None,
        "error_kind": None,
        "error_message": None,
        "latency_s": None,
        "ttft_s": None,
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "turns": [],
        "stored": False,
        "feedback": {"thumbs": 0, "rating": None, "comment": ""},
    }
