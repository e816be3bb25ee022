"""The comparison widget in a real kernel: updates from the background loop thread (C05, C08).

Two cells, one after the other, each display a widget and return at once while the
background loop feeds it text deltas (as the orchestrator's ``on_event`` does). From
the iopub messages alone, as JupyterLab sees them, each widget's page copy must end
with the full texts, at no more than 20 messages a second, with nothing on stderr.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebook"))
from _widget_harness import Page

pytestmark = pytest.mark.kernel

CELL = """
import threading
from maquina_nb._loop import get_loop
from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator.events import TextDelta, ResponseFinished, RunFinished

MODELS = ["echo:a", "echo:b", "echo:c", "echo:d"]
w{n} = ComparisonWidget("run-{n}", MODELS, [f"q{{i}}" for i in range(5)])
display(w{n})
loop = get_loop()

def feed(widget=w{n}, run="run-{n}"):
    for r in range(40):
        for i in range(5):
            for m in MODELS:
                loop.call_soon_threadsafe(widget.handle_event, TextDelta(run, i, m, 0, f"{{run}}/{{i}}/{{m}}/{{r}}; "))
        threading.Event().wait(0.01)
    for i in range(5):
        for m in MODELS:
            text = "".join(f"{{run}}/{{i}}/{{m}}/{{r}}; " for r in range(40))
            loop.call_soon_threadsafe(widget.handle_event, ResponseFinished(run, i, m, 0, None, text, "done", "stop"))
    loop.call_soon_threadsafe(widget.handle_event, RunFinished(run, "complete", 20, 0, 20, None, 1.0))

threading.Thread(target=feed, daemon=True).start()
"""


def _expected(n: int) -> dict[tuple[int, str], str]:
    run = f"run-{n}"
    return {
        (i, m): "".join(f"{run}/{i}/{m}/{r}; " for r in range(40))
        for i in range(5)
        for m in ("echo:a", "echo:b", "echo:c", "echo:d")
    }


def test_widget_updates_from_the_loop_thread_reach_iopub_in_order(
    start_kernel: Any,
) -> None:
    kernel = start_kernel()

    first = kernel.run(CELL.format(n=1), timeout=120)
    kernel.drain(quiet=1.5, limit=30)
    second = kernel.run(CELL.format(n=2), timeout=120)
    kernel.drain(quiet=1.5, limit=30)

    assert first.error is None
    assert second.error is None
    assert "Traceback" not in first.stderr + second.stderr

    # Each widget's display lands in its own cell.
    for cell in (first, second):
        views = [
            o
            for o in cell.outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert len(views) == 1
        assert "text/html" in views[0]["data"]

    # Rebuild each page from the comm messages on iopub.
    opened: dict[str, Page] = {}
    times: dict[str, list[float]] = defaultdict(list)
    for msg in kernel.iopub:
        content = msg["content"]
        if (
            msg["msg_type"] == "comm_open"
            and content["data"]["state"].get("_model_name") == "AnyModel"
        ):
            opened[content["comm_id"]] = Page(content["data"]["state"])
        elif msg["msg_type"] == "comm_msg" and content["comm_id"] in opened:
            opened[content["comm_id"]].receive(content["data"])
            times[content["comm_id"]].append(msg["header"]["date"].timestamp())
    assert len(opened) == 2

    for page in opened.values():
        n = int(page.run["run_id"].split("-")[1])
        texts = {
            (c["item"], page.run["columns"][c["pos"]]): c for c in page.cells.values()
        }
        for key, text in _expected(n).items():
            assert texts[key]["html"] == f"<p>{text.strip()}</p>\n"
        assert page.run["finished"] is True
        assert page.gaps == 0

    for stamps in times.values():
        for first_index, start in enumerate(stamps):
            assert sum(1 for t in stamps[first_index:] if t - start < 1.0) <= 20
