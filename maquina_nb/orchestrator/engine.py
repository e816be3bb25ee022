"""The fan-out: :class:`MultiModelOrchestrator` runs a plan on the background loop.

A run goes through these steps, all on maquina_nb's one background event loop:

1. plan (:mod:`.plan`): render items, resolve models, lay out requests with keys;
2. look the keys up in the cache; with ``replay_only`` fail on any miss;
3. estimate the cost and refuse a run above ``max_cost`` (:mod:`.budget`);
4. record the run, then answer every cache hit at once (status ``cached``);
5. fan the misses out over ``concurrency`` workers (:mod:`.execution`); each
   worker takes the next
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
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb import config
from maquina_nb._loop import run_sync
from maquina_nb._redact import get_logger
from maquina_nb.errors import (
    ConfigurationError,
    ReplayMissError,
    TemplateError,
)
from maquina_nb.orchestrator import events as ev
from maquina_nb.orchestrator.budget import (
    check_budget,
    estimate_plan_cost,
)
from maquina_nb.orchestrator.checks import check_parameters, normalize_tags
from maquina_nb.orchestrator.execution import Execution
from maquina_nb.orchestrator.plan import Plan, make_plan, resolve_models
from maquina_nb.orchestrator.run import Run

if TYPE_CHECKING:
    from maquina_nb.db import Repository
    from maquina_nb.providers.base import BaseAIModel

__all__ = [
    "MultiModelOrchestrator",
    "cancel_message",
    "interrupt_error",
    "open_repository",
]

logger = get_logger(__name__)

_CACHE_LOOKUP_CHUNK = 500

# Clean-ups that outlive the cancelled call that started them (asyncio keeps
# only weak references to tasks).
_CLEANUPS: set[asyncio.Task[None]] = set()


def open_repository(db: Any = None) -> Repository:
    """Return a repository for ``db``: a URL, an Engine, a Repository, or ``None``.

    ``None`` uses the default database (``MAQUINA_DB_URL``, else
    ``sqlite:///maquina.db`` in the working directory).

    Raises:
        StoreError: a URL whose database cannot be opened (one sentence
            saying what to fix; see :meth:`Repository.from_url`).
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


def cancel_message(run: Run | None, stored_in: str | None = None) -> str:
    """Return the one sentence that tells what an interrupt left behind.

    Args:
        run: the cancelled run, or ``None`` when it was never recorded.
        stored_in: where else the partial frame went (a notebook variable).
    """
    if run is None:
        return "The run was cancelled before it started; nothing was stored."
    finished = sum(1 for r in run.responses if r.status != "cancelled")
    where = f"{stored_in} and " if stored_in else ""
    return (
        f"Run {run.id} cancelled after {finished} of {len(run.responses)} "
        f"responses; the finished ones are stored in {where}maquina_nb.last_run()."
    )


def interrupt_error(run: Run | None) -> KeyboardInterrupt:
    """Return the interrupt to raise for ``run``: its message, and the run on ``.run``."""
    interrupt = KeyboardInterrupt(cancel_message(run))
    interrupt.run = run  # type: ignore[attr-defined]
    return interrupt


def _check_one_system_prompt(plan: Plan) -> None:
    """Refuse ``system=`` together with a conversation that starts with its own.

    Raises:
        TemplateError: an item's first message is a system message and
            ``system=`` was given too.
    """
    if plan.system is None:
        return
    for item in plan.items:
        if item.messages and item.messages[0]["role"] == "system":
            raise TemplateError(
                f"Item {item.item_index} has both system= and a leading system "
                "message; give the system prompt once, either as system= or as the "
                "conversation's first message."
            )


class MultiModelOrchestrator:
    """Ask several models the same items, concurrently, and store every answer.

    Args:
        models: model specs (``"openai:gpt-4o"``, aliases such as ``"claude"``,
            ``"echo"``), model objects, or a comma-separated string.
        db: database URL, Engine or Repository (default: ``MAQUINA_DB_URL``,
            else ``maquina.db`` in the working directory).
        concurrency: requests in flight at once across all models (default
            ``[defaults] concurrency`` in the config files, else 32). Each model's own
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
        concurrency = (
            config.default_concurrency() if concurrency is None else concurrency
        )
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
        stop = check_parameters(
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
        )
        parameters = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "top_p": top_p,
            "stop": stop,
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
        _check_one_system_prompt(plan)
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
        tags = normalize_tags(tags)
        self.preflight(plan)
        run_id = await self._record_run(plan, name=name, tags=tags, metadata=metadata)
        execution = Execution(self, plan, run_id, name)
        try:
            return await execution.run()
        except asyncio.CancelledError:
            if _interrupted is not None:
                _interrupted.run = execution.result
            raise

    async def _record_run(
        self,
        plan: Plan,
        *,
        name: str | None,
        tags: Sequence[str],
        metadata: Mapping[str, Any] | None,
    ) -> str:
        """Store the run as ``running`` and return its id.

        The insert runs in a worker thread, which a cancellation cannot stop.
        When the caller is cancelled before it has the id, the row is deleted
        as soon as the insert lands, so an interrupted start leaves no run
        rather than a ``running`` one that nothing will ever finish.
        """
        adding = asyncio.ensure_future(
            asyncio.to_thread(
                self.repository.add_run,
                name=name or "",
                template=plan.template,
                system_prompt=plan.system,
                models=list(plan.models),
                parameters=dict(plan.parameters),
                tags=tags,
                item_count=len(plan.items),
                samples=plan.samples,
                status="running",
                estimated_cost_usd=plan.estimated_cost_usd,
                max_cost_usd=self.max_cost,
                notebook_path=os.environ.get("JPY_SESSION_NAME") or None,
                metadata=dict(metadata) if metadata else None,
            )
        )
        try:
            return await asyncio.shield(adding)
        except asyncio.CancelledError:
            forgetting = asyncio.ensure_future(self._forget_run(adding))
            _CLEANUPS.add(forgetting)
            forgetting.add_done_callback(_CLEANUPS.discard)
            # Awaited within the caller's grace period (the user then sees a
            # settled database); a slower insert is still undone afterwards.
            await asyncio.shield(forgetting)
            raise

    async def _forget_run(self, adding: asyncio.Future[str]) -> None:
        """Delete the run that ``adding`` stores, once it is stored."""
        try:
            run_id = await adding
        except Exception:
            logger.debug("the cancelled run was never stored", exc_info=True)
            return

        try:
            await asyncio.to_thread(self.repository.delete_run, run_id)
        except Exception:
            logger.warning(
                "could not delete run %s, cancelled before it started; "
                "Repository.delete_run(%r) removes it",
                run_id,
                run_id,
                exc_info=True,
            )

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
                ``run`` attribute (and in :func:`last_run`). The exception is
                a new one raised here, its message saying how many responses
                finished (the frames of the wait are left out).
        """
        interrupted = _Interrupted()
        work = self.execute(
            plan, name=name, tags=tags, metadata=metadata, _interrupted=interrupted
        )
        try:
            return run_sync(work)
        except KeyboardInterrupt:
            # A fresh interrupt raised here: the frames of the wait on the
            # background loop say nothing to the user. Scripts still stop as
            # usual, and the partial run rides along.
            raise interrupt_error(interrupted.run) from None

    async def arun(self, prompt: Any, **options: Any) -> Run:
        """Plan and execute on the current loop (see :meth:`plan` for options)."""
        run_options = {
            k: options.pop(k) for k in ("name", "tags", "metadata") if k in options
        }
        plan = await asyncio.to_thread(lambda: self.plan(prompt, **options))
        return await self.execute(plan, **run_options)
