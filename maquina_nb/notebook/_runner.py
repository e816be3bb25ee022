"""What one ``%%orchestrate`` cell does once its line is parsed.

Steps: check the input (before anything is written), open the database, show
the comparison widget, run the orchestrator (waiting, or in the background),
and leave the run's DataFrame in the ``-o`` variable. Mistakes the user can fix
become exactly ``UsageError`` with one line; nothing is stored for them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from maquina_nb._redact import get_logger, redact
from maquina_nb.notebook._args import OrchestrateOptions, expand_model_refs
from maquina_nb.notebook._database import open_repository

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

__all__ = [
    "TURN_MARKER",
    "cancel_background",
    "last_widget",
    "run_cell",
    "split_turns",
    "wait_background",
]

logger = get_logger(__name__)

#: A Jinja2 comment on its own that separates the user turns of a multi-turn
#: item (MT-Bench style): each turn is asked after the model answered the one
#: before, with its own answers in the conversation.
TURN_MARKER = "{# turn #}"
_TURN_SPLIT = re.compile(r"^[ \t]*\{#-?\s*turn\s*-?#\}[ \t]*$", re.MULTILINE)


@dataclass(eq=False)
class _Background:
    """One ``--background`` run, from its start until ``-o`` is settled."""

    out: str
    settled: threading.Event = field(default_factory=threading.Event)
    """Set once the run has ended, ``-o`` holds its frame (or never will) and
    the table shows the end."""
    future: concurrent.futures.Future[Any] | None = None
    task: asyncio.Task[Any] | None = None
    stop_asked: bool = False

    def stop(self) -> None:
        """Cancel the run; call on the background loop (no race with its start)."""
        self.stop_asked = True
        if self.task is not None:
            self.task.cancel()


_state_lock = threading.Lock()
_last_widget: Any = None
_background: list[_Background] = []


class CellCancelled(KeyboardInterrupt):
    """An interrupted ``%%orchestrate`` cell; IPython shows only its message."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


@dataclass
class _Prepared:
    prompt: Any
    models: tuple[str, ...]
    over: Any
    namespace: Mapping[str, Any]
    plan: Any


def split_turns(body: str) -> str | dict[str, list[str]]:
    """Return the body as one template, or as ``{"turns": [...]}`` when it has markers."""
    parts = [part.strip() for part in _TURN_SPLIT.split(body)]
    if len(parts) == 1:
        return body.strip()
    if not all(parts):
        raise UsageError(
            f"A turn of the %%orchestrate cell is empty; write text between the "
            f"{TURN_MARKER} lines, or remove the extra marker."
        )
    return {"turns": parts}


def last_widget() -> Any:
    """Return the comparison widget the last ``%%orchestrate`` cell displayed."""
    with _state_lock:
        return _last_widget


def _prepare(
    options: OrchestrateOptions, body: str, user_ns: Mapping[str, Any]
) -> _Prepared:
    """Check everything the user can get wrong, before anything is written."""
    from maquina_nb.errors import (
        ConfigurationError,
        ReplayMissError,
        UnknownModelError,
    )
    from maquina_nb.orchestrator.plan import make_plan

    # Step 1: an empty body, the model list and the --over variable.
    if not body.strip():
        raise UsageError(
            "The %%orchestrate cell has no prompt; write the prompt template in the "
            "cell body below the magic line, e.g. Answer briefly: {{ question }}"
        )
    models = expand_model_refs(options.models, user_ns)
    over = None
    if options.over is not None:
        if options.over not in user_ns:
            raise UsageError(
                f"--over {options.over} names no variable in the notebook; create the "
                "DataFrame first, or check the spelling."
            )
        over = user_ns[options.over]
        if not (hasattr(over, "columns") and hasattr(over, "to_dict")):
            raise UsageError(
                f"--over {options.over} is a {type(over).__name__}, not a pandas "
                "DataFrame; pass the name of a DataFrame whose columns the template uses."
            )
    prompt = split_turns(body)

    # Step 2: plan without sending: unknown models and template variables surface here.
    try:
        plan = make_plan(
            prompt,
            list(models),
            over=over,
            namespace=user_ns,
            system=options.system,
            samples=options.samples,
            parameters=_parameters(options),
            warn_missing=False,  # orchestrate() plans again and warns then
        )
    except (ConfigurationError, UnknownModelError, ReplayMissError) as exc:
        raise UsageError(str(exc)) from None
    return _Prepared(
        prompt=prompt, models=models, over=over, namespace=user_ns, plan=plan
    )


def _widget_items(plan: Any) -> list[dict[str, Any]]:
    """One ``{"item_index", "prompt"}`` per item: its user turns, as the table shows them."""
    items = []
    for item in plan.items:
        turns = [m["content"] for m in item.messages if m["role"] == "user"]
        items.append({"item_index": item.item_index, "prompt": "\n\n".join(turns)})
    return items


def _parameters(options: OrchestrateOptions) -> dict[str, Any]:
    values = {
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "top_p": options.top_p,
        "seed": options.seed,
        "stop": list(options.stop) if options.stop else None,
    }
    return {name: value for name, value in values.items() if value is not None}


def _orchestrate_kwargs(
    options: OrchestrateOptions, prepared: _Prepared, on_event: Any
) -> dict[str, Any]:
    return {
        "over": prepared.over,
        "namespace": prepared.namespace,
        "system": options.system,
        "samples": options.samples,
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "top_p": options.top_p,
        "seed": options.seed,
        "stop": list(options.stop) if options.stop else None,
        "cache": options.cache,
        "replay_only": options.replay_only,
        "max_cost": options.max_cost,
        "timeout": options.timeout,
        "concurrency": options.concurrency,
        "name": options.name,
        "tags": options.tags,
        "db": options.db,
        "stream": options.stream,
        "on_event": on_event,
    }


def run_cell(shell: Any, options: OrchestrateOptions, body: str) -> None:
    """Run one ``%%orchestrate`` cell: validate, display, orchestrate, store.

    Raises:
        UsageError: for input the user can fix (nothing is written).
        CellCancelled: (a ``KeyboardInterrupt``) the run was interrupted; what
            finished is stored, the partial DataFrame is in the ``-o`` variable,
            and the one-line message says so (no traceback in the notebook).
    """
    from IPython.display import display

    from maquina_nb.errors import (
        BudgetExceededError,
        ConfigurationError,
        ReplayMissError,
        UnknownModelError,
    )
    from maquina_nb.notebook.widget import ComparisonWidget

    # Step 1: validate and open the database; then show the (empty) table.
    # IPython's own names (In, Out, exit, get_ipython …) are not template variables.
    hidden = getattr(shell, "user_ns_hidden", {})
    namespace = {k: v for k, v in shell.user_ns.items() if k not in hidden}
    prepared = _prepare(options, body, namespace)
    judge = _resolve_judge(options)
    repository = open_repository(options.db)
    widget = ComparisonWidget(
        None,
        prepared.plan.models,
        _widget_items(prepared.plan),
        repository=repository,
        blind=options.blind,
        max_cost=options.max_cost,
        samples=options.samples,
        name=options.name,
    )
    # The display id lets the plain-text/HTML fallback saved with the notebook be
    # replaced by the final table once the run ends (the widget view updates live).
    handle = display(widget, display_id=True)  # type: ignore[no-untyped-call]
    global _last_widget
    with _state_lock:
        _last_widget = widget
    kwargs = _orchestrate_kwargs(options, prepared, widget.handle_event)

    # Step 2: in the background, return now and store the frame when done.
    if options.background:
        _start_background(shell, options, prepared, kwargs, widget, handle)
        return

    # Step 3: otherwise wait; an interrupt cancels, and keeps what finished.
    from maquina_nb.orchestrator import orchestrate

    try:
        run = orchestrate(prepared.prompt, list(prepared.models), **kwargs)
    except (
        ConfigurationError,
        UnknownModelError,
        ReplayMissError,
        BudgetExceededError,
    ) as exc:
        # Refused before anything was sent (replay miss, budget): the table says
        # why instead of showing rows that will never be sent.
        _refuse(handle, widget, str(exc))
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt as interrupt:
        # orchestrate() stored what finished; keep the partial frame, then end
        # the cell with one line (the machinery's frames help nobody here).
        from maquina_nb.orchestrator.engine import cancel_message

        cancelled = getattr(interrupt, "run", None)
        if cancelled is not None:
            _store(shell, options, cancelled)
        _refresh(handle, widget)
        raise CellCancelled(
            cancel_message(cancelled, options.out if cancelled else None)
        ) from None
    _store(shell, options, run)
    _refresh(handle, widget)
    if judge is not None:
        _judge(run, judge, widget)


def _resolve_judge(options: OrchestrateOptions) -> Any:
    """Check ``--judge`` before anything is sent; return the judge or ``None``."""
    if options.judge is None:
        return None

    from maquina_nb.analysis.judge import Judge
    from maquina_nb.errors import ConfigurationError, UnknownModelError
    from maquina_nb.providers import resolve_model

    try:
        model = resolve_model(options.judge)
    except (ConfigurationError, UnknownModelError) as exc:
        raise UsageError(f"--judge {options.judge}: {exc}") from None
    return Judge(model, mode=options.judge_mode)  # type: ignore[arg-type]


def _judge(run: Any, judge: Any, widget: Any) -> None:
    """Let the judge decide every item of ``run``; a failure is shown, not raised."""
    from IPython.display import display

    from maquina_nb.analysis.judge import judge_run

    try:
        decisions = judge_run(run, judge)
    except Exception as exc:
        # NOTE: the run itself is stored and fine; the judge is an extra step.
        logger.warning("the judge %s failed: %s", judge.spec, redact(str(exc)))
        widget.state.add_notice("error", f"The judge failed: {redact(str(exc))}")
        return
    display(decisions)  # type: ignore[no-untyped-call]


def _refuse(handle: Any, widget: Any, message: str) -> None:
    """Make the table of a refused run say why, live and in the saved fallback."""
    try:
        widget.refuse(redact(message))
        _refresh(handle, widget)
    except Exception:
        logger.exception("could not show why the run was refused")


def _refresh(handle: Any, widget: Any) -> None:
    """Re-send the cell's display so the saved fallback shows the finished table."""
    if handle is None:
        return
    try:
        widget.flush()
        handle.update(widget)
    except Exception:
        logger.exception("could not refresh the table's saved display")


def _store(shell: Any, options: OrchestrateOptions, run: Any) -> None:
    frame = run.to_pandas()
    shell.user_ns[options.out] = frame
    logger.debug("run %s stored in %s (%d rows)", run.id, options.out, len(frame))


def _start_background(
    shell: Any,
    options: OrchestrateOptions,
    prepared: _Prepared,
    kwargs: dict[str, Any],
    widget: Any,
    handle: Any,
) -> None:
    from maquina_nb import _loop
    from maquina_nb.orchestrator import last_run

    entry = _Background(options.out)
    earlier = last_run()

    async def _run_and_store() -> Any:
        import asyncio

        from maquina_nb.orchestrator import aorchestrate

        entry.task = asyncio.current_task()
        try:
            if entry.stop_asked:
                raise asyncio.CancelledError
            run = await aorchestrate(prepared.prompt, list(prepared.models), **kwargs)
        except asyncio.CancelledError:
            # %maquina stop: the run has stored what finished; -o gets it, as
            # after an interrupt of a cell that waits.
            await asyncio.to_thread(_store_stopped, shell, options, widget, earlier)
            raise
        await asyncio.to_thread(_store_quietly, shell, options, run)
        return run

    with _state_lock:
        _background.append(entry)
    entry.future = _loop.submit(_run_and_store())

    def _done(finished: concurrent.futures.Future[Any]) -> None:
        try:
            _show_end(finished, widget, handle)
        finally:
            with _state_lock:
                _background.remove(entry)
            entry.settled.set()

    entry.future.add_done_callback(_done)


def _show_end(
    finished: concurrent.futures.Future[Any], widget: Any, handle: Any
) -> None:
    """Make the table of an ended background run say how it ended."""
    if finished.cancelled():
        logger.info("background run %s cancelled", widget.run_id)
        _refresh(handle, widget)
        return
    error = finished.exception()
    if isinstance(error, _refusal_types()):
        _refuse(handle, widget, str(error))
        return
    if error is not None:
        # NOTE: nobody waits on this future, so the error is logged and shown
        # in the table; otherwise it would vanish.
        logger.error("background run failed: %s", redact(str(error)))
        widget.state.add_notice("error", f"The run failed: {redact(str(error))}")
    _refresh(handle, widget)


def _store_quietly(shell: Any, options: OrchestrateOptions, run: Any) -> None:
    try:
        _store(shell, options, run)
    except Exception:
        logger.exception("could not store the background run's DataFrame")


def _store_stopped(
    shell: Any, options: OrchestrateOptions, widget: Any, earlier: Any
) -> None:
    """Put a stopped background run's frame (what finished) in its ``-o`` variable."""
    from maquina_nb.orchestrator import last_run

    # The run ends by remembering itself; another run ending at the same time
    # could be remembered instead, so the table's run id must agree.
    run = last_run()
    if run is None or run is earlier or widget.run_id not in (None, run.id):
        logger.info(
            "background run %s stopped before it was stored; %s is not set",
            widget.run_id,
            options.out,
        )
        return
    _store_quietly(shell, options, run)


def _refusal_types() -> tuple[type[Exception], ...]:
    from maquina_nb.errors import (
        BudgetExceededError,
        ConfigurationError,
        ReplayMissError,
        UnknownModelError,
    )

    return (BudgetExceededError, ConfigurationError, ReplayMissError, UnknownModelError)


def wait_background(timeout: float | None = None) -> None:
    """Wait until every background run started by ``%%orchestrate`` has finished.

    A finished run's ``-o`` variable is filled by the time this returns.
    """
    with _state_lock:
        pending = list(_background)
    _wait_settled(pending, timeout)


def cancel_background(timeout: float = 10.0) -> list[str]:
    """Cancel every running ``--background`` run; return their ``-o`` names.

    As with an interrupt, what finished is kept, the unfinished responses are
    stored as ``cancelled``, and the ``-o`` variable holds the run's frame of
    what finished (unless the run was stopped before it was recorded). Waits
    up to ``timeout`` seconds for that.
    """
    from maquina_nb import _loop

    with _state_lock:
        pending = [
            entry
            for entry in _background
            if entry.future is not None and not entry.future.done()
        ]
    loop = _loop.get_loop()
    for entry in pending:
        loop.call_soon_threadsafe(entry.stop)
    _wait_settled(pending, timeout)
    return [entry.out for entry in pending]


def _wait_settled(entries: list[_Background], timeout: float | None) -> None:
    """Wait (up to ``timeout`` in all) until each run's ``-o`` is settled."""
    import time

    deadline = None if timeout is None else time.monotonic() + timeout
    for entry in entries:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        entry.settled.wait(left)
