"""The comparison table as static HTML and plain text, for places without a kernel.

nbconvert, GitHub and a notebook reopened without widget state cannot draw the
widget; they show the ``text/html`` or ``text/plain`` that rides along in its MIME
bundle instead. Both are built from a :meth:`ComparisonState.snapshot`: every
string is escaped except answers, which are Markdown rendered by
:func:`~maquina_nb.notebook.render.render_markdown` (raw HTML off, sanitized), so
no model text can run script here either (C32).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from maquina_nb._money import usd
from maquina_nb.notebook.render import escape_text

__all__ = [
    "MAX_STATIC_ITEMS",
    "PLACEHOLDERS",
    "render_static_html",
    "render_static_text",
    "status_label",
]

MAX_STATIC_ITEMS = 50
"""Items shown in the static table; the rest are counted in a closing line."""

# A sentence ends at . ! or ? before a space and a capital letter (so "e.g. x",
# "v1.2" or "api.openai.com" do not end one).
_SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z])")
_UNANSWERED = ("failed", "skipped", "cancelled")
_MAX_STATIC_HTML = 8_000
_MAX_STATIC_TEXT = 3_000

# JupyterLab and nbconvert's templates style every rendered table (cells right-
# aligned, vertically centred, without borders). A stylesheet cannot travel here
# (no <style> may reach an output, C32), so each cell carries its own style, which
# wins over any class or element rule of the host page.
_BORDER = "1px solid var(--jp-border-color2, #d0d0d0)"
_CELL_STYLE = (
    f"text-align: left; vertical-align: top; border: {_BORDER}; padding: 4px 6px"
)
_TD = f'<td style="{_CELL_STYLE}">'
_TH = f'<th style="{_CELL_STYLE}; background: var(--jp-layout-color2, #f3f3f3)">'
_PROMPT_TD = f'<td style="{_CELL_STYLE}; width: 22%">'
_INDEX_TD = f'<td style="{_CELL_STYLE}; width: 2.5em">'
_PRE = ' style="white-space: pre-wrap"'
_FOLDED = ' style="white-space: pre-wrap; max-height: 16em; overflow: auto"'
# nbconvert's classic template makes <summary> a block, hiding its disclosure marker.
_SUMMARY = ' style="display: list-item; cursor: pointer"'
# Long answers scroll inside their cell instead of stretching the row.
_SCROLL = '<div style="max-height: 30em; overflow: auto">'

PLACEHOLDERS = {
    "queued": "Waiting to be sent.",
    "streaming": "Waiting for the first words…",
    "empty": "(The model returned no text.)",
    "tool_call_only": "(The model answered with a tool call only, no text.)",
    "content_filtered": "(The provider's content filter stopped this answer.)",
    "skipped": "(Skipped: the run's budget was reached first.)",
    "cancelled": "(Cancelled before it finished.)",
    "failed": "(Failed.)",
}
"""What a cell without text says, by status (C17: never a blank cell)."""


def status_label(cell: Mapping[str, Any]) -> str:
    """Return the badge text for a cell, e.g. ``failed (rate_limit)``."""
    status = str(cell.get("status", ""))
    label = status.replace("_", " ")
    if status == "failed" and cell.get("error_kind"):
        label = f"failed ({cell['error_kind']})"
    return label


def _metrics(cell: Mapping[str, Any]) -> str:
    parts = []
    if cell.get("latency_s") is not None:
        parts.append(f"{cell['latency_s']:.2f} s")
    if cell.get("ttft_s") is not None:
        parts.append(f"TTFT {cell['ttft_s']:.2f} s")
    tokens_in, tokens_out = cell.get("input_tokens"), cell.get("output_tokens")
    if tokens_in is not None or tokens_out is not None:
        parts.append(f"{_or_dash(tokens_in)} → {_or_dash(tokens_out)} tok")
    if cell.get("cost_usd") is not None:
        parts.append(usd(cell["cost_usd"]))
    return " · ".join(parts)


def _or_dash(value: Any) -> str:
    return "?" if value is None else str(value)


def _feedback(cell: Mapping[str, Any]) -> str:
    feedback = cell.get("feedback") or {}
    parts = []
    if feedback.get("thumbs") == 1:
        parts.append("👍")
    elif feedback.get("thumbs") == -1:
        parts.append("👎")
    if feedback.get("rating"):
        parts.append(f"rated {feedback['rating']}/5")
    if feedback.get("comment"):
        parts.append(f"“{feedback['comment'][:200]}”")
    return " · ".join(parts)


def _explained(cell: Mapping[str, Any]) -> bool:
    """Whether a cell that got no full answer carries the message saying why."""
    return cell.get("status") in _UNANSWERED and bool(cell.get("error_message"))


def _answer_html(cell: Mapping[str, Any]) -> str:
    rendered = cell.get("html")
    if rendered and len(rendered) <= _MAX_STATIC_HTML:
        return str(rendered)

    # Too long to embed whole (or not rendered yet): show the start as plain text.
    if rendered:
        import nh3

        text = html.unescape(nh3.clean(rendered, tags=set()))
    else:
        text = str(cell.get("text") or "")
    if not text:
        if _explained(cell):
            return ""  # the message above says why; "(Failed.)" would repeat it
        placeholder = PLACEHOLDERS.get(str(cell.get("status")), "")
        return f"<em>{escape_text(placeholder)}</em>" if placeholder else ""
    more = len(text) > _MAX_STATIC_TEXT or cell.get("capped")
    shown = escape_text(text[:_MAX_STATIC_TEXT]) + (" …" if more else "")
    return f'<div style="white-space: pre-wrap">{shown}</div>'


def _turns(item: Mapping[str, Any]) -> list[str]:
    return list(item.get("turns") or [item.get("prompt", "")])


def _prompt_html(item: Mapping[str, Any]) -> str:
    """Return the prompt cell: the prompt, or each user turn under its number."""
    turns = _turns(item)
    if len(turns) == 1:
        return f"<div{_PRE}>{escape_text(turns[0][:_MAX_STATIC_TEXT])}</div>"
    return "".join(
        f"<div><strong>Turn {number}</strong></div>"
        f"<div{_PRE}>{escape_text(turn[:_MAX_STATIC_TEXT])}</div>"
        for number, turn in enumerate(turns, start=1)
    )


def _earlier_turns_html(cell: Mapping[str, Any]) -> str:
    """Return the answers to earlier turns, each folded under "Turn N answer"."""
    turns = cell.get("turns") or []
    if not turns:
        return ""
    folded = "".join(
        f"<details><summary{_SUMMARY}>Turn {number} answer</summary>"
        f"<div{_FOLDED}>{escape_text(_cut(str(turn)))}</div></details>"
        for number, turn in enumerate(turns, start=1)
    )
    return f"{folded}<div><small>Turn {len(turns) + 1} answer</small></div>"


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_STATIC_TEXT else text[:_MAX_STATIC_TEXT] + " …"


def _cell_html(cell: Mapping[str, Any], best: bool) -> str:
    lines = [f"<strong>[{escape_text(status_label(cell))}]</strong>"]
    if cell.get("model"):
        lines.append(f" <code>{escape_text(cell['model'])}</code>")
    if best:
        lines.append(" ★ best")
    metrics = _metrics(cell)
    if metrics:
        lines.append(f"<br><small>{escape_text(metrics)}</small>")
    if _explained(cell):
        lines.append(f"<br><small>{escape_text(cell['error_message'])}</small>")
    lines.append(_earlier_turns_html(cell))
    lines.append(f"{_SCROLL}{_answer_html(cell)}</div>")
    feedback = _feedback(cell)
    if feedback:
        lines.append(f"<small>{escape_text(feedback)}</small>")
    return "".join(lines)


def _summary(run: Mapping[str, Any]) -> str:
    parts = [f"{run.get('done', 0)}/{run.get('total', 0)} done"]
    if run.get("failed"):
        parts.append(f"{run['failed']} failed")
    spend = usd(run.get("cost_usd") or 0)
    if run.get("max_cost_usd") is not None:
        spend += f" of {usd(run['max_cost_usd'])} budget"
    parts.append(spend)
    parts.append(f"{run.get('elapsed_s') or 0:.1f} s")
    parts.append(str(run.get("status", "")))
    return " · ".join(parts)


def _title(run: Mapping[str, Any]) -> str:
    """Name the table as the widget does: its name, its run id, or "Comparison"."""
    if run.get("name"):
        return str(run["name"])
    return f"Run {run['run_id']}" if run.get("run_id") else "Comparison"


def _rows(snapshot: Mapping[str, Any]) -> dict[int, dict[int, list[Mapping[str, Any]]]]:
    rows: dict[int, dict[int, list[Mapping[str, Any]]]] = {}
    for key, cell in snapshot["cells"].items():
        rows.setdefault(cell["item"], {}).setdefault(cell["pos"], []).append(
            {**cell, "key": key}
        )
    return rows


def render_static_html(snapshot: Mapping[str, Any]) -> str:
    """Return the run as one sanitized HTML table (items as rows, models as columns).

    Args:
        snapshot: A :meth:`ComparisonState.snapshot`.
    """
    run = snapshot["run"]
    columns = run.get("columns") or []
    decisions = run.get("decisions") or {}
    rows = _rows(snapshot)
    title = escape_text(_title(run))

    if run.get("status") == "refused":
        return (
            f'<div class="maquina-static"><p><strong>{title}</strong> — refused: '
            f"{escape_text(run.get('refusal') or '')}</p></div>"
        )

    out = [
        '<div class="maquina-static">',
        f"<p><strong>{title}</strong> — {escape_text(_summary(run))}</p>",
        '<table style="border-collapse: collapse; table-layout: auto; width: 100%">',
        f"<thead><tr>{_TH}#</th>{_TH}Prompt</th>",
        *(f"{_TH}{escape_text(column)}</th>" for column in columns),
        "</tr></thead><tbody>",
    ]
    for item in snapshot["items"][:MAX_STATIC_ITEMS]:
        index = item["index"]
        out.append(f"<tr>{_INDEX_TD}{index}</td>")
        out.append(f"{_PROMPT_TD}{_SCROLL}{_prompt_html(item)}</div></td>")
        for position in range(len(columns)):
            cells = sorted(
                rows.get(index, {}).get(position, []), key=lambda cell: cell["sample"]
            )
            body = "<hr>".join(
                _cell_html(cell, decisions.get(str(index)) == cell["key"])
                for cell in cells
            )
            out.append(f"{_TD}{body}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")

    hidden = len(snapshot["items"]) - MAX_STATIC_ITEMS
    if hidden > 0:
        out.append(
            f"<p>… and {hidden} more items; use <code>run.to_pandas()</code> for all of them.</p>"
        )
    out.append("</div>")
    return "".join(out)


def render_static_text(snapshot: Mapping[str, Any], *, max_items: int = 10) -> str:
    """Return a short plain-text summary of the run and its first answers."""
    run = snapshot["run"]
    rows = _rows(snapshot)
    columns = run.get("columns") or []
    named = run.get("name") or run.get("run_id")
    label = f"Comparison{f' {named}' if named else ''}"
    if run.get("status") == "refused":
        return f"{label}: refused: {_one_line(run.get('refusal') or '', 300)}"
    lines = [f"{label}: {_summary(run)}"]
    for item in snapshot["items"][:max_items]:
        turns = _turns(item)
        if len(turns) == 1:
            lines.append(f"[{item['index']}] {_one_line(turns[0], 70)}")
        else:
            lines.append(f"[{item['index']}] Turn 1: {_one_line(turns[0], 70)}")
            lines.extend(
                f"    Turn {number}: {_one_line(turn, 70)}"
                for number, turn in enumerate(turns[1:], start=2)
            )
        for position, column in enumerate(columns):
            for cell in sorted(
                rows.get(item["index"], {}).get(position, []), key=lambda c: c["sample"]
            ):
                answer = cell.get("text") or ""
                if not answer and cell.get("html"):
                    import nh3

                    answer = html.unescape(nh3.clean(str(cell["html"]), tags=set()))
                label = cell.get("model") or column
                lines.append(f"    {label}: {_text_of_cell(cell, answer)}")
    hidden = len(snapshot["items"]) - max_items
    if hidden > 0:
        lines.append(f"… and {hidden} more items")
    return "\n".join(lines)


def _text_of_cell(cell: Mapping[str, Any], answer: str) -> str:
    """Return one cell as ``[status] answer``; a failure leads with why it failed."""
    status = cell.get("status")
    if status not in _UNANSWERED:
        return f"[{status_label(cell)}] {_one_line(answer, 60)}".rstrip()
    label = (
        f"failed: {cell.get('error_kind') or 'error'}" if status == "failed" else status
    )
    reason = _one_line(first_sentence(str(cell.get("error_message") or "")), 120)
    line = f"[{label}] {reason}".rstrip()
    if answer:
        line += f" — {_one_line(answer, 60)}"
    return line


def first_sentence(text: str) -> str:
    """Return the first sentence of an error message (all of it if it has one)."""
    flat = " ".join(text.split())
    match = _SENTENCE_END.search(flat)
    return flat[: match.end()] if match else flat


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
