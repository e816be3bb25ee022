"""pairwise.js in headless Chromium, wired to a real kernel-side PairwiseWidget.

A small stand-in for the anywidget model carries state updates to the page and
the page's custom messages back to the widget, whose comm records what it sends.
The page is served through Playwright routing from 127.0.0.1 (Chromium launched
with every flag RECIPES.md lists, in tests/browser/conftest.py), so nothing is
fetched from any network. Votes land in a real SQLite database.
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

from maquina_nb.analysis.pairing import BlindPair, PairOption
from maquina_nb.db import Repository
from maquina_nb.db.votes import votes_frame
from maquina_nb.notebook.pairwise import PairwiseWidget
from tests.browser._lab import serve_page

pytestmark = pytest.mark.browser

STATIC = resources.files("maquina_nb.notebook") / "static"
MODELS = ("replay:gpt-4", "replay:llama-13b")
PAYLOAD = (
    '<img src=x onerror="window.__pwned=1"> [click](javascript:window.__pwned=2) '
    "</td></tr></table><script>window.__pwned=3</script>"
)

_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="stylesheet" href="/pairwise.css"></head>
<body><div id="out"></div>
<script type="module">
import view from "/pairwise.js";
class Model {
  constructor(state) { this.state = state; this.handlers = {}; this.sent = []; }
  get(key) { return this.state[key]; }
  on(name, fn) { (this.handlers[name] ||= []).push(fn); }
  off(name, fn) { this.handlers[name] = (this.handlers[name] || []).filter((h) => h !== fn); }
  send(content) { this.sent.push(JSON.parse(JSON.stringify(content))); }
}
window.pw = {
  start(state) {
    window.pw.model = new Model(state);
    view.render({ model: window.pw.model, el: document.getElementById("out") });
  },
  update(state) {
    const model = window.pw.model;
    Object.assign(model.state, state);
    for (const key of Object.keys(state)) {
      for (const fn of model.handlers[`change:${key}`] || []) fn();
    }
  },
  drain() { const sent = window.pw.model.sent; window.pw.model.sent = []; return sent; },
};
window.pwReady = true;
</script></body></html>
"""


class Wire(BaseComm):
    """A comm that keeps the state updates the widget sends."""

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
        if msg_type == "comm_msg" and data and data.get("method") == "update":
            with self.lock:
                self.out.append(json.loads(json.dumps(data["state"])))

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            out, self.out = self.out, []
            return out


@pytest.fixture
def tab(page: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(
        comm, "create_comm", lambda *args, **kwargs: Wire(*args, **kwargs)
    )
    return serve_page(
        page,
        _INDEX,
        STATIC,
        ("pairwise.js", "pairwise.css"),
        ready="window.pwReady === true",
    )


def _start(tab: Any, widget: PairwiseWidget) -> None:
    state = {k: v for k, v in widget.get_state().items() if not k.startswith("_")}
    tab.evaluate("state => window.pw.start(state)", state)
    widget.comm.take()


def _pump(tab: Any, widget: PairwiseWidget, timeout: float = 5.0) -> None:
    """Relay page → kernel messages and kernel → page updates until both are quiet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = tab.evaluate("() => window.pw.drain()")
        for content in sent:
            widget._handle_custom_msg(content, [])
        updates = widget.comm.take()
        for state in updates:
            tab.evaluate("state => window.pw.update(state)", state)
        if not sent and not updates:
            return
        time.sleep(0.02)


@pytest.fixture
def repository(tmp_path: Any) -> Repository:
    return Repository.from_url(f"sqlite:///{tmp_path}/page.db")


def _pairs(repository: Repository) -> tuple[str, list[BlindPair]]:
    texts = [(PAYLOAD, "**Paris** is the capital."), ("Four.", "It is 4.")]
    run_id = repository.add_run(
        name="page", template="{{ q }}", system_prompt=None, models=list(MODELS),
        parameters={}, tags=[], item_count=2, samples=1,
    )  # fmt: skip
    rows = [
        {
            "run_id": run_id,
            "item_index": i,
            "sample_index": 0,
            "model_spec": m,
            "text": t,
            "status": "done",
        }
        for i, pair in enumerate(texts)
        for m, t in zip(MODELS, pair, strict=True)
    ]
    ids = repository.add_responses(rows)
    pairs = [
        BlindPair(
            run_id,
            i,
            f"Question {i}?",
            PairOption(ids[2 * i], MODELS[0], texts[i][0]),
            PairOption(ids[2 * i + 1], MODELS[1], texts[i][1]),
        )
        for i in range(2)
    ]
    return run_id, pairs


def test_page_votes_blind_then_reveals(tab: Any, repository: Repository) -> None:
    run_id, pairs = _pairs(repository)
    widget = PairwiseWidget(pairs, repository=repository, rater="ada", shuffle=False)
    _start(tab, widget)

    # First pair: anonymous, rendered inert, labelled controls.
    root = tab.locator(".mqp-root")
    assert root.locator(".mqp-progress").inner_text() == "Pair 1 of 2"
    assert all(model not in root.inner_text() for model in MODELS)
    assert root.locator(".mqp-answer").nth(1).locator("strong").inner_text() == "Paris"
    assert root.locator(".mqp-answer img, .mqp-answer script").count() == 0
    assert root.get_by_role("group", name="Which answer is better?").count() == 1

    # A click, and then a key press, each store one vote and move on.
    root.get_by_role("button", name="Right is better").click()
    _pump(tab, widget)
    assert root.locator(".mqp-progress").inner_text() == "Pair 2 of 2"
    root.focus()
    tab.keyboard.press("1")
    _pump(tab, widget)

    # After the last pair the models are revealed.
    summary = root.locator("table.mqp-summary")
    assert summary.locator("tr").count() == 3
    assert summary.locator("tr").nth(1).inner_text().split("\t") == [
        "0",
        MODELS[0],
        MODELS[1],
        "right better",
    ]
    assert summary.locator("tr").nth(2).inner_text().split("\t") == [
        "1",
        MODELS[0],
        MODELS[1],
        "left better",
    ]

    votes = votes_frame(repository, run_id)
    assert list(votes["winner"]) == ["model_b", "model_a"]
    assert set(votes["rater"]) == {"ada"}
    assert tab.evaluate("() => window.__pwned") is None
    assert tab.page_errors == []


def test_page_double_click_stores_one_vote(tab: Any, repository: Repository) -> None:
    run_id, pairs = _pairs(repository)
    widget = PairwiseWidget(pairs, repository=repository, shuffle=False)
    _start(tab, widget)

    button = tab.get_by_role("button", name="Tie")
    button.click()
    # The page is busy until the kernel answers; a second vote for the same
    # position would be stale and ignored by the kernel anyway.
    tab.evaluate(
        "() => window.pw.model.send({type: 'vote', winner: 'left', position: 0})"
    )
    _pump(tab, widget)

    assert list(votes_frame(repository, run_id)["winner"]) == ["tie"]
    assert tab.locator(".mqp-progress").inner_text() == "Pair 2 of 2"
    assert tab.page_errors == []


def test_page_undo_takes_back_the_last_vote(tab: Any, repository: Repository) -> None:
    run_id, pairs = _pairs(repository)
    widget = PairwiseWidget(pairs, repository=repository, shuffle=False)
    _start(tab, widget)
    root = tab.locator(".mqp-root")
    assert root.get_by_role("button", name="Undo").count() == 0  # nothing to undo

    root.get_by_role("button", name="Left is better").click()
    _pump(tab, widget)
    assert len(votes_frame(repository, run_id)) == 1
    root.get_by_role("button", name="Undo").click()
    _pump(tab, widget)

    assert root.locator(".mqp-progress").inner_text() == "Pair 1 of 2"
    assert votes_frame(repository, run_id).empty
    root.focus()
    tab.keyboard.press("3")
    _pump(tab, widget)
    tab.keyboard.press("u")
    _pump(tab, widget)
    assert root.locator(".mqp-progress").inner_text() == "Pair 1 of 2"
    assert votes_frame(repository, run_id).empty
    assert tab.page_errors == []
