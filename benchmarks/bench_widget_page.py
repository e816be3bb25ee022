"""Page-side cost of the comparison widget in headless Chromium, against raw innerHTML.

Target (issue 5): the first page of a 200 items x 4 models table drawn in under
1.5 s after the output appears (this measures the widget's own share: building and
laying out the DOM from the state, without JupyterLab), and streaming updates cheap
enough that 400 streams at 20 patches a second leave the page idle most of the time.

Figures:
- ``first page``: ``render()`` of the 800-answer state, page size 25, forced layout;
- reference: the same 100 cells as one HTML string assigned with ``innerHTML``;
- ``patch``: applying one patch that appends text to 400 streaming cells (100 of
  them on screen), against the 50 ms between two patches.

Chromium runs headless with every network flag from RECIPES.md (the one list in
``tests/browser/_lab.py``, shared with the browser tests); the page is served
through Playwright routing, so nothing leaves the machine. Skipped without
Chromium. Run with ``python -m benchmarks.bench_widget_page``.
"""

from __future__ import annotations

import html
import json
import os
import statistics
from importlib import resources
from typing import Any

from benchmarks.bench_widget import ANSWER, ITEMS, stored_state
from maquina_nb.notebook.render import render_markdown
from tests.browser._lab import CHROMIUM, CHROMIUM_ARGS, serve_page

_INDEX = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/widget.css"></head><body><div id="out"></div>
<script type="module">
import widget from "/widget.js";
class Model {
  constructor(state) { this.state = state; this.handlers = {}; }
  get(key) { return this.state[key]; }
  set(key, value) { this.state[key] = value; this.emit(`change:${key}`); }
  on(name, fn) { (this.handlers[name] ||= []).push(fn); }
  off() {}
  send() {}
  emit(name, ...args) { for (const fn of this.handlers[name] || []) fn(...args); }
}
window.bench = {
  draw(state) {
    const out = document.getElementById("out");
    out.replaceChildren();
    const model = new Model(state);
    widget.initialize({ model });
    const t0 = performance.now();
    widget.render({ model, el: out });
    void document.body.offsetHeight;
    window.bench.model = model;
    return performance.now() - t0;
  },
  raw(markup) {
    const out = document.getElementById("out");
    out.replaceChildren();
    const t0 = performance.now();
    out.innerHTML = markup;
    void document.body.offsetHeight;
    return performance.now() - t0;
  },
  patch(content) {
    const t0 = performance.now();
    window.bench.model.emit("msg:custom", content, []);
    void document.body.offsetHeight;
    return performance.now() - t0;
  },
};
window.ready = true;
</script></body></html>"""


def _state() -> dict[str, Any]:
    state = stored_state()
    rendered = render_markdown(ANSWER)
    for key, text in state.unrendered(ITEMS):
        state.set_html(key, text, rendered)
    snapshot = state.snapshot()
    return {**snapshot, "page_size": 25, "rater": "bench", "stored": True}


def _raw_markup(state: dict[str, Any]) -> str:
    rows = []
    for item in state["items"][:25]:
        cells = [c for c in state["cells"].values() if c["item"] == item["index"]]
        tds = "".join(
            f"<td><span>{html.escape(c['status'])}</span><div>{c['html']}</div>"
            "<button>▲</button><button>▼</button>"
            + "".join(f"<button>{n}</button>" for n in range(1, 6))
            + "<button>Comment</button><button>★ Best</button></td>"
            for c in sorted(cells, key=lambda c: c["pos"])
        )
        rows.append(
            f"<tr><th>{item['index']}</th><td>{html.escape(item['prompt'])}</td>{tds}</tr>"
        )
    return f"<table>{''.join(rows)}</table>"


def _streaming_patch(round_: int) -> dict[str, Any]:
    appends = {}
    for item in range(100):
        for pos in range(4):
            start = round_ * 5
            appends[f"{item}-{pos}-0"] = [start, "tok. ", start + 5]
    return {
        "kind": "patch",
        "run": {"status": "running", "total": 800},
        "cells": {},
        "appends": appends,
    }


def main() -> None:
    if not os.path.exists(CHROMIUM):
        print(f"comparison widget page: skipped (no Chromium at {CHROMIUM})")
        return
    from playwright.sync_api import sync_playwright

    static = resources.files("maquina_nb.notebook") / "static"
    state = _state()
    streaming = json.loads(json.dumps(state))
    for cell in streaming["cells"].values():
        cell.update(status="streaming", html=None, text="", n=0)
    streaming["run"]["finished"] = False

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = serve_page(
                browser.new_page(viewport={"width": 1400, "height": 1000}),
                _INDEX,
                static,
                ("widget.js", "widget.css"),
                ready="window.ready === true",
            )

            draws = [
                page.evaluate("s => window.bench.draw(s)", state) for _ in range(7)
            ]
            markup = _raw_markup(state)
            raws = [page.evaluate("m => window.bench.raw(m)", markup) for _ in range(7)]
            page.evaluate("s => window.bench.draw(s)", streaming)
            patches = [
                page.evaluate("p => window.bench.patch(p)", _streaming_patch(r))
                for r in range(30)
            ]
        finally:
            browser.close()

    draw, raw, patch = (
        statistics.median(draws),
        statistics.median(raws),
        statistics.median(patches),
    )
    print(
        "comparison widget page, 200 items x 4 models, page size 25, headless Chromium"
    )
    print(
        f"  first page drawn        {draw:8.1f} ms   target < 1500 ms (widget's share)"
    )
    print(f"  raw innerHTML, same     {raw:8.1f} ms   (widget = {draw / raw:.1f}x raw)")
    print(
        f"  patch, 400 streams      {patch:8.1f} ms   ({100 * patch / 50:.0f}% of the 50 ms between patches)"
    )


if __name__ == "__main__":
    main()
