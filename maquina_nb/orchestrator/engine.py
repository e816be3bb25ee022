"""The fan-out: :class:`MultiModelOrchestrator` runs a plan on the background loop.

A run goes through these steps, all on maquina_nb's one background event loop:

1. plan (:mod:`.plan`): render items, resolve models, lay out requests with keys;
2. look the keys up in the cache; with ``replay_only`` fail on any miss;
3. estimate the cost and refuse a run above ``max_cost`` (:mod:`.budget`);
4. record the run, then answer every cache hit at once (status ``cached``);
5. fan the misses out over ``concurrency`` workers; each worker takes the next
   request of the model with the fewest requests in flight, so a slow or
   rate-limited model cannot hold every slot while others wait;
6. hand each finished row to the single writer (:mod:`.writer`), which stores
   batches and then announces them as events (:mod:`.dispatch`);
7. mark what was never sent (``skipped`` when the budget ran out, ``cancelled``
   on interrupt), set the run's status and totals.

One model's failure lands on its own rows; the others go on. An interrupt
cancels the in-flight calls (closing their streams), stores them as
``cancelled`` with the text received so far, stores what finished, and marks
the run ``cancelled``; the loop is left with no task of the run running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb import config
from maquina_nb._loop import run_sync
from maquina_nb._redact import get_logger
from maquina_nb.errors import ConfigurationError, ReplayMissError
from maquina_nb.orchestrator import events as ev
from maquina_nb.orchestrator.budget import (
    SpendTracker,
    check_budget,
    estimate_plan_cost,
)
from maquina_nb.orchestrator.dispatch import EventBus, ProgressBar, progress_wanted
from maquina_nb.orchestrator.plan import Plan, PlannedRequest, make_plan, resolve_models
from maquina_nb.orchestrator.rows import (
    cached_row,
    completion_row,
    error_row,
    unsent_row,
)
from maquina_nb.orchestrator.run import ANSWERED_STATUSES, Response, Run, remember
from maquina_nb.orchestrator.writer import ResponseWriter

if TYPE_CHECKING:
    from maquina_nb.db import Repository
    from maquina_nb.providers.base import BaseAIModel, Completion, ModelRequest

__all__ = ["MultiModelOrchestrator", "open_repository"]

logger = get_logger(__name__)

_CACHE_LOOKUP_CHUNK = 500


def open_repository(db: Any = None) -> Repository:
    """Return a repository for ``db``: a URL, an Engine, a Repository, or ``None``.

    ``None`` uses the default database (``MAQUINA_DB_URL``, else
    ``sqlite:///maquina.db`` in the working directory).
    """
    from maquina_nb.db import Repository

    if isinstance(db, Repository):
        return db
    if db is None or isinstance(db, (str, os.PathLike)):
        return Repository.from_url(None if db is None else str(db))
    if hasattr(db, "dialect") and hasattr(db, "connect"):
        return Repository(db)
    raise ConfigurationError(
        f"db= must be a database URL, a SQLAlchemy Engine or a Repository, not {db!r}."
    )


@dataclasses.dataclass
class _Interrupted:
    """Where an interrupted run leaves its partial result for the sync caller."""

    run: Run | None = None


class MultiModelOrchestrator:
    """Ask several models the same items, concurrently, and store every answer.

    Args:
        models: model specs (``"openai:gpt-4o"``, aliases such as ``"claude"``,
            ``"echo"``), model objects, or a comma-separated string.
        db: database URL, Engine or Repository (default: ``MAQUINA_DB_URL``,
            else ``maquina.db`` in the working directory).
        concurrency: requests in flight at once across all models (default
            :data:`maquina_nb.config.DEFAULT_CONCURRENCY`). Each model's own
            rate limits apply on top.
        cache: reuse stored answers to identical requests.
        replay_only: answer only from the cache; fail before sending anything
            if any request would miss.
        max_cost: refuse a run estimated above this many dollars, and stop
            starting requests once actual spend reaches it.
        timeout: seconds one response may take (all turns of it) before it is
            recorded as failed with ``error_kind="timeout"``.
        stream: ask streaming models to stream (text deltas reach ``on_event``).
        on_event: called with each :mod:`~maquina_nb.orchestrator.events`
            event, in order, from a delivery thread of the run's own (so it
            must be thread-safe; being slow does not slow the run).
        progress: show a tqdm bar on stderr (default: outside notebooks, unless
            ``MAQUINA_NB_PROGRESS=0``).
    """

    def __init__(
        self,
        models: str
        | BaseAIModel
        | Sequence[str | BaseAIModel]
        | Mapping[str, BaseAIModel],
        *,
        db: Any = None,
        concurrency: int | None = None,
        cache: bool = True,
        replay_only: bool = False,
        max_cost: float | None = None,
        timeout: float | None = None,
        stream: bool = True,
        on_event: Callable[[ev.Event], Any] | None = None,
        progress: bool | None = None,
    ) -> None:
        concurrency = config.DEFAULT_CONCURRENCY if concurrency is None else concurrency
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or concurrency < 1
        ):
            raise ConfigurationError(
                f"concurrency must be a whole number of at least 1, not {concurrency!r}."
            )
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ConfigurationError(
                f"timeout must be a positive number of seconds, not {timeout!r}."
            )

        self.models = resolve_models(models)
        self.repository = open_repository(db)
        self.concurrency = concurrency
        self.cache = cache
        self.replay_only = replay_only
        self.max_cost = max_cost
        self.timeout = timeout
        self.stream = stream
        self.on_event = on_event
        self.progress = progress

    # --- planning -------------------------------------------------------------

    def plan(
        self,
        prompt: Any,
        *,
        over: Any = None,
        namespace: Mapping[str, Any] | None = None,
        system: str | None = None,
        samples: int = 1,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Plan:
        """Plan a run without sending anything: items, requests, cache hits, estimate.

        The returned plan's ``estimated_cost_usd`` is the pre-flight estimate
        of the requests the cache will not answer.

        Raises:
            TemplateError: a template uses an undefined variable or is malformed.
            ConfigurationError: a bad argument.
        """
        parameters = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "top_p": top_p,
            "stop": list(stop) if stop is not None else None,
            "seed": seed,
            "extra": dict(extra or {}),
        }
        plan = make_plan(
            prompt,
            self.models,
            over=over,
            namespace=namespace,
            system=system,
            samples=samples,
            parameters=parameters,
        )
        if self.cache or self.replay_only:
            plan.cached = self._find_cached([r.cache_key for r in plan.requests])
        plan.estimated_cost_usd, plan.unpriced_models = estimate_plan_cost(plan)
        return plan

    def _find_cached(self, keys: list[str]) -> dict[str, Any]:
        unique = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        for start in range(0, len(unique), _CACHE_LOOKUP_CHUNK):
            found.update(
                self.repository.find_cached(unique[start : start + _CACHE_LOOKUP_CHUNK])
            )
        return found

    def preflight(self, plan: Plan) -> None:
        """Check a plan against ``replay_only`` and ``max_cost`` before it runs.

        Raises:
            ReplayMissError: ``replay_only`` is set and some request has no
                stored answer.
            BudgetExceededError: the estimate is above ``max_cost``.
        """
        if self.replay_only:
            misses = plan.misses
            if misses:
                shown = ", ".join(
                    f"item {m.item_index} x {m.model_spec!r} (sample {m.sample_index})"
                    for m in misses[:3]
                )
                more = f" and {len(misses) - 3} more" if len(misses) > 3 else ""
                raise ReplayMissError(
                    f"replay_only is set but {len(misses)} of {plan.total} requests have no "
                    f"stored answer: {shown}{more}; nothing was sent. Run once without "
                    "replay_only to record them."
                )
        check_budget(plan, self.max_cost)

    # --- running --------------------------------------------------------------

    async def execute(
        self,
        plan: Plan,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        _interrupted: _Interrupted | None = None,
    ) -> Run:
        """Run ``plan`` on the current loop (maquina_nb's background loop).

        Raises:
            ReplayMissError, BudgetExceededError: from :meth:`preflight`,
                before the run is recorded.
            asyncio.CancelledError: when cancelled; what finished is stored
                first and the run is marked ``cancelled``.
        """
        self.preflight(plan)
        run_id = await asyncio.to_thread(
            self.repository.add_run,
            name=name or "",
            template=plan.template,
            system_prompt=plan.system,
            models=list(plan.models),
            parameters={k: v for k, v in plan.parameters.items()},
            tags=list(tags),
            item_count=len(plan.items),
            samples=plan.samples,
            status="running",
            estimated_cost_usd=plan.estimated_cost_usd,
            max_cost_usd=self.max_cost,
            notebook_path=os.environ.get("JPY_SESSION_NAME") or None,
            metadata=dict(metadata) if metadata else None,
        )
        execution = _Execution(self, plan, run_id, name)
        try:
            return await execution.run()
        except asyncio.CancelledError:
            if _interrupted is not None:
                _interrupted.run = execution.result
            raise

    def run(self, prompt: Any, **options: Any) -> Run:
        """Plan and run, waiting for the result (safe inside a running kernel).

        ``name``, ``tags`` and ``metadata`` go to the run; every other option
        goes to :meth:`plan`.

        Raises:
            KeyboardInterrupt: see :meth:`run_plan`.
        """
        run_options = {
            k: options.pop(k) for k in ("name", "tags", "metadata") if k in options
        }
        return self.run_plan(self.plan(prompt, **options), **run_options)

    def run_plan(
        self,
        plan: Plan,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> Run:
        """Run ``plan`` on the background loop and wait for it.

        Raises:
            KeyboardInterrupt: the wait was interrupted (Ctrl-C, a kernel
                interrupt). The run is cancelled first: in-flight responses are
                stored as ``cancelled`` with their partial text, finished ones
                are kept, and the cancelled :class:`Run` is on the exception's
                ``run`` attribute (and in :func:`last_run`).
        """
        interrupted = _Interrupted()
        work = self.execute(
            plan, name=name, tags=tags, metadata=metadata, _interrupted=interrupted
        )
        try:
            return run_sync(work)
        except KeyboardInterrupt as interrupt:
            # Re-raised as is, so scripts stop as usual; the partial run rides along.
            if interrupted.run is not None:
                interrupt.run = interrupted.run  # type: ignore[attr-defined]
            raise

    async def arun(self, prompt: Any, **options: Any) -> Run:
        """Plan and execute on the current loop (see :meth:`plan` for options)."""
        run_options = {
            k: options.pop(k) for k in ("name", "tags", "metadata") if k in options
        }
        plan = await asyncio.to_thread(lambda: self.plan(prompt, **options))
        return await self.execute(plan, **run_options)


class _Execution:
    """The state of one run while it executes."""

    def __init__(
        self, owner: MultiModelOrchestrator, plan: Plan, run_id: str, name: str | None
    ) -> None:
        self.owner = owner
        self.plan = plan
        self.run_id = run_id
        self.name = name
        self.rows: list[dict[str, Any] | None] = [None] * plan.total
        self.spend = SpendTracker(owner.max_cost)
        self.bus = EventBus(owner.on_event, run_id=run_id)
        self.writer = ResponseWriter(owner.repository, on_stored=self._stored)
        self.progress: ProgressBar | None = None
        self.result: Run | None = None
        self._pending: dict[str, deque[PlannedRequest]] = {
            m: deque() for m in plan.models
        }
        self._in_flight: dict[str, int] = dict.fromkeys(plan.models, 0)
        self._started = 0.0
        self._warned: set[str] = set()

    # --- steps ----------------------------------------------------------------

    async def run(self) -> Run:
        plan = self.plan
        self._started = time.perf_counter()
        self.bus.start()
        self.writer.start()
        if progress_wanted(self.owner.progress) and plan.total:
            self.progress = ProgressBar(plan.total, description=self.name or "maquina")
        self._announce_start()

        # Cache hits are answered at once; the rest queue per model.
        for planned in plan.requests:
            hit = plan.cached.get(planned.cache_key)
            if hit is not None:
                self._finish(planned, cached_row(self.run_id, planned, hit))
            else:
                self._pending[planned.model_spec].append(planned)

        workers = [
            asyncio.get_running_loop().create_task(self._worker())
            for _ in range(min(self.owner.concurrency, len(plan.misses)))
        ]
        cancelled = False
        try:
            if workers:
                await asyncio.gather(*workers)
        except asyncio.CancelledError:
            cancelled = True
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

        # Whatever was never sent: skipped by the budget, or cancelled.
        for queue in self._pending.values():
            while queue:
                planned = queue.popleft()
                if cancelled:
                    row = unsent_row(self.run_id, planned, "cancelled")
                else:
                    row = unsent_row(
                        self.run_id, planned, "skipped", self.spend.max_cost
                    )
                self._finish(planned, row)

        try:
            await self._close(cancelled)
        except asyncio.CancelledError:
            # Interrupted while storing the last rows: finish, as cancelled.
            await self._close(True)
            raise
        if cancelled:
            raise asyncio.CancelledError
        assert self.result is not None
        return self.result

    def _announce_start(self) -> None:
        if not self.bus.active:
            return
        self.bus.emit(
            ev.RunStarted(
                run_id=self.run_id,
                name=self.name,
                models=tuple(self.plan.models),
                items=tuple(
                    {
                        "item_index": i.item_index,
                        "prompt": i.prompt,
                        "variables": i.variables,
                    }
                    for i in self.plan.items
                ),
                samples=self.plan.samples,
                total=self.plan.total,
                estimated_cost_usd=self.plan.estimated_cost_usd,
                max_cost_usd=self.owner.max_cost,
            )
        )

    def _next(self) -> PlannedRequest | None:
        if self.spend.exhausted:
            return None
        best: str | None = None
        for label, queue in self._pending.items():
            if queue and (
                best is None or self._in_flight[label] < self._in_flight[best]
            ):
                best = label
        return None if best is None else self._pending[best].popleft()

    async def _worker(self) -> None:
        while True:
            planned = self._next()
            if planned is None:
                return
            self._in_flight[planned.model_spec] += 1
            try:
                row = await self._answer(planned)
            finally:
                self._in_flight[planned.model_spec] -= 1
            self._finish(planned, row)

    async def _answer(self, planned: PlannedRequest) -> dict[str, Any]:
        """Ask one planned request (all its turns); return its row."""
        partial: list[str] = []
        started = time.perf_counter()
        if self.bus.active:
            self.bus.emit(
                ev.ResponseStarted(
                    run_id=self.run_id,
                    item_index=planned.item_index,
                    model=planned.model_spec,
                    sample_index=planned.sample_index,
                )
            )
        timed_out = False
        try:
            coro = self._converse(planned, partial, started)
            if self.owner.timeout is None:
                completion, messages = await coro
            else:
                try:
                    completion, messages = await asyncio.wait_for(
                        coro, self.owner.timeout
                    )
                except asyncio.TimeoutError:
                    timed_out = True
        except asyncio.CancelledError:
            # Recorded before the cancellation goes on, so the row is stored.
            row = error_row(
                self.run_id, planned, "cancelled", "".join(partial), started=started
            )
            self._finish(planned, row)
            raise
        except Exception as exc:
            if planned.model_spec not in self._warned:
                self._warned.add(planned.model_spec)
                logger.warning(
                    "%s failed on item %d (%s); the run goes on",
                    planned.model_spec,
                    planned.item_index,
                    type(exc).__name__,
                )
            return error_row(
                self.run_id, planned, exc, "".join(partial), started=started
            )
        if timed_out:
            return error_row(
                self.run_id,
                planned,
                "timeout",
                "".join(partial),
                started=started,
                message=f"No answer within timeout={self.owner.timeout}s.",
            )
        return completion_row(
            self.run_id, planned, completion, messages, started=started
        )

    async def _converse(
        self, planned: PlannedRequest, partial: list[str], started: float
    ) -> tuple[Completion, list[dict[str, str]]]:
        """Send the request, then any later turns with the model's own answers."""
        from maquina_nb.providers.base import Message

        request = planned.request
        # Only the last turn streams to on_event: its text is the response's.
        completion = await self._call(
            planned, request, partial, started, live=not planned.later_turns
        )
        if not planned.later_turns:
            return completion, [m.to_dict() for m in request.messages]

        totals = _Usage.of(completion)
        for position, turn in enumerate(planned.later_turns, start=1):
            if completion.finish_reason != "stop":
                break
            messages = (
                *request.messages,
                Message("assistant", completion.text),
                Message("user", turn),
            )
            request = dataclasses.replace(request, messages=messages)
            partial.clear()
            last = position == len(planned.later_turns)
            completion = await self._call(planned, request, partial, started, live=last)
            totals.add(completion)
        totals.apply(completion, started)
        return completion, [m.to_dict() for m in request.messages]

    async def _call(
        self,
        planned: PlannedRequest,
        request: ModelRequest,
        partial: list[str],
        started: float,
        *,
        live: bool = True,
    ) -> Completion:
        from maquina_nb.providers.base import Completion, TextDelta

        model = planned.model
        if not (self.owner.stream and model.supports_streaming):
            completion = await model.generate(request)
            partial.append(completion.text or "")
            return completion

        first_at: float | None = None
        final: Completion | None = None
        # aclosing: a cancelled or failed stream closes its HTTP response now.
        async with contextlib.aclosing(model.stream(request)) as parts:  # type: ignore[type-var]
            async for part in parts:
                if isinstance(part, TextDelta):
                    if first_at is None:
                        first_at = time.perf_counter()
                    partial.append(part.text)
                    if live:
                        self.bus.delta(planned.address, part.text)
                elif isinstance(part, Completion):
                    final = part
        if final is None:
            raise RuntimeError(f"The {model.spec!r} stream ended without a completion.")
        if final.ttft_s is None and first_at is not None:
            final.ttft_s = first_at - started
        return final

    # --- finishing --------------------------------------------------------------

    def _finish(self, planned: PlannedRequest, row: dict[str, Any]) -> None:
        """Keep ``row`` and hand it to the writer (once per planned request)."""
        if self.rows[planned.index] is not None:
            return
        self.rows[planned.index] = row
        self.spend.add(row["cost_usd"] if row["status"] != "cached" else None)
        self.writer.add(row)

    def _stored(self, batch: list[dict[str, Any]], saved: bool) -> None:
        for row in batch:
            if self.progress is not None:
                self.progress.advance(row["status"], row["cost_usd"])
            if self.bus.active:
                self.bus.emit(_finished_event(row, saved))

    async def _close(self, cancelled: bool) -> None:
        await self.writer.aclose()
        responses = [Response.from_row(r) for r in self.rows if r is not None]
        status = "cancelled" if cancelled else _run_status(responses)
        duration = time.perf_counter() - self._started
        self.result = Run(
            id=self.run_id,
            name=self.name,
            status=status,
            items=self.plan.items,
            models=self.plan.models,
            responses=responses,
            estimated_cost_usd=self.plan.estimated_cost_usd,
            max_cost_usd=self.owner.max_cost,
            duration_s=duration,
            repository=self.owner.repository,
            unsaved=self.writer.unsaved,
        )
        remember(self.result)
        totals = self.result.totals
        try:
            await asyncio.to_thread(
                self.owner.repository.update_run,
                self.run_id,
                status=status,
                finished_at=_utcnow(),
                total_cost_usd=totals.cost_usd,
            )
        except Exception:
            logger.warning(
                "could not record the end of run %s", self.run_id, exc_info=True
            )

        if self.progress is not None:
            self.progress.close()
        if self.bus.active:
            self.bus.emit(
                ev.RunFinished(
                    run_id=self.run_id,
                    status=status,
                    done=totals.answered,
                    failed=totals.failed,
                    total=totals.responses,
                    cost_usd=totals.cost_usd,
                    duration_s=duration,
                    extra={
                        "skipped": totals.skipped,
                        "cancelled": totals.cancelled,
                        "cached": totals.cached,
                        "unsaved": self.writer.unsaved,
                    },
                )
            )
        # After an interrupt the user is waiting: give delivery less time.
        await self.bus.aclose(timeout=0.5 if cancelled else None)
        logger.info(
            "run %s %s: %d items x %d models, %d answered, %d failed, %.2fs",
            self.run_id,
            status,
            len(self.plan.items),
            len(self.plan.models),
            totals.answered,
            totals.failed,
            duration,
        )


class _Usage:
    """Adds up tokens, cost and latency over the turns of one conversation."""

    def __init__(self) -> None:
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cached_tokens: int | None = None
        self.cost_usd: float | None = None
        self.cost_unknown = False
        self.ttft_s: float | None = None

    @classmethod
    def of(cls, completion: Completion) -> _Usage:
        usage = cls()
        usage.ttft_s = completion.ttft_s
        usage.add(completion)
        return usage

    def add(self, completion: Completion) -> None:
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            value = getattr(completion, name)
            if value is not None:
                setattr(self, name, (getattr(self, name) or 0) + value)
        if completion.cost_usd is None:
            self.cost_unknown = True
        else:
            self.cost_usd = (self.cost_usd or 0.0) + completion.cost_usd

    def apply(self, completion: Completion, started: float) -> None:
        completion.input_tokens = self.input_tokens
        completion.output_tokens = self.output_tokens
        completion.cached_tokens = self.cached_tokens
        completion.cost_usd = None if self.cost_unknown else self.cost_usd
        completion.ttft_s = self.ttft_s
        completion.latency_s = time.perf_counter() - started


def _finished_event(row: dict[str, Any], saved: bool) -> ev.Event:
    common = {
        "run_id": row["run_id"],
        "item_index": row["item_index"],
        "model": row["model_spec"],
        "sample_index": row["sample_index"],
        "response_id": row["id"] if saved else None,
    }
    if row["status"] in ANSWERED_STATUSES:
        return ev.ResponseFinished(
            **common,
            text=row["text"] or "",
            status=row["status"],
            finish_reason=row["finish_reason"] or "",
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=row["cost_usd"],
            latency_s=row["latency_s"],
            ttft_s=row["ttft_s"],
        )
    return ev.ResponseFailed(
        **common,
        status=row["status"],
        error_kind=row["error_kind"] or "",
        error_message=row["error_message"] or "",
        partial_text=row["text"] or "",
    )


def _run_status(responses: Sequence[Response]) -> str:
    if not responses:
        return "complete"
    answered = sum(1 for r in responses if r.ok)
    if answered == len(responses):
        return "complete"
    if answered == 0:
        return "failed"
    return "partial"


def _utcnow() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)
