"""One run while it executes: the workers, the finishing, the closing.

:class:`Execution` is created by
:meth:`~maquina_nb.orchestrator.engine.MultiModelOrchestrator.execute` once the run
is recorded. Its workers take the next request of the model with the fewest
requests in flight, so a slow or rate-limited model cannot hold every slot
while others wait; finished rows go to the single writer, which announces them
as events once stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb._money import usd
from maquina_nb._redact import get_logger
from maquina_nb.orchestrator import events as ev
from maquina_nb.orchestrator.budget import SpendTracker, worst_case_cost
from maquina_nb.orchestrator.dispatch import EventBus, ProgressBar, progress_wanted
from maquina_nb.orchestrator.plan import Plan, PlannedRequest
from maquina_nb.orchestrator.rows import (
    cached_row,
    completion_row,
    error_message,
    error_row,
    unsent_row,
)
from maquina_nb.orchestrator.run import ANSWERED_STATUSES, Response, Run, remember
from maquina_nb.orchestrator.writer import ResponseWriter

if TYPE_CHECKING:
    from maquina_nb.orchestrator.engine import MultiModelOrchestrator
    from maquina_nb.providers.base import Completion, ModelRequest

__all__ = ["Execution"]

logger = get_logger(__name__)


class Execution:
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
        # Budget: worst-case cost per request object, and a signal when one settles.
        self._worst: dict[tuple[str, int], tuple[float | None, int, str]] = {}
        self._settled = asyncio.Event()
        self._outstanding = 0
        self.notice: str | None = None
        self._started = 0.0
        self._warned: set[str] = set()

    # --- steps ----------------------------------------------------------------

    async def run(self) -> Run:
        """Answer every planned request; return the finished run.

        Raises:
            asyncio.CancelledError: when cancelled, after storing what finished
                and marking the run ``cancelled`` (the result is in ``result``).
        """
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
        unsent = 0
        for queue in self._pending.values():
            while queue:
                planned = queue.popleft()
                if cancelled:
                    row = unsent_row(self.run_id, planned, "cancelled")
                else:
                    unsent += 1
                    row = unsent_row(
                        self.run_id,
                        planned,
                        "skipped",
                        self.spend.max_cost,
                        message=self._skip_message(planned),
                    )
                self._finish(planned, row)
        if unsent:
            self.notice = (
                f"max_cost={usd(self.spend.max_cost or 0)} stopped the run: {unsent} of "
                f"{plan.total} requests were not sent (spent {usd(self.spend.spent)}); "
                "raise max_cost or set max_tokens, then run it again to ask the rest."
            )
            logger.warning("run %s: %s", self.run_id, self.notice)

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
                        "turns": [
                            m["content"] for m in i.messages if m["role"] == "user"
                        ],
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

    def _worst_case(self, planned: PlannedRequest) -> tuple[float | None, int, str]:
        if self.spend.max_cost is None:
            return None, 0, ""
        # Samples share one request object: price it once per model.
        key = (planned.model_spec, id(planned.request))
        known = self._worst.get(key)
        if known is None:
            known = self._worst[key] = worst_case_cost(planned)
        return known

    def _skip_message(self, planned: PlannedRequest) -> str | None:
        """Why an unsent request was skipped, when not simply spend reaching max_cost."""
        if self.spend.exhausted:
            return None
        cost, tokens, source = self._worst_case(planned)
        return (
            f"Not sent: its worst-case cost {usd(cost or 0)} ({tokens:,} output "
            f"tokens, {source}) is more than the {usd(self.spend.left)} left of "
            f"max_cost={usd(self.spend.max_cost or 0)}; set max_tokens to bound it "
            "or raise max_cost."
        )

    async def _next(self) -> tuple[PlannedRequest, float | None] | None:
        """Take the next request whose worst-case cost fits the budget, and reserve it.

        Models with the fewest requests in flight go first. When nothing fits
        but requests are in flight, wait for one to settle and look again.
        """
        while True:
            if self.spend.exhausted:
                return None
            labels = sorted(
                (label for label, queue in self._pending.items() if queue),
                key=self._in_flight.__getitem__,
            )
            if not labels:
                return None
            for label in labels:
                planned = self._pending[label][0]
                amount = self._worst_case(planned)[0]
                if self.spend.fits(amount):
                    self._pending[label].popleft()
                    self.spend.reserve(amount)
                    self._outstanding += 1
                    return planned, amount
            if not self._outstanding:
                return None
            self._settled.clear()
            await self._settled.wait()

    async def _worker(self) -> None:
        while True:
            taken = await self._next()
            if taken is None:
                # Others may be waiting for room that will not come now.
                self._settled.set()
                return
            planned, amount = taken
            self._in_flight[planned.model_spec] += 1
            try:
                row = await self._answer(planned)
            finally:
                self._in_flight[planned.model_spec] -= 1
                self._outstanding -= 1
                self.spend.release(amount)
            self._finish(planned, row)
            self._settled.set()

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
                    error_message(exc),
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
                    if part.reset:
                        # The provider retried the stream from the start.
                        partial.clear()
                    partial.append(part.text)
                    if live:
                        self.bus.delta(planned.address, part.text, reset=part.reset)
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
        unsaved = self.writer.unsaved
        if unsaved:
            # The database lacks some answers: the stored run is not complete.
            if status == "complete":
                status = "partial"
            lost = (
                f"{unsaved} of {len(responses)} responses could not be saved to the "
                "database (see the warnings above); they are only in this Run."
            )
            self.notice = f"{self.notice} {lost}" if self.notice else lost
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
            notice=self.notice,
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
                        "budget_stopped": self.notice is not None,
                        "notice": self.notice,
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
            assistant_turns=tuple(
                str(m.get("content") or "")
                for m in row["messages"] or ()
                if m.get("role") == "assistant"
            ),
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
