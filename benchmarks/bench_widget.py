"""Kernel-side cost of the comparison widget, against an ipywidgets grid built in the same run.

Target (issue 5): a widget for 200 items x 4 models (800 responses) constructs in
under 100 ms on the kernel side. Both sides send their opening state through a comm
that JSON-encodes every message, as the kernel would on the wire.

Figures:
- ``live``: the table at the start of a run (every cell queued);
- ``stored``: the table of a finished run, 800 answers of about 1 kB of Markdown
  each (answers are rendered to HTML after construction, by the flusher);
- ``render all``: how long that background rendering of 800 answers takes;
- reference: the same table as ipywidgets (one HTML per answer, thumbs buttons and a
  rating dropdown per cell, in a GridBox) — the design DESIGN.md decision 3 rules out;
- ``400 streams``: messages sent per second while 400 streams each deliver a
  delta every 20 ms, and how many deltas that is.

Run with ``python -m benchmarks.bench_widget`` (or ``python -m benchmarks``).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import comm
import ipywidgets
from comm.base_comm import BaseComm

from maquina_nb.notebook._state import ComparisonState
from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator.events import ResponseFinished, RunFinished, TextDelta

ITEMS = 200
MODELS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5", "ollama:llama3.1", "echo")
ANSWER = (
    "Here is **an answer** with `code` and a list:\n\n- one\n- two\n\n"
    "```python\nprint('hello')\n```\n\n" + "Some plain prose to fill the answer. " * 22
)


class WireComm(BaseComm):
    """A comm that JSON-encodes each message, as the kernel does, and drops it."""

    sent = 0

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        json.dumps(data, allow_nan=False)
        WireComm.sent += 1


def _median_ms(build: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        widget = build()
        times.append((time.perf_counter() - start) * 1000)
        widget.close()
    return statistics.median(times)


def _live() -> ComparisonWidget:
    return ComparisonWidget("bench", MODELS, [f"Question {i}?" for i in range(ITEMS)])


def stored_state() -> ComparisonState:
    """A finished 200 x 4 run's state, answers unrendered (bench_widget_page too)."""
    state = ComparisonState("bench", MODELS, [f"Question {i}?" for i in range(ITEMS)])
    for item in range(ITEMS):
        for model in MODELS:
            state.apply(
                ResponseFinished(
                    "bench",
                    item,
                    model,
                    0,
                    f"{item}-{model}",
                    ANSWER,
                    "done",
                    "stop",
                    50,
                    200,
                    0.001,
                    2.0,
                    0.4,
                )
            )
    state.apply(RunFinished("bench", "complete", ITEMS * 4, 0, ITEMS * 4, 0.8, 60.0))
    return state


def _ipywidgets_grid() -> ipywidgets.GridBox:
    children: list[ipywidgets.Widget] = []
    for item in range(ITEMS):
        children.append(ipywidgets.HTML(f"<b>{item}</b> Question {item}?"))
        for _model in MODELS:
            cell = ipywidgets.VBox(
                [
                    ipywidgets.HTML(f"<p>{ANSWER}</p>"),
                    ipywidgets.HBox(
                        [
                            ipywidgets.Button(description="👍"),
                            ipywidgets.Button(description="👎"),
                            ipywidgets.Dropdown(options=["-", 1, 2, 3, 4, 5]),
                        ]
                    ),
                ]
            )
            children.append(cell)
    return ipywidgets.GridBox(
        children, layout=ipywidgets.Layout(grid_template_columns="repeat(5, auto)")
    )


def _close_all(widget: ipywidgets.Widget) -> None:
    ipywidgets.Widget.close_all()


def _streams(seconds: float) -> tuple[float, float]:
    widget = ComparisonWidget("bench", MODELS, [f"Question {i}?" for i in range(100)])
    before = widget.messages_sent
    deltas = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for item in range(100):
            for model in MODELS:
                widget.handle_event(TextDelta("bench", item, model, 0, "tok "))
                deltas += 1
        threading.Event().wait(0.02)
    elapsed = time.monotonic() - start
    sent = widget.messages_sent - before
    widget.close()
    return sent / elapsed, deltas / elapsed


def _from_run_ms(repeat: int) -> tuple[float, float]:
    import tempfile

    from maquina_nb.db import Repository

    with tempfile.TemporaryDirectory() as folder:
        repo = Repository.from_url(f"sqlite:///{folder}/bench.db")
        run_id = repo.add_run(
            name="bench",
            template="{{ q }}",
            system_prompt=None,
            models=list(MODELS),
            parameters={},
            tags=[],
            item_count=ITEMS,
            samples=1,
            status="complete",
        )
        repo.add_responses(
            [
                {
                    "run_id": run_id,
                    "item_index": item,
                    "model_spec": model,
                    "text": ANSWER,
                    "status": "done",
                    "messages": [{"role": "user", "content": f"Question {item}?"}],
                    "cost_usd": 0.001,
                }
                for item in range(ITEMS)
                for model in MODELS
            ]
        )
        load = []
        for _ in range(repeat):
            start = time.perf_counter()
            repo.get_run(run_id)
            load.append((time.perf_counter() - start) * 1000)
        total = _median_ms(lambda: ComparisonWidget.from_run(repo, run_id), repeat)
        repo.engine.dispose()
    return total, statistics.median(load)


def main() -> None:
    original = comm.create_comm
    comm.create_comm = lambda *args, **kwargs: WireComm(*args, **kwargs)
    try:
        live_ms = _median_ms(_live, 7)

        states = [stored_state() for _ in range(5)]
        stored_ms = _median_ms(
            lambda: ComparisonWidget("bench", MODELS, [], _state=states.pop()), 5
        )

        widget = ComparisonWidget("bench", MODELS, [], _state=stored_state())
        start = time.perf_counter()
        while widget.state.has_work and time.perf_counter() - start < 60:
            time.sleep(0.01)
        render_s = time.perf_counter() - start
        widget.close()

        start = time.perf_counter()
        grid = _ipywidgets_grid()
        grid_ms = (time.perf_counter() - start) * 1000
        _close_all(grid)

        per_second, deltas = _streams(2.0)
        from_run_ms, get_run_ms = _from_run_ms(5)
    finally:
        comm.create_comm = original

    print(
        f"comparison widget, {ITEMS} items x {len(MODELS)} models, kernel-side construction"
    )
    print(f"  live (all queued)      {live_ms:8.1f} ms   target < 100 ms")
    print(f"  stored (800 answers)   {stored_ms:8.1f} ms   target < 100 ms")
    print(
        f"  from_run (SQLite)      {from_run_ms:8.1f} ms   of which Repository.get_run {get_run_ms:.1f} ms"
    )
    print(
        f"  render all 800 answers {render_s * 1000:8.1f} ms   (after construction, in the flusher thread)"
    )
    print(
        f"  ipywidgets grid        {grid_ms:8.1f} ms   ({grid_ms / stored_ms:.0f}x the stored widget)"
    )
    print(
        f"400 streams: {per_second:.1f} messages/s sent for {deltas:,.0f} deltas/s (ceiling {ComparisonWidget.UPDATES_PER_SECOND:.0f}/s)"
    )


if __name__ == "__main__":
    main()
