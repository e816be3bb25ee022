"""A :class:`~maquina_nb.orchestrator.Run` shown as a cell's result.

The orchestrator sits below the notebook layer and knows nothing of HTML, so a
``Run`` has only a text ``repr``. Loading the extension registers an IPython
``text/html`` formatter for ``Run`` (by name, so nothing is imported until a run
is displayed): ``maquina_nb.orchestrate(...)`` at the end of a cell then shows the
same static comparison table a saved ``%%orchestrate`` cell shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger

if TYPE_CHECKING:
    from maquina_nb.orchestrator.run import Run

__all__ = ["register", "run_html", "run_snapshot", "unregister"]

logger = get_logger(__name__)

_MODULE = "maquina_nb.orchestrator.run"
_NAME = "Run"


def run_snapshot(run: Run) -> dict[str, Any]:
    """Return the comparison-table snapshot of a finished run (no database read)."""
    from maquina_nb.notebook._state import ComparisonState
    from maquina_nb.notebook._stored import _event_of
    from maquina_nb.orchestrator import events as ev

    items = [
        {
            "item_index": item.item_index,
            "prompt": "\n\n".join(
                m["content"] for m in item.messages if m["role"] == "user"
            ),
        }
        for item in run.items
    ]
    samples = max((r.sample_index for r in run.responses), default=0) + 1
    state = ComparisonState(
        run.id,
        run.models,
        items,
        samples=samples,
        max_cost=run.max_cost_usd,
        estimated_cost=run.estimated_cost_usd,
        name=run.name or None,
    )
    for response in run.responses:
        state.apply(_event_of(run.id, response))
    totals = run.totals
    state.apply(
        ev.RunFinished(
            run_id=run.id,
            status=run.status,
            done=totals.answered,
            failed=totals.failed,
            total=totals.responses,
            cost_usd=totals.cost_usd,
            duration_s=run.duration_s,
        )
    )
    return state.snapshot()


def run_html(run: Run) -> str | None:
    """Return the run's static comparison table (``None`` if it cannot be drawn)."""
    from maquina_nb.notebook.static_html import render_static_html

    try:
        return render_static_html(run_snapshot(run))
    except Exception:
        # A display must never break the cell; the text repr still shows.
        logger.exception("could not draw run %s as a table", run.id)
        return None


def register(ipython: Any) -> None:
    """Show runs as their comparison table in ``ipython``'s outputs."""
    formatter = ipython.display_formatter.formatters["text/html"]
    formatter.for_type_by_name(_MODULE, _NAME, run_html)


def unregister(ipython: Any) -> None:
    """Undo :func:`register`."""
    formatter = ipython.display_formatter.formatters["text/html"]
    formatter.pop(f"{_MODULE}.{_NAME}", None)
