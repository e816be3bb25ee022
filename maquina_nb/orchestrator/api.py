"""``orchestrate()`` and ``aorchestrate()``: the Python API over the orchestrator.

Both work the same in a notebook cell, in ``await`` code and in a plain script:
the network work always runs on maquina_nb's one background event loop
(DESIGN.md decision 2), so SDK clients stay on one loop across calls and no
``asyncio.run`` is ever nested inside a running kernel loop (C01).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb._loop import in_background_loop, submit
from maquina_nb._redact import get_logger
from maquina_nb.orchestrator.engine import MultiModelOrchestrator, interrupt_error
from maquina_nb.orchestrator.run import last_run

if TYPE_CHECKING:
    from maquina_nb.orchestrator import events as ev
    from maquina_nb.orchestrator.run import Run
    from maquina_nb.providers.base import BaseAIModel

__all__ = ["aorchestrate", "last_run", "orchestrate"]

# How long a cancelled aorchestrate() waits for the run to store what finished.
_CANCEL_GRACE_S = 3.0

logger = get_logger(__name__)


def _caller_namespace(depth: int) -> Mapping[str, Any]:
    """Return the caller's locals over its globals, for template variables."""
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:  # pragma: no cover - called from the outermost frame
        return {}
    try:
        return collections.ChainMap(dict(frame.f_locals), frame.f_globals)
    finally:
        del frame


def _prepare(
    prompt: Any,
    models: str | BaseAIModel | Sequence[str | BaseAIModel],
    *,
    over: Any,
    namespace: Mapping[str, Any],
    system: str | None,
    samples: int,
    temperature: float | None,
    max_tokens: int | None,
    top_p: float | None,
    stop: Sequence[str] | None,
    seed: int | None,
    **options: Any,
) -> tuple[MultiModelOrchestrator, Any]:
    """Build the orchestrator from ``options`` and plan the run's requests."""
    orchestrator = MultiModelOrchestrator(models, **options)
    plan = orchestrator.plan(
        prompt,
        over=over,
        namespace=namespace,
        system=system,
        samples=samples,
        temperature=temperature,
        max_tokens=max_tokens,
        top_p=top_p,
        stop=stop,
        seed=seed,
    )
    return orchestrator, plan


def orchestrate(
    prompt: Any,
    models: str | BaseAIModel | Sequence[str | BaseAIModel],
    *,
    over: Any = None,
    system: str | None = None,
    samples: int = 1,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
    cache: bool = True,
    replay_only: bool = False,
    max_cost: float | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
    db: Any = None,
    stream: bool = True,
    on_event: Callable[[ev.Event], Any] | None = None,
    namespace: Mapping[str, Any] | None = None,
) -> Run:
    """Ask every model every item, concurrently; store and return the answers.

    Safe inside a running Jupyter kernel and in a plain script. The prompt is a
    Jinja2 template (``{{ column }}``) rendered over the rows of ``over`` (the
    columns are the only variables) or, without it, over the caller's
    variables; single braces such as JSON examples stay text.

    Args:
        prompt: a template string; a list of them (one item each); a
            conversation (a list of ``{"role", "content"}`` messages); or
            MT-Bench style ``{"turns": [...]}`` mappings, whose turns are asked
            one after the other with the model's own earlier answers.
        models: model specs (``"anthropic:claude-sonnet-4-5"``, ``"gpt-4o"``,
            ``"echo"`` …), model objects, or one comma-separated string.
        over: a DataFrame (or list of mappings): one item per row. Missing
            values render as an empty string, are recorded as null, and are
            reported in one warning per run.
        system: a system prompt (a template too). A conversation may instead
            start with its own ``{"role": "system"}`` message; giving both, or
            a system message anywhere but first, is a
            :class:`~maquina_nb.errors.TemplateError` before anything is sent
            (providers without a system role in their messages, such as
            Anthropic's, get it as their top-level system prompt).
        samples: answers per model per item, each cached on its own.
        temperature: sampling temperature; ``None`` leaves the provider's default.
        max_tokens: the output limit; ``None`` leaves the provider's default.
        top_p: nucleus sampling, 0 to 1; ``None`` leaves the provider's default.
        stop: a stop sequence or a list of them; the answer ends before the first.
        seed: a sampling seed, for the providers that take one (OpenAI and
            OpenAI-compatible servers; Anthropic has none, so it only keys the
            cache there).
        cache: reuse stored answers to identical requests (a reused answer
            has status ``cached`` and costs 0; truncated and failed answers are
            never reused).
        replay_only: answer only from the cache; raise
            :class:`~maquina_nb.errors.ReplayMissError` before any request if
            anything is missing.
        max_cost: refuse the run if its pre-flight estimate is above this many
            dollars (:class:`~maquina_nb.errors.BudgetExceededError`; the
            estimate assumes 1,024 output tokens per answer where
            ``max_tokens`` is not set). While the run goes, each request first
            reserves its worst-case cost (``max_tokens``, else the model's
            output limit, see :mod:`maquina_nb.orchestrator.budget`); a request
            that does not fit in what is left is not sent and is recorded as
            ``skipped``, and ``Run.notice`` says the budget stopped the run.
        timeout: seconds one response may take before it fails as ``timeout``.
        concurrency: requests in flight at once across all models (default
            :data:`maquina_nb.config.DEFAULT_CONCURRENCY`, 32).
        name: a name for the run.
        tags: labels to find the run by later (a single string is one tag).
        db: database URL, SQLAlchemy Engine or Repository (default
            ``MAQUINA_DB_URL``, else ``maquina.db`` in the working directory).
        stream: stream from models that can (text deltas reach ``on_event``).
        on_event: called with each run event, in order, from a delivery
            thread of the run's own, so it must be thread-safe; a slow one
            delays its own events, never the requests. Outside notebooks a progress bar shows on stderr
            (``MAQUINA_NB_PROGRESS=0`` turns it off).
        namespace: the variables a template may use when there is no
            ``over`` (default: the caller's locals and globals;
            ``%%orchestrate`` passes the notebook's namespace). With ``over``
            only the row's columns are variables, so a notebook variable can
            never fill in for a missing column; a column whose name is not an
            identifier is ``{{ row["my col"] }}``.

    Returns:
        The finished :class:`Run`; ``run.to_pandas()`` gives one row per response.

    Raises:
        TemplateError: the template uses an undefined variable (raised before
            anything is sent, naming the variable and the available columns),
            fails to render on some row (``{{ 1/0 }}``, a sandbox bound,
            a prompt over 1,000,000 characters), renders to an empty prompt,
            or the conversation has a misplaced system message.
        ConfigurationError: a bad argument, such as a temperature outside 0
            to 2, ``max_tokens`` below 1, or tags that are not strings (a
            single string is one tag).
        UnknownModelError: a model spec is unknown.
        ReplayMissError: with ``replay_only``, some request has no stored answer.
        BudgetExceededError: the estimate is above ``max_cost``.
        KeyboardInterrupt: the call was interrupted (Ctrl-C or a kernel
            interrupt). In-flight responses are stored as ``cancelled`` with
            their partial text and finished ones are kept first; the cancelled
            :class:`Run` is on the exception's ``run`` attribute and in
            :func:`last_run`. Its message says how many responses finished,
            and its traceback ends at this call. Interrupted before the run
            started (while planning or recording it), nothing is stored and
            ``run`` is ``None``.
    """
    try:
        orchestrator, plan = _prepare(
            prompt,
            models,
            over=over,
            namespace=namespace if namespace is not None else _caller_namespace(1),
            system=system,
            samples=samples,
            temperature=temperature,
            max_tokens=max_tokens,
            top_p=top_p,
            stop=stop,
            seed=seed,
            db=db,
            concurrency=concurrency,
            cache=cache,
            replay_only=replay_only,
            max_cost=max_cost,
            timeout=timeout,
            stream=stream,
            on_event=on_event,
        )
    except KeyboardInterrupt:
        # Planning stores nothing: say so instead of showing where it stopped.
        raise interrupt_error(None) from None

    try:
        return orchestrator.run_plan(plan, name=name, tags=tags)
    except KeyboardInterrupt as interrupt:
        # Shown from this frame: the user's call, not the machinery under it.
        raise interrupt.with_traceback(None) from None


# NOTE: the keywords repeat orchestrate()'s on purpose: written out, every IDE
# shows them with their types (a ParamSpec copy is lost on static Jedi, which
# pylsp and jupyterlab-lsp use). tests/orchestrator/test_api_signatures.py keeps
# the two signatures and their hand-over to _prepare in step.
async def aorchestrate(
    prompt: Any,
    models: str | BaseAIModel | Sequence[str | BaseAIModel],
    *,
    over: Any = None,
    system: str | None = None,
    samples: int = 1,
    temperature: float | None = None,
    max_tokens: int | None = None,
    top_p: float | None = None,
    stop: Sequence[str] | None = None,
    seed: int | None = None,
    cache: bool = True,
    replay_only: bool = False,
    max_cost: float | None = None,
    timeout: float | None = None,
    concurrency: int | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
    db: Any = None,
    stream: bool = True,
    on_event: Callable[[ev.Event], Any] | None = None,
    namespace: Mapping[str, Any] | None = None,
) -> Run:
    """The async twin of :func:`orchestrate`, for code that owns an event loop.

    Called from any loop (a notebook's top-level ``await``, an application's
    loop), the work still runs on maquina_nb's background loop and is awaited
    from there, so SDK clients stay on one loop. Cancelling the awaiting task
    cancels the run the same way an interrupt does. Arguments, return value and
    errors are those of :func:`orchestrate`.
    """
    if namespace is None:
        namespace = _caller_namespace(1)

    # Planning opens the database and renders templates: off the caller's loop.
    orchestrator, plan = await asyncio.to_thread(
        _prepare,
        prompt,
        models,
        over=over,
        namespace=namespace,
        system=system,
        samples=samples,
        temperature=temperature,
        max_tokens=max_tokens,
        top_p=top_p,
        stop=stop,
        seed=seed,
        db=db,
        concurrency=concurrency,
        cache=cache,
        replay_only=replay_only,
        max_cost=max_cost,
        timeout=timeout,
        stream=stream,
        on_event=on_event,
    )
    if in_background_loop():
        return await orchestrator.execute(plan, name=name, tags=tags)

    # A cancelled concurrent future reports "done" before the run has stored
    # its partial rows; this event says when the cleanup really finished.
    finished = threading.Event()

    async def _tracked() -> Run:
        try:
            return await orchestrator.execute(plan, name=name, tags=tags)
        finally:
            finished.set()

    future = submit(_tracked())
    try:
        with _cancel_on_kernel_interrupt():
            return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        # Cancelling our await cancelled the run; wait (bounded) for its cleanup.
        await asyncio.to_thread(finished.wait, _CANCEL_GRACE_S)
        raise


@contextlib.contextmanager
def _cancel_on_kernel_interrupt() -> Iterator[None]:
    """While a kernel cell awaits us, let an interrupt cancel the awaiting task.

    NOTE: ipykernel 7.4 installs a SIGINT handler for awaiting cells that
    schedules the cancellation on an IO loop that does not run while the cell
    does, so an interrupt never arrives (even ``await asyncio.sleep(30)`` runs
    to the end). Inside a kernel's main thread we cancel the task ourselves,
    then still call the kernel's handler.
    """
    from maquina_nb.orchestrator.dispatch import in_kernel

    if threading.current_thread() is not threading.main_thread() or not in_kernel():
        yield
        return
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)

    def _interrupt(signum: int, frame: Any) -> None:
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)

    signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
