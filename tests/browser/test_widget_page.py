"""widget.js in headless Chromium, wired to the real kernel-side ComparisonWidget.

No JupyterLab here: a small stand-in for the anywidget model carries state and
custom messages between the page and a ComparisonWidget whose comm records what it
sends (tests/browser/conftest.py launches Chromium with every flag RECIPES.md
lists). The page is served through Playwright routing, so nothing is fetched from
any network. The full JupyterLab round trip lives in the magics' browser tests.
"""

from __future__ import annotations

import json
import threading
import time
from importlib import resources
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator.events import (
    ResponseFailed,
    ResponseFinished,
    RunFinished,
    RunStarted,
    TextDelta,
)
from tests.browser._lab import serve_page

pytestmark = pytest.mark.browser

STATIC = resources.files("maquina_nb.notebook") / "static"
PAYLOADS = (
    '<img src=x onerror="window.__pwned=1">',
    "[click](javascript:window.__pwned=2)",
    "</td></tr></table><script>window.__pwned=3</script>",
)
MODELS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5")

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="/widget.css"></head>
<body><div id="out"></div>
<script type="module">
import widget from "/widget.js";
class Model {
  constructor(state) { this.state = state; this.handlers = {}; this.sent = []; }
  get(key) { return this.state[key]; }
  set(key, value) { this.state[key] = value; this.emit(`change:${key}`); }
  on(name, fn) { (this.handlers[name] ||= []).push(fn); }
  off(name, fn) { this.handlers[name] = (this.handlers[name] || []).filter((h) => h !== fn); }
  send(content) { this.sent.push(JSON.parse(JSON.stringify(content))); }
  emit(name, ...args) { for (const fn of this.handlers[name] || []) fn(...args); }
}
window.mq = {
  start(state, draw = true) {
    window.mq.model = new Model(state);
    widget.initialize({ model: window.mq.model });
    if (draw) window.mq.draw();
  },
  draw() {
    widget.render({ model: window.mq.model, el: document.getElementById("out") });
  },
  deliver(data) {
    const model = window.mq.model;
    if (data.method === "update") {
      for (const [key, value] of Object.entries(data.state)) { model.state[key] = value; model.emit(`change:${key}`); }
    } else if (data.method === "custom") {
      model.emit("msg:custom", data.content, []);
    }
  },
  drain() { const sent = window.mq.model.sent; window.mq.model.sent = []; return sent; },
};
window.mqReady = true;
</script></body></html>
"""


class Wire(BaseComm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.out: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        if msg_type == "comm_msg":
            with self.lock:
                self.out.append(json.loads(json.dumps(data)))

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            out, self.out = self.out, []
            return out


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        comm, "create_comm", lambda *args, **kwargs: Wire(*args, **kwargs)
    )


@pytest.fixture
def tab(page: Any) -> Any:
    return serve_page(
        page,
        _INDEX,
        STATIC,
        ("widget.js", "widget.css"),
        ready="window.mqReady === true",
    )


class Session:
    """Moves messages between a page and a ComparisonWidget until both are quiet."""

    def __init__(
        self, tab: Any, widget: ComparisonWidget, *, draw: bool = True
    ) -> None:
        self.tab, self.widget = tab, widget
        tab.evaluate(
            "([state, draw]) => window.mq.start(state, draw)",
            [widget.get_state(), draw],
        )
        widget.comm.take()

    def pump(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for content in self.tab.evaluate("() => window.mq.drain()"):
                self.widget._handle_msg(
                    {
                        "content": {"data": {"method": "custom", "content": content}},
                        "buffers": [],
                    }
                )
            out = self.widget.comm.take()
            for data in out:
                self.tab.evaluate("data => window.mq.deliver(data)", data)
            if not out and not self.widget.state.has_work:
                return
            time.sleep(0.02)


def _finish(
    widget: ComparisonWidget, run_id: str, texts: dict[tuple[int, str], str]
) -> None:
    for index, ((item, model), text) in enumerate(texts.items()):
        widget.handle_event(
            ResponseFinished(
                run_id,
                item,
                model,
                0,
                f"r{index}",
                text,
                "done",
                "stop",
                5,
                7,
                0.0012,
                1.25,
                0.3,
            )
        )


def test_page_renders_answers_without_running_model_script(
    wired: None, tab: Any
) -> None:
    widget = ComparisonWidget("run-1", MODELS, ["first", "second"])
    session = Session(tab, widget)
    _finish(
        widget,
        "run-1",
        {
            (0, MODELS[0]): PAYLOADS[0]
            + "\n\n**bold** and\n\n```python\nprint('<b>')\n```",
            (0, MODELS[1]): PAYLOADS[1],
            (1, MODELS[0]): PAYLOADS[2],
            (1, MODELS[1]): "\n\n".join(PAYLOADS),
        },
    )
    widget.handle_event(RunFinished("run-1", "complete", 4, 0, 4, 0.0048, 2.0))
    session.pump()

    cells = tab.locator(".mq-cell")
    assert cells.count() == 4
    first = tab.locator('[data-key="0-0-0"] .mq-answer')
    assert first.locator("strong").inner_text() == "bold"
    assert first.locator("pre code").inner_text().strip() == "print('<b>')"
    assert PAYLOADS[0] in first.inner_text()
    assert (
        tab.locator('[data-key="1-1-0"] .mq-answer')
        .inner_text()
        .count("window.__pwned")
        == 3
    )
    assert (
        tab.locator(
            ".mq-root script, .mq-root img, .mq-root a[href^='javascript']"
        ).count()
        == 0
    )

    # Both layouts and a redraw leave the payloads inert.
    tab.get_by_label("Layout").select_option("cards")
    tab.get_by_label("Layout").select_option("table")
    tab.wait_for_timeout(100)
    assert tab.evaluate("() => window.__pwned") is None
    assert tab.page_errors == []
    assert "1.25 s" in tab.locator('[data-key="0-0-0"] .mq-metrics').inner_text()
    assert tab.locator(".mq-stats").inner_text().startswith("4 / 4 done")
    widget.close()


def test_page_streams_text_and_round_trips_clicks(
    wired: None, tab: Any, tmp_path: Any
) -> None:
    from maquina_nb.db import Repository

    repo = Repository.from_url(f"sqlite:///{tmp_path / 'page.db'}")
    run_id = repo.add_run(
        name="page",
        template="{{ q }}",
        system_prompt=None,
        models=list(MODELS),
        parameters={},
        tags=[],
        item_count=1,
        samples=1,
    )
    [rid] = repo.add_responses(
        [
            {
                "run_id": run_id,
                "item_index": 0,
                "model_spec": MODELS[0],
                "text": "Hello world",
                "status": "done",
            }
        ]
    )
    widget = ComparisonWidget(
        run_id, MODELS, ["Say hello"], repository=repo, rater="ada"
    )
    session = Session(tab, widget)

    # Streamed text shows before the answer is complete.
    widget.handle_event(TextDelta(run_id, 0, MODELS[0], 0, "Hello "))
    session.pump()
    answer = tab.locator('[data-key="0-0-0"] .mq-answer')
    assert answer.inner_text() == "Hello "
    assert tab.locator('[data-key="0-0-0"] .mq-badge').inner_text() == "streaming"
    assert tab.get_by_role("button", name="Thumbs up").first.is_disabled()

    widget.handle_event(TextDelta(run_id, 0, MODELS[0], 0, "world"))
    widget.handle_event(
        ResponseFinished(run_id, 0, MODELS[0], 0, rid, "Hello world", "done", "stop")
    )
    session.pump()
    assert answer.inner_html() == "<p>Hello world</p>\n"

    # Keyboard: focus the thumbs-up button and press Enter; then rate 4 and pick it.
    up = tab.locator('[data-key="0-0-0"]').get_by_role("button", name="Thumbs up")
    up.focus()
    tab.keyboard.press("Enter")
    tab.locator('[data-key="0-0-0"]').get_by_role("button", name="Rate 4 of 5").click()
    tab.locator('[data-key="0-0-0"]').get_by_role(
        "button", name="Pick this answer as the best for its item"
    ).click()
    session.pump()

    assert up.get_attribute("aria-pressed") == "true"
    up.click()  # already on: nothing new is stored

    # A comment typed and saved with Ctrl+Enter.
    cell = tab.locator('[data-key="0-0-0"]')
    cell.get_by_role("button", name="Write a comment on this answer").click()
    cell.get_by_label("Comment on this answer (Ctrl+Enter saves)").fill(
        "clear and short"
    )
    tab.keyboard.press("Control+Enter")
    session.pump()
    assert (
        tab.locator('[data-key="0-0-0"]')
        .get_by_role("button", name="Rate 4 of 5")
        .get_attribute("aria-pressed")
        == "true"
    )
    feedback = repo.feedback_frame(run_id)
    rows = sorted(
        zip(
            feedback["kind"],
            feedback["value"].fillna(0),
            feedback["comment"].fillna(""),
            strict=True,
        )
    )
    assert rows == [
        ("comment", 0, "clear and short"),
        ("rating", 4, ""),
        ("thumbs", 1, ""),
    ]
    assert repo.decisions_frame(run_id)["decided_by"].tolist() == ["ada"]
    assert tab.locator(".mq-saving").count() == 0

    # A click that fails in the kernel shows up as an alert above the table.
    widget.handle_event(
        ResponseFailed(
            run_id, 0, MODELS[1], 0, None, "failed", "timeout", "no answer in 30 s"
        )
    )
    session.pump()
    tab.locator('[data-key="0-1-0"]').get_by_role("button", name="Thumbs down").click()
    session.pump()
    assert "not stored yet" in tab.get_by_role("alert").inner_text()
    assert (
        tab.locator('[data-key="0-1-0"] .mq-badge').inner_text() == "failed (timeout)"
    )
    # The reason shows once, without a "(Failed.)" placeholder repeating it.
    failed_text = tab.locator('[data-key="0-1-0"]').inner_text()
    assert failed_text.count("no answer in 30 s") == 1
    assert "(Failed.)" not in failed_text
    widget.close()


def test_page_paginates_filters_hides_models_and_shows_full_text(
    wired: None, tab: Any
) -> None:
    items = [f"prompt {i}" for i in range(30)]
    widget = ComparisonWidget(
        "run-3", MODELS, items, blind=True, page_size=25, display_cap=50
    )
    session = Session(tab, widget)
    widget.handle_event(
        RunStarted(
            "run-3",
            "blind",
            MODELS,
            tuple({"item_index": i, "prompt": p} for i, p in enumerate(items)),
            1,
            60,
            None,
            None,
        )
    )
    widget.handle_event(
        ResponseFinished("run-3", 27, MODELS[0], 0, "long", "x" * 500, "done", "stop")
    )
    widget.handle_event(
        ResponseFailed("run-3", 28, MODELS[1], 0, None, "failed", "auth", "bad key")
    )
    session.pump()

    assert (
        tab.locator(".mq-page-info").inner_text()
        == "Page 1 of 2 · items 1\u201325 of 30"
    )
    assert tab.locator("tbody tr").count() == 25
    assert tab.locator("thead th").all_inner_texts()[2:] == ["Response A", "Response B"]
    assert "gpt-4o" not in tab.locator(".mq-root").inner_text()
    assert tab.get_by_label("Filter by model").is_disabled()

    tab.get_by_role("button", name="Next page").click()
    assert tab.locator("tbody tr").count() == 5
    tab.get_by_label("Failures only").check()
    assert tab.locator("tbody tr").count() == 1
    tab.get_by_label("Failures only").uncheck()

    # The long answer is capped; the full text comes on request.
    tab.get_by_role("button", name="Next page").click()
    capped = tab.locator(".mq-capped:not([hidden])")
    assert capped.inner_text().startswith("Showing 50 of 500 characters.")
    show = tab.get_by_role("button", name="Show the full text of this answer")
    show.click()
    session.pump()
    assert tab.locator(".mq-full:not([hidden])").inner_text() == "x" * 500

    tab.get_by_role("button", name="Reveal which model wrote each answer").click()
    session.pump()
    assert "openai:gpt-4o" in tab.locator(".mq-root").inner_text()
    assert not tab.get_by_label("Filter by model").is_disabled()
    tab.get_by_label("Filter by model").select_option(MODELS[1])
    assert tab.locator("thead th").all_inner_texts()[2:] == [MODELS[1]]
    assert tab.page_errors == []
    widget.close()


def test_page_view_drawn_after_patches_starts_from_the_live_table(
    wired: None, tab: Any
) -> None:
    widget = ComparisonWidget("run-4", ["echo"], ["q"])
    session = Session(tab, widget, draw=False)

    # JupyterLab may draw an output only when it scrolls into view.
    widget.handle_event(TextDelta("run-4", 0, "echo", 0, "streamed before any view"))
    session.pump()
    tab.evaluate("() => window.mq.draw()")

    assert (
        tab.locator('[data-key="0-0-0"] .mq-answer').inner_text()
        == "streamed before any view"
    )
    assert tab.locator(".mq-stats").inner_text().startswith("0 / 1 done · 1 streaming")
    widget.close()


def test_page_shows_no_rows_before_the_run_starts_or_when_refused(
    wired: None, tab: Any
) -> None:
    widget = ComparisonWidget(None, MODELS, ["first", "second"], max_cost=1.0)
    session = Session(tab, widget)
    session.pump()

    # Until RunStarted names the run, the cache and budget checks are running.
    assert tab.locator(".mq-cell").count() == 0
    assert "Preparing the run" in tab.locator(".mq-body").inner_text()

    widget.handle_event(
        RunStarted(
            "run-9",
            None,
            MODELS,
            (
                {"item_index": 0, "prompt": "first"},
                {"item_index": 1, "prompt": "second"},
            ),
            1,
            4,
            0.5,
            1.0,
        )
    )
    session.pump()
    assert tab.locator(".mq-cell").count() == 4
    widget.close()

    # A run refused by its budget shows why, never its queued rows.
    refused = ComparisonWidget(None, MODELS, ["first", "second"], max_cost=1.0)
    session = Session(tab, refused)
    refused.refuse("The estimate $2.50 is above max_cost $1.00.")
    session.pump()
    assert tab.locator(".mq-cell").count() == 0
    assert tab.get_by_role("alert").inner_text() == (
        "The estimate $2.50 is above max_cost $1.00."
    )
    assert tab.page_errors == []
    refused.close()


def test_page_shows_each_turn_and_folds_earlier_answers(wired: None, tab: Any) -> None:
    widget = ComparisonWidget(None, MODELS[:1], ["x"])
    session = Session(tab, widget)
    widget.handle_event(
        RunStarted(
            "run-t",
            None,
            MODELS[:1],
            (
                {
                    "item_index": 0,
                    "prompt": "Name a fruit.",
                    "turns": ["Name a fruit.", "Spell it backwards."],
                },
            ),
            1,
            1,
            None,
            None,
        )
    )
    widget.handle_event(
        ResponseFinished(
            "run-t",
            0,
            MODELS[0],
            0,
            "r1",
            "elppa",
            "done",
            "stop",
            assistant_turns=("Apple.",),
        )
    )
    widget.handle_event(RunFinished("run-t", "complete", 1, 0, 1, 0.0, 1.0))
    session.pump()

    prompt = tab.locator("td.mq-prompt")
    assert prompt.locator(".mq-turn-label").all_inner_texts() == ["Turn 1", "Turn 2"]
    assert prompt.locator(".mq-turn").all_inner_texts() == [
        "Name a fruit.",
        "Spell it backwards.",
    ]
    cell = tab.locator('[data-key="0-0-0"]')
    assert cell.locator(".mq-answer").inner_text().strip() == "elppa"
    details = cell.locator("details")
    assert details.locator("summary").inner_text() == "Turn 1 answer"
    assert not details.locator(".mq-turn").is_visible()
    details.locator("summary").click()
    assert details.locator(".mq-turn").inner_text() == "Apple."
    assert tab.page_errors == []
    widget.close()


def test_page_says_once_why_an_answer_was_skipped(wired: None, tab: Any) -> None:
    widget = ComparisonWidget("run-s", MODELS[:1], ["p"])
    session = Session(tab, widget)
    widget.handle_event(
        ResponseFailed(
            "run-s",
            0,
            MODELS[0],
            0,
            "r1",
            "skipped",
            "budget",
            "Not sent: its worst-case cost is more than what is left.",
        )
    )
    session.pump()

    text = tab.locator('[data-key="0-0-0"]').inner_text()
    assert text.count("Not sent: its worst-case cost") == 1
    assert "(Skipped" not in text
    widget.close()
