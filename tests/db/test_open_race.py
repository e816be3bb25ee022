"""Many pairs of processes opening the same brand-new SQLite file at once (C19)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.db import _db_workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_fresh_file_opened_by_two_processes_at_once(tmp_path: Path) -> None:
    """Switching a new file to WAL races; no opener may see "database is locked"."""
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    outcomes = []
    with context.Pool(2) as pool:
        for attempt in range(30):
            barrier = manager.Barrier(2)
            url = f"sqlite:///{tmp_path / f'race-{attempt}.db'}"
            pending = [
                pool.apply_async(_db_workers.open_fresh, (url, barrier))
                for _ in range(2)
            ]
            outcomes.append(sorted(str(job.get(timeout=120)) for job in pending))
    assert outcomes == [["False", "True"]] * 30
