from __future__ import annotations

import pytest
from _html_checks import C32_PAYLOADS, assert_inert, parse, visible_text
from _widget_harness import comms

from maquina_nb.notebook._state import ComparisonState
from maquina_nb.notebook.static_html import render_static_html, render_static_text
from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator.events import ResponseFailed, ResponseFinished, RunFinished

pytestmark = pytest.mark.usefixtures(comms.__name__)


def _state(items: int, text: str = "**bold** answer") -> ComparisonState:
    state = ComparisonState(
        "r", ["m1", "m2"], [f"prompt {i}" for i in range(items)], name="static"
    )
    for i in range(items):
        state.apply(
            ResponseFinished(
                "r", i, "m1", 0, f"a{i}", text, "done", "stop", 3, 4, 0.5, 1.0, 0.2
            )
        )
        state.apply(
            ResponseFailed(
                "r", i, "m2", 0, f"b{i}", "failed", "timeout", "no reply in 30 s"
            )
        )
    state.apply(RunFinished("r", "partial", items, items, 2 * items, 0.5 * items, 3.0))
    return state


def test_static_html_without_rendering_shows_escaped_text() -> None:
    state = _state(1, C32_PAYLOADS[2] + " **x**")

    html = render_static_html(state.snapshot())

    assert_inert(html)
    assert C32_PAYLOADS[2] + " **x**" in visible_text(html)
    assert "[failed (timeout)]" in visible_text(html)
    assert "no reply in 30 s" in visible_text(html)


def test_widget_bundle_renders_markdown_for_the_static_table() -> None:
    widget = ComparisonWidget("r", ["m1", "m2"], [], _state=_state(3))

    html = widget._repr_mimebundle_()[0]["text/html"]

    assert html.count("<strong>bold</strong> answer") == 3
    assert_inert(html)
    widget.close()


def test_static_html_bounds_items_and_counts_the_rest() -> None:
    state = _state(60)
    for key, text in state.unrendered(60):
        state.set_html(key, text, "<p>x</p>")

    html = render_static_html(state.snapshot())

    assert html.count("<tr") == 51  # header row + 50 items
    assert "… and 10 more items" in html
    text = render_static_text(state.snapshot())
    assert (
        text.splitlines()[0]
        == "Comparison static: 60/120 done · 60 failed · $30.00 · 3.0 s · partial"
    )
    assert text.splitlines()[-1] == "… and 50 more items"


def test_static_html_cuts_very_long_answers() -> None:
    state = ComparisonState("r", ["m1"], ["p"])
    state.apply(ResponseFinished("r", 0, "m1", 0, "a", "word " * 5000, "done", "stop"))

    html = render_static_html(state.snapshot())

    assert len(html) < 5_000
    assert html.count("word") == 600


def _style(attrs: list[tuple[str, str | None]]) -> dict[str, str]:
    style = dict(attrs).get("style") or ""
    pairs = (part.split(":", 1) for part in style.split(";") if ":" in part)
    return {name.strip(): value.strip() for name, value in pairs}


def test_static_html_styles_every_cell_against_host_css() -> None:
    # JupyterLab and nbconvert style rendered tables (right-aligned, middle,
    # borderless); only styles on each cell itself win over those rules.
    html = render_static_html(_state(2).snapshot())

    cells = [attrs for tag, attrs in parse(html).tags if tag in ("td", "th")]
    assert len(cells) == 3 * 4  # header + 2 items, 4 columns each
    for attrs in cells:
        style = _style(attrs)
        assert style.get("text-align") == "left", attrs
        assert style.get("vertical-align") == "top", attrs
        assert "solid" in style.get("border", ""), attrs
        assert style.get("padding"), attrs
    assert_inert(html)


def test_static_text_gives_the_failure_kind_and_first_sentence() -> None:
    state = ComparisonState("r", ["gpt-4o"], ["p"], name="fails")
    state.apply(
        ResponseFailed(
            "r",
            0,
            "gpt-4o",
            0,
            "x",
            "failed",
            "maquina_error",
            "The provider refused key sk-abcdefghijklmnopqrstu. Retry later, or so.",
        )
    )

    text = render_static_text(state.snapshot())
    html = render_static_html(state.snapshot())

    line = text.splitlines()[-1]
    assert line.startswith(
        "    gpt-4o: [failed: maquina_error] The provider refused key"
    )
    assert line.endswith("."), line
    assert "Retry later" not in line
    assert "abcdefghijklmnopqrstu" not in text + html
    shown = visible_text(html)
    assert shown.count("The provider refused key") == 1
    assert "(Failed.)" not in shown
    assert "failed (maquina_error)" in shown


def test_static_text_of_a_failure_with_partial_text_keeps_both() -> None:
    state = ComparisonState("r", ["m"], ["p"])
    state.apply(
        ResponseFailed("r", 0, "m", 0, "x", "failed", "timeout", "No reply.", "Half")
    )

    line = render_static_text(state.snapshot()).splitlines()[-1]

    assert line == "    m: [failed: timeout] No reply. — Half"


def test_static_text_of_a_pending_table_names_no_empty_run() -> None:
    state = ComparisonState(None, ["m1", "m2"], ["a", "b", "c"])

    first = render_static_text(state.snapshot()).splitlines()[0]

    assert first.startswith("Comparison: 0/6 done"), first
    html = render_static_html(state.snapshot())
    assert visible_text(html).startswith("Comparison — 0/6 done"), html


def test_refused_run_shows_why_instead_of_rows() -> None:
    widget = ComparisonWidget(None, ["m1", "m2"], ["a", "b"], max_cost=1.0)

    widget.refuse("The estimate $2.50 is above max_cost $1.00; raise it.")
    data = widget._repr_mimebundle_()[0]

    assert data["text/plain"] == (
        "Comparison: refused: The estimate $2.50 is above max_cost $1.00; raise it."
    )
    shown = visible_text(data["text/html"])
    assert "refused: The estimate $2.50" in shown
    assert "Waiting to be sent" not in shown
    assert widget.state.snapshot()["run"]["finished"] is True
    widget.close()


def test_skipped_and_cancelled_answers_say_why_once() -> None:
    state = ComparisonState("r", ["m1", "m2"], ["p"])
    state.apply(
        ResponseFailed(
            "r",
            0,
            "m1",
            0,
            "x",
            "skipped",
            "budget",
            "Not sent: its worst-case cost $0.40 is more than the $0.10 left. Raise it.",
        )
    )
    state.apply(
        ResponseFailed(
            "r", 0, "m2", 0, "y", "cancelled", "cancelled", "Interrupted.", "Half a"
        )
    )

    lines = render_static_text(state.snapshot()).splitlines()
    shown = visible_text(render_static_html(state.snapshot()))

    assert lines[-2] == (
        "    m1: [skipped] Not sent: its worst-case cost $0.40 is more than the "
        "$0.10 left."
    )
    assert lines[-1] == "    m2: [cancelled] Interrupted. — Half a"
    assert shown.count("Not sent: its worst-case cost") == 1
    assert "(Skipped: the run's budget was reached first.)" not in shown
    assert shown.count("Interrupted.") == 1
