"""The SQLite migration lock: exclusive, bounded, and gone once released."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from maquina_nb.db import make_engine, migrate
from maquina_nb.db._lockfile import LockTimeout, removable_file_lock
from maquina_nb.errors import StoreError


def test_lock_excludes_others_and_removes_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many takers at once never overlap, though each deletes the file it held."""
    fcntl = pytest.importorskip("fcntl")
    flock = fcntl.flock

    def slow_flock(descriptor: int, operation: int) -> None:
        # Widen the window between opening the file and locking it, where a
        # holder deleting the file could let two takers in at once.
        if operation & fcntl.LOCK_EX:
            time.sleep(0.001)
        flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", slow_flock)
    lock = tmp_path / "x.migrate-lock"
    counter = tmp_path / "counter"
    counter.write_text("0")
    inside = 0
    overlaps: list[int] = []
    guard = threading.Lock()

    def take(times: int) -> None:
        nonlocal inside
        for _ in range(times):
            with removable_file_lock(lock, timeout=30):
                with guard:
                    inside += 1
                    if inside > 1:
                        overlaps.append(inside)
                value = int(counter.read_text())
                time.sleep(0.0005)
                counter.write_text(str(value + 1))
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=take, args=(25,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert overlaps == []
    assert counter.read_text() == "150"
    assert not lock.exists()


def test_lock_times_out_while_held(tmp_path: Path) -> None:
    lock = tmp_path / "y.migrate-lock"
    with removable_file_lock(lock, timeout=5):
        assert lock.exists()
        with pytest.raises(LockTimeout), removable_file_lock(lock, timeout=0.2):
            pass  # pragma: no cover - never entered
    assert not lock.exists()


def test_migration_waits_for_the_lock_and_says_so_on_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "z.db"
    engine = make_engine(f"sqlite:///{path}")
    monkeypatch.setattr(migrate, "MIGRATION_LOCK_TIMEOUT_S", 0.2)
    try:
        held = removable_file_lock(tmp_path / "z.db.migrate-lock", timeout=5)
        waiting = pytest.raises(StoreError, match=r"for another process to finish")
        with held, waiting:
            migrate.upgrade(engine)
        assert migrate.upgrade(engine)[0] is None
    finally:
        engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir() if "lock" in p.name) == []
