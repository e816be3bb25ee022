"""An interrupt while a run is being created leaves no ``running`` run behind.

The run's row is inserted in a worker thread that a cancellation cannot stop.
These tests cancel at that point through real hooks: a SQLAlchemy event on the
run's INSERT (before the row exists) and the repository's own log record once
the row is committed (before the caller has its id).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from maquina_nb import _loop
from maquina_nb.db import Repository
from maquina_nb.orchestrator import MultiModelOrchestrator, orchestrate

from .conftest import ScriptedModel

_WAIT_S = 10.0
_NOT_STARTED = "The run was cancelled before it started; nothing was stored."


class _OnRecord(logging.Handler):
    """Calls ``action`` on each record whose message starts with ``prefix``."""

    def __init__(self, prefix: str, action: Callable[[], None]) -> None:
        super().__init__(logging.DEBUG)
        self.prefix = prefix
        self.action = action
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.getMessage().startswith(self.prefix):
            return
        try:
            self.action()
        except Exception as exc:
            # Kept for the test to report, not raised into the code that logs.
            self.errors.append(exc)


@pytest.fixture
def on_log() -> Iterator[Callable[[str, str, Callable[[], None]], None]]:
    """Attach ``_OnRecord`` handlers (at DEBUG) for the test, then remove them."""
    attached: list[tuple[logging.Logger, _OnRecord, int]] = []

    def attach(logger_name: str, prefix: str, action: Callable[[], None]) -> None:
        logger = logging.getLogger(logger_name)
        handler = _OnRecord(prefix, action)
        attached.append((logger, handler, logger.level))
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)

    yield attach
    for logger, handler, level in reversed(attached):
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [e for _, h, _ in attached for e in h.errors] == []


def _on_run_insert(engine: Engine, action: Callable[[], None]) -> None:
    """Call ``action`` just before the first run INSERT is sent to the database."""
    fired = threading.Event()

    def before(
        conn: Any, cursor: Any, statement: str, *args: Any, **kwargs: Any
    ) -> None:
        run_insert = (
            statement.lstrip().upper().startswith("INSERT INTO ORCHESTRATION_CONTEXTS")
        )
        if run_insert and not fired.is_set():
            fired.set()
            action()

    event.listen(engine, "before_cursor_execute", before)


@pytest.mark.parametrize("moment", ["before the insert", "after the commit"])
def test_cancelling_while_the_run_is_created_leaves_no_running_run(
    db_url: str,
    moment: str,
    on_log: Callable[[str, str, Callable[[], None]], None],
) -> None:
    repository = Repository.from_url(db_url)
    orchestrator = MultiModelOrchestrator([ScriptedModel("m")], db=repository)
    plan = orchestrator.plan("hello")
    finished = threading.Event()
    committed = threading.Event()
    reached = threading.Event()

    future: concurrent.futures.Future[Any] | None = None
    submitted = threading.Event()

    async def tracked() -> Any:
        try:
            return await orchestrator.execute(plan)
        finally:
            finished.set()

    def cancel_now() -> None:
        # Runs in the insert's worker thread: cancel the run, then wait until
        # the loop has handled the cancellation (its callbacks run in order).
        reached.set()
        assert submitted.wait(_WAIT_S)
        assert future is not None
        future.cancel()
        _loop.submit(asyncio.sleep(0)).result(timeout=_WAIT_S)

    if moment == "before the insert":
        _on_run_insert(repository.engine, cancel_now)
        on_log("maquina_nb.db.repository", "stored run", committed.set)
    else:

        def cancel_after_commit() -> None:
            committed.set()
            cancel_now()

        on_log("maquina_nb.db.repository", "stored run", cancel_after_commit)
    future = _loop.submit(tracked())
    submitted.set()

    assert finished.wait(_WAIT_S)
    assert committed.wait(_WAIT_S)
    assert reached.is_set()
    assert _run_statuses(repository) == []


def test_ctrl_c_while_the_run_is_created_says_so_and_stores_nothing(
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    on_log: Callable[[str, str, Callable[[], None]], None],
) -> None:
    # The insert is held until the interrupted call has returned, so the
    # cleanup outlasts the grace period; a short one keeps the test quick.
    monkeypatch.setattr(_loop, "_CANCEL_GRACE_S", 0.1)
    repository = Repository.from_url(db_url)
    release = threading.Event()
    deleted = threading.Event()

    def interrupt_and_hold() -> None:
        # A real SIGINT to the main thread, as Ctrl-C or a kernel interrupt sends.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        release.wait(_WAIT_S)

    _on_run_insert(repository.engine, interrupt_and_hold)
    on_log("maquina_nb.db.repository", "deleted run", deleted.set)

    with pytest.raises(KeyboardInterrupt) as caught:
        orchestrate("hello", [ScriptedModel("m")], db=repository)
    release.set()

    assert str(caught.value) == _NOT_STARTED
    assert caught.value.run is None  # type: ignore[attr-defined]
    assert deleted.wait(_WAIT_S)
    assert _run_statuses(repository) == []

    # The loop is healthy: the next call works.
    assert orchestrate("again", [ScriptedModel("m")], db=repository).status == (
        "complete"
    )


def test_ctrl_c_while_planning_says_so_in_one_sentence(db_url: str) -> None:
    repository = Repository.from_url(db_url)

    fired = threading.Event()

    def interrupt(
        conn: Any, cursor: Any, statement: str, *args: Any, **kwargs: Any
    ) -> None:
        # The cache lookup runs in the caller's thread, where SIGINT lands.
        if "FROM model_responses" in statement and not fired.is_set():
            fired.set()
            signal.raise_signal(signal.SIGINT)

    event.listen(repository.engine, "before_cursor_execute", interrupt)

    with pytest.raises(KeyboardInterrupt) as caught:
        orchestrate("hello", [ScriptedModel("m")], db=repository)

    assert str(caught.value) == _NOT_STARTED
    assert caught.value.run is None  # type: ignore[attr-defined]
    assert traceback.extract_tb(caught.value.__traceback__)[-1].name == "orchestrate"
    assert _run_statuses(repository) == []


def _run_statuses(repository: Repository) -> list[str]:
    return [run.status for run in repository.list_runs().runs]
