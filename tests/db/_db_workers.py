"""Functions run in child processes by test_concurrency.py (spawned, not forked)."""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any


def _rows(run_id: str, start: int, count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run_id,
            "item_index": start + i,
            "model_spec": f"echo:{tag}",
            "status": "done",
            "text": f"{tag} answer {start + i}",
            "variables": {"i": start + i},
            "output_tokens": 7,
        }
        for i in range(count)
    ]


def write_responses(
    url: str, tag: str, barrier: Any, total: int, batch: int
) -> dict[str, Any]:
    """Open the database at the same instant as a sibling, then write ``total`` rows."""
    from maquina_nb.db import Repository, make_engine
    from maquina_nb.db.migrate import ensure_schema

    try:
        barrier.wait(timeout=60)
        engine = make_engine(url)
        applied = ensure_schema(engine)
        engine.dispose()

        repo = Repository.from_url(url)
        run_id = repo.add_run(
            name=tag, template="t", system_prompt=None, models=[f"echo:{tag}"],
            parameters={}, tags=[tag], item_count=total, samples=1,
        )  # fmt: skip
        barrier.wait(timeout=60)
        for start in range(0, total, batch):
            ids = repo.add_responses(_rows(run_id, start, batch, tag))
            repo.record_feedback(ids[0], "thumbs", 1, rater=tag)
        repo.update_run(run_id, status="complete")
        return {"applied": applied, "error": None, "pid": os.getpid()}
    except Exception:  # the parent asserts on it
        return {"applied": None, "error": traceback.format_exc(), "pid": os.getpid()}


def write_until_killed(url: str, progress: str, batch: int, batches: int) -> None:
    """Write batches forever (bounded), noting each committed batch in ``progress``."""
    from maquina_nb.db import Repository

    repo = Repository.from_url(url)
    run_id = repo.add_run(
        name="victim", template="t", system_prompt=None, models=["echo:k"],
        parameters={}, tags=[], item_count=0, samples=1,
    )  # fmt: skip
    path = Path(progress)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"run {run_id}\n")
        handle.flush()
        for number in range(batches):
            repo.add_responses(_rows(run_id, number * batch, batch, "k"))
            handle.write(f"committed {(number + 1) * batch}\n")
            handle.flush()
            os.fsync(handle.fileno())


def open_fresh(url: str, barrier: Any) -> bool | str:
    """Open (and migrate) ``url`` at the same instant as a sibling; say if it migrated."""
    from maquina_nb.db import make_engine
    from maquina_nb.db.migrate import ensure_schema

    try:
        barrier.wait(timeout=60)
        engine = make_engine(url)
        try:
            return ensure_schema(engine)
        finally:
            engine.dispose()
    except Exception:  # the parent asserts on it
        return traceback.format_exc()
