"""Multi-turn items (MT-Bench): the same conversation live, stored and static."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _html_checks import assert_inert, parse, visible_text
from _widget_harness import comms

from maquina_nb.db import Repository
from maquina_nb.notebook._state import ComparisonState
from maquina_nb.notebook.static_html import render_static_html, render_static_text
from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator import orchestrate
from maquina_nb.orchestrator.events import Event, ResponseFinished, RunStarted

pytestmark = pytest.mark.usefixtures(comms.__name__)

ITEMS = [
    {"turns": ["Name a fruit.", "Now spell it backwards."]},
    {"turns": ["Say hi.", "Say bye."]},
]


def _run(tmp_path: Path) -> tuple[Any, list[Event], Repository]:
    repo = Repository.from_url(f"sqlite:///{tmp_path / 'turns.db'}")
    events: list[Event] = []
    run = orchestrate(
        ITEMS, ["echo", "echo:other"], db=repo, name="turns", on_event=events.append
    )
    return run, events, repo


def _items(state: ComparisonState) -> list[dict[str, Any]]:
    return [
        {"index": item["index"], "prompt": item["prompt"], "turns": item["turns"]}
        for item in state.snapshot()["items"]
    ]


def test_run_started_carries_every_user_turn(tmp_path: Path) -> None:
    _, events, _ = _run(tmp_path)

    [started] = [event for event in events if isinstance(event, RunStarted)]
    assert [item["turns"] for item in started.items] == [
        ["Name a fruit.", "Now spell it backwards."],
        ["Say hi.", "Say bye."],
    ]
    finished = [event for event in events if isinstance(event, ResponseFinished)]
    assert {event.text for event in finished} == {"Now spell it backwards.", "Say bye."}
    assert {event.assistant_turns for event in finished} == {
        ("Name a fruit.",),
        ("Say hi.",),
    }


def test_live_and_stored_tables_show_the_same_conversation(tmp_path: Path) -> None:
    run, events, repo = _run(tmp_path)
    # The magic first shows the plan's items, then the run names them.
    live = ComparisonWidget(
        None, ["echo", "echo:other"], ["Name a fruit.\n\nNow spell it backwards.", "x"]
    )
    for event in events:
        live.handle_event(event)
    stored = ComparisonWidget.from_run(repo, run.id)

    expected = [
        {
            "index": 0,
            "prompt": "Name a fruit.",
            "turns": ["Name a fruit.", "Now spell it backwards."],
        },
        {"index": 1, "prompt": "Say hi.", "turns": ["Say hi.", "Say bye."]},
    ]
    assert _items(live.state) == expected
    assert _items(stored.state) == expected
    for widget in (live, stored):
        cells = widget.state.snapshot()["cells"]
        assert cells["0-0-0"]["turns"] == ["Name a fruit."]
        assert cells["1-1-0"]["turns"] == ["Say hi."]
        assert widget.state.full_text("0-0-0") == "Now spell it backwards."
    live.close()
    stored.close()


def test_static_table_lists_turns_and_folds_earlier_answers(tmp_path: Path) -> None:
    run, _, repo = _run(tmp_path)
    widget = ComparisonWidget.from_run(repo, run.id)

    data = widget._repr_mimebundle_()[0]
    html, text = data["text/html"], data["text/plain"]

    assert_inert(html)
    shown = visible_text(html)
    assert "Turn 1" in shown
    assert "Turn 2" in shown
    assert shown.index("Name a fruit.") < shown.index("Now spell it backwards.")
    tags = [tag for tag, _ in parse(html).tags]
    assert tags.count("details") == 4  # one folded earlier answer per cell
    assert "Turn 1 answer" in shown
    lines = text.splitlines()
    assert lines[1] == "[0] Turn 1: Name a fruit."
    assert lines[2] == "    Turn 2: Now spell it backwards."
    assert lines[3] == "    echo: [done] Now spell it backwards."
    widget.close()


def test_single_turn_items_show_no_turn_labels() -> None:
    state = ComparisonState("r", ["m"], ["Just one question?"])

    html = render_static_html(state.snapshot())

    assert "Turn 1" not in html
    assert render_static_text(state.snapshot()).splitlines()[1] == (
        "[0] Just one question?"
    )
