"""Start runs from the API and stream any run's events over a WebSocket.

A run started through ``POST /api/runs`` executes on maquina_nb's background
event loop through the same :func:`~maquina_nb.orchestrator.aorchestrate` a
notebook uses; its events go to the :class:`~maquina_nb.server._hub.RunHub`.

``/api/runs/{run_id}/events`` then serves one of three sources:

- a run live in this process: its snapshot so far, then every event live;
- a run still running elsewhere (a notebook kernel writing to the same
  database): the stored responses, then new ones as the database shows them;
- a finished run: a replay of what was stored.

Each ends with ``run_finished`` and a normal close (1000).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from maquina_nb import _loop
from maquina_nb._redact import get_logger, redact
from maquina_nb.server import _queries
from maquina_nb.server._hub import RunHub
from maquina_nb.server._replay import (
    FAILED_STATUSES,
    TERMINAL_RUN_STATUSES,
    item_entry,
    response_event,
    run_finished_event,
    run_started_event,
)

if TYPE_CHECKING:
    from maquina_nb.server.app import ServerState
    from maquina_nb.server.schemas import RunStartIn

__all__ = ["RunLauncher", "StartRunError", "stream_run"]

logger = get_logger(__name__)

#: Close code sent when a run id is unknown (4000-4999 are for applications).
CLOSE_UNKNOWN_RUN = 4404
#: Close code sent to a client too slow to keep up; it may reconnect.
CLOSE_TOO_SLOW = 4008
#: Stored responses read per query when replaying a run.
_REPLAY_PAGE = 500


class StartRunError(Exception):
    """A run could not start; ``field`` names the request field at fault."""

    def __init__(
        self, field: tuple[str | int, ...], message: str, *, status_code: int = 422
    ) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status_code = status_code


def _orchestrate() -> Callable[..., Coroutine[Any, Any, Any]]:
    from maquina_nb.orchestrator import aorchestrate

    return aorchestrate


def _check_models(specs: list[str]) -> None:
    """Resolve every spec and check its key now, offline.

    A request naming an unknown model, or one whose key the server lacks, then
    answers 422 naming its index instead of starting a run that can only fail.
    Specs with ``?options`` and replay files are refused first (``_specs``).
    """
    from maquina_nb.errors import MaquinaError
    from maquina_nb.providers import check_credentials, resolve_model
    from maquina_nb.server._specs import api_spec_problem

    for index, spec in enumerate(specs):
        try:
            problem = api_spec_problem(spec)
            if problem is not None:
                raise StartRunError(("body", "models", index), problem)
            resolve_model(spec)
            status = check_credentials([spec], live=False).iloc[0]
        except MaquinaError as exc:
            raise StartRunError(("body", "models", index), api_message(exc)) from exc
        if status["status"] in ("missing", "malformed"):
            raise StartRunError(
                ("body", "models", index),
                f"The server has no usable API key for {spec!r} ({status['status']}); "
                "ask whoever runs the server to set it, or pick another model.",
            )


def api_message(exc: BaseException, body: RunStartIn | None = None) -> str:
    """Return the error's sentence, its advice fitted to an API client.

    Args:
        exc: the error.
        body: the request that caused it, when there is one.
    """
    from maquina_nb.errors import TemplateError, UnknownModelError

    if isinstance(exc, UnknownModelError):
        # The notebook's advice (%maquina models) means nothing to an API client.
        listing = "pick one that GET /api/models lists"
        return str(UnknownModelError(exc.spec, exc.suggestions, listing=listing))
    if isinstance(exc, TemplateError) and exc.variable and body is not None:
        # The notebook's advice (df.assign, defining a Python name) does not
        # apply either: an API request's variables are the keys of its rows.
        return _undefined_variable_message(exc.variable, body.over)
    return str(exc)


def _undefined_variable_message(
    variable: str, over: list[dict[str, Any]] | None
) -> str:
    braces = "or write literal braces as {{ '{{' }}."
    if over is None:
        return (
            f"The prompt template uses the variable {variable!r}, but the request "
            f"sends no rows to take it from; send `over`, a list of rows each with "
            f"a {variable!r} key, {braces}"
        )
    if not over:
        return (
            f"The prompt template uses the variable {variable!r}, but `over` has "
            f"no rows; send at least one row with a {variable!r} key, {braces}"
        )
    keys = sorted({str(key) for row in over for key in row})
    shown = ", ".join(repr(key) for key in keys[:20]) + (" …" if len(keys) > 20 else "")
    return (
        f"The prompt template uses the variable {variable!r}, which the rows of "
        f"`over` lack (their keys: {shown or 'none'}); add a {variable!r} key to "
        "each row of `over`, write a key that is not an identifier as "
        f"{{{{ row['my key'] }}}}, {braces}"
    )


def _error_field(exc: BaseException) -> tuple[str | int, ...]:
    from maquina_nb.errors import (
        BudgetExceededError,
        ConfigurationError,
        ReplayMissError,
        TemplateError,
        UnknownModelError,
    )

    if isinstance(exc, TemplateError):
        return ("body", "template")
    if isinstance(exc, BudgetExceededError):
        return ("body", "max_cost_usd")
    if isinstance(exc, UnknownModelError | ConfigurationError):
        return ("body", "models")
    if isinstance(exc, ReplayMissError):
        return ("body", "cache")
    return ("body",)


class RunLauncher:
    """Start runs on the background loop and keep track of them.

    Args:
        hub: where the runs' events go.
        repository: the repository the runs are stored through.
        start_timeout_s: how long to wait for a run to report that it started.
        max_active_runs: most runs started here that may go on at once
            (``None``: no limit); one more is refused with 429.
    """

    def __init__(
        self,
        hub: RunHub,
        repository: Any,
        *,
        start_timeout_s: float = 60.0,
        max_active_runs: int | None = None,
    ) -> None:
        self.hub = hub
        self.repository = repository
        self.start_timeout_s = start_timeout_s
        self.max_active_runs = max_active_runs
        self._futures: dict[str, concurrent.futures.Future[Any]] = {}
        self._unwound: dict[str, threading.Event] = {}
        #: Requests between the limit check and their run's registration.
        self._starting = 0

    def _kwargs(
        self, body: RunStartIn, on_event: Callable[[Any], None]
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "system": body.system,
            "samples": body.samples,
            "temperature": body.parameters.temperature,
            "max_tokens": body.parameters.max_tokens,
            "top_p": body.parameters.top_p,
            "stop": body.parameters.stop,
            "seed": body.parameters.seed,
            "cache": body.cache,
            "max_cost": body.max_cost_usd,
            "name": body.name,
            "tags": tuple(body.tags),
            "db": self.repository,
            "stream": True,
            "on_event": on_event,
            # NOTE: an explicit empty namespace: left out, the orchestrator would
            # render the client's template against this function's local variables.
            "namespace": {},
        }
        if body.over is not None:
            import pandas as pd

            kwargs["over"] = pd.DataFrame(body.over)
        return kwargs

    async def start(self, body: RunStartIn) -> str:
        """Start ``body`` as a run and return its id once it has begun.

        Raises:
            StartRunError: the request cannot run (unknown model, bad template,
                over budget, …); names the field at fault.
        """
        self._refuse_over_limit()
        self._starting += 1
        try:
            return await self._start(body)
        finally:
            self._starting -= 1

    @property
    def active(self) -> int:
        """Runs started here that are still going (or about to start)."""
        return len(self._futures) + self._starting

    def _refuse_over_limit(self) -> None:
        limit = self.max_active_runs
        if limit is None or self.active < limit:
            return
        raise StartRunError(
            ("body",),
            f"This server is already running {self.active} runs started from the API, "
            f"its limit; wait for one to finish, or restart it with a higher "
            "--max-active-runs.",
            status_code=429,
        )

    async def _start(self, body: RunStartIn) -> str:
        from maquina_nb.errors import MaquinaError

        await run_in_threadpool(_check_models, body.models)

        loop = asyncio.get_running_loop()
        started: asyncio.Future[str] = loop.create_future()
        publish = self.hub.threadsafe_publisher()

        def _mark_started(run_id: str) -> None:
            if not started.done():
                started.set_result(run_id)

        def on_event(event: Any) -> None:
            # Called on the background loop's thread: hand over and return at once.
            data = event.to_dict()
            publish(data)
            if data.get("type") == "run_started":
                loop.call_soon_threadsafe(_mark_started, str(data["run_id"]))

        # Step 1: submit the run to the background loop. The event tells when
        # it has really unwound (a cancelled future reports done at once).
        kwargs = self._kwargs(body, on_event)
        unwound = threading.Event()

        async def _tracked() -> Any:
            try:
                return await _orchestrate()(body.template, list(body.models), **kwargs)
            finally:
                unwound.set()

        future: concurrent.futures.Future[Any] = _loop.submit(_tracked())

        # Step 2: wait until it has started (or failed before starting).
        finished = asyncio.wrap_future(future)
        done, _ = await asyncio.wait(
            {started, finished},
            timeout=self.start_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if started in done:
            run_id = started.result()
        elif finished in done:
            exc = finished.exception()
            if exc is None:
                run_id = str(finished.result().id)
            elif isinstance(exc, MaquinaError | ValueError):
                raise StartRunError(
                    _error_field(exc), redact(api_message(exc, body))
                ) from exc
            else:
                raise exc
        else:
            future.cancel()
            raise StartRunError(
                ("body",),
                f"The run did not start within {self.start_timeout_s:.0f} s; try again.",
                status_code=503,
            )

        # Step 3: watch it, so a crash still ends its subscribers' streams.
        self._futures[run_id] = future
        self._unwound[run_id] = unwound
        future.add_done_callback(lambda fut: self._on_done(run_id, fut, publish))
        logger.info(
            "started run %s over %d model(s) from the API", run_id, len(body.models)
        )
        return run_id

    def _on_done(
        self,
        run_id: str,
        future: concurrent.futures.Future[Any],
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self._futures.pop(run_id, None)
        self._unwound.pop(run_id, None)
        if future.cancelled():
            status, message = "cancelled", "The run was cancelled."
        elif future.exception() is not None:
            status, message = "failed", redact(str(future.exception()))
            logger.warning("run %s ended with an error: %s", run_id, message)
        else:
            return
        # The hub ignores this if the orchestrator already sent its own end.
        publish(
            {
                "type": "run_finished",
                "run_id": run_id,
                "status": status,
                "done": 0,
                "failed": 0,
                "total": 0,
                "cost_usd": None,
                "duration_s": 0.0,
                "extra": {"error": message},
            }
        )

    def cancel_all(self, *, timeout_s: float = 5.0) -> None:
        """Cancel every run still going (at server shutdown), waiting a little.

        A cancelled run stores what finished and marks itself cancelled; this
        waits (up to ``timeout_s`` in all) for that to happen.
        """
        waits = list(self._unwound.values())
        for future in list(self._futures.values()):
            future.cancel()
        deadline = time.monotonic() + timeout_s
        for unwound in waits:
            unwound.wait(timeout=max(0.0, deadline - time.monotonic()))


# --- the WebSocket -------------------------------------------------------------


async def _wait_disconnect(websocket: WebSocket) -> None:
    """Return when the client goes away; ignore anything it sends."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _send_until(
    websocket: WebSocket, disconnected: asyncio.Task[None], coro: Awaitable[Any]
) -> bool:
    """Run ``coro`` unless the client leaves first; tell whether it finished."""
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait(
        {task, disconnected}, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
        await task
    return False


async def _stream_live(
    websocket: WebSocket,
    state: ServerState,
    run_id: str,
    disconnected: asyncio.Task[None],
) -> bool:
    subscription = state.hub.subscribe(run_id)
    if subscription is None:
        return False
    snapshot, subscriber = subscription
    try:
        for event in snapshot:
            await websocket.send_json(event)
        while True:
            get = asyncio.ensure_future(subscriber.queue.get())
            done, _ = await asyncio.wait(
                {get, disconnected}, return_when=asyncio.FIRST_COMPLETED
            )
            if get not in done:
                get.cancel()
                return True
            pending = get.result()
            if subscriber.overflowed:
                # Dropped by the hub: no more events come; a reconnect resumes
                # from a fresh snapshot.
                await websocket.close(CLOSE_TOO_SLOW, "too slow; reconnect to resume")
                return True
            if pending is None:
                break
            await websocket.send_json(pending)
    finally:
        state.hub.unsubscribe(run_id, subscriber)
    await websocket.close(1000)
    return True


async def _stream_stored(
    websocket: WebSocket,
    state: ServerState,
    run_id: str,
    disconnected: asyncio.Task[None],
) -> None:
    engine = state.engine

    # Step 1: what is stored now (the whole run when it has finished), a page
    # at a time so a large run never sits in memory whole.
    run = await run_in_threadpool(_queries.get_run_row, engine, run_id)
    if run is None:
        await websocket.close(CLOSE_UNKNOWN_RUN, "unknown run")
        return
    items = await run_in_threadpool(_queries.run_items, engine, run_id)
    await websocket.send_json(
        run_started_event(
            run, [item_entry(i.item_index, i.messages, i.variables) for i in items]
        )
    )
    seen: set[str] = set()
    counts = {"done": 0, "failed": 0}
    watermark: datetime | None = None

    async def send(row: Any) -> None:
        nonlocal watermark
        seen.add(row.id)
        counts["failed" if row.status in FAILED_STATUSES else "done"] += 1
        if row.updated_at and (watermark is None or row.updated_at > watermark):
            watermark = row.updated_at
        await websocket.send_json(response_event(row))

    cursor: str | None = None
    while True:
        page, cursor = await run_in_threadpool(
            functools.partial(
                _queries.responses_page,
                engine,
                run_id,
                limit=_REPLAY_PAGE,
                cursor=cursor,
            )
        )
        for row in page:
            await send(row)
        if cursor is None:
            break

    # Step 2: a run still writing elsewhere is followed through the database.
    deadline = asyncio.get_running_loop().time() + state.tail_max_s
    while run.status not in TERMINAL_RUN_STATUSES:
        if asyncio.get_running_loop().time() > deadline:
            await websocket.close(1001, "stopped following; reconnect to resume")
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.shield(disconnected), timeout=state.poll_interval_s
            )
        if disconnected.done():
            return
        # Rows committed slightly out of order still land inside the margin.
        since = watermark - timedelta(seconds=2) if watermark is not None else None
        fresh = await run_in_threadpool(_queries.responses_since, engine, run_id, since)
        for row in fresh:
            if row.id not in seen:
                await send(row)
        latest = await run_in_threadpool(_queries.get_run_row, engine, run_id)
        if latest is None:
            await websocket.close(CLOSE_UNKNOWN_RUN, "run deleted")
            return
        run = latest

    # Step 3: the end.
    await websocket.send_json(run_finished_event(run, **counts))
    await websocket.close(1000)


async def stream_run(
    websocket: WebSocket,
    state: ServerState,
    run_id: str,
    *,
    subprotocol: str | None = None,
) -> None:
    """Serve ``/api/runs/{run_id}/events`` (the caller has checked the token)."""
    await websocket.accept(subprotocol=subprotocol)
    disconnected = asyncio.ensure_future(_wait_disconnect(websocket))
    try:
        if state.hub.is_live(run_id):
            await _send_until(
                websocket,
                disconnected,
                _stream_live(websocket, state, run_id, disconnected),
            )
            return
        await _send_until(
            websocket,
            disconnected,
            _stream_stored(websocket, state, run_id, disconnected),
        )
    except WebSocketDisconnect:
        logger.debug("a watcher of run %s left", run_id)
    finally:
        disconnected.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await disconnected
