"""The comparison widget: items as rows, models as columns, live text and feedback.

One anywidget DOM widget shows a whole run (DESIGN.md decision 3). Run events reach
:meth:`ComparisonWidget.handle_event` from the background loop thread; it only
updates :class:`~maquina_nb.notebook._state.ComparisonState` under a lock and
never sends. A flusher thread drains the changes into at most
:attr:`ComparisonWidget.UPDATES_PER_SECOND` comm messages a second however many
streams run (C08), renders finished answers to sanitized HTML between sends, and
sends the whole state once more when the run ends. Clicks arrive as custom messages
from ``static/widget.js``; each is stored through the
:class:`~maquina_nb.db.Repository` at once and reflected back; a failing click is
logged with ``logger.exception`` and shown above the table.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import anywidget
import traitlets

from maquina_nb._redact import get_logger
from maquina_nb.notebook._cells import DEFAULT_DISPLAY_CAP
from maquina_nb.notebook._state import ComparisonState
from maquina_nb.notebook.render import render_markdown
from maquina_nb.notebook.static_html import (
    MAX_STATIC_ITEMS,
    render_static_html,
    render_static_text,
)
from maquina_nb.orchestrator.events import Event

if TYPE_CHECKING:
    from maquina_nb.db import Repository

__all__ = ["ComparisonWidget"]

logger = get_logger(__name__)

_STATIC = pathlib.Path(__file__).parent / "static"
_MAX_PAGE_SIZE = 100
_IDLE_EXIT_S = 2.0
_RENDER_BUDGET_S = 0.03
# Custom messages that reach the page before its listener exists are lost, so the
# streaming cells go whole this long after the comm opened (see request_keyframe).
_KEYFRAMES_S = (1.0, 3.0)
_FEEDBACK_KINDS = ("thumbs", "rating", "comment")
_COMMENT_CAP = 10_000


class ComparisonWidget(anywidget.AnyWidget):
    """Side-by-side table of one run's answers, with live streaming and feedback.

    Args:
        run_id: The run's id (``None`` to take it from the first ``RunStarted``).
        models: Model specs, in column order.
        items: One prompt string, or a mapping with ``prompt``, per item.
        repository: Where clicks are stored; without one, feedback stays in the
            widget and a notice says so.
        blind: Hide model names (and shuffle their columns per item) until the
            rater presses "Reveal models".
        page_size: Items per page (1 to 100).
        max_cost: The run's budget in USD, shown against the spend.
        estimated_cost: The pre-flight cost estimate in USD.
        rater: Who gives feedback; defaults to :func:`maquina_nb.config.rater_name`.
        samples: Samples per item and model.
        name: The run's name, for the header.
        display_cap: Characters of each answer sent to the page; longer answers
            show a "Show full text" button and stay whole in the database.
    """

    UPDATES_PER_SECOND: ClassVar[float] = 20.0
    """Ceiling on state messages a second while text streams (C08)."""

    _esm = _STATIC / "widget.js"
    _css = _STATIC / "widget.css"

    run = traitlets.Dict().tag(sync=True)
    items: traitlets.List[Any] = traitlets.List().tag(sync=True)
    cells = traitlets.Dict().tag(sync=True)
    page_size = traitlets.Int(25).tag(sync=True)
    rater = traitlets.Unicode("").tag(sync=True)
    stored = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        run_id: str | None,
        models: Sequence[str],
        items: Sequence[Any],
        *,
        repository: Repository | None = None,
        blind: bool = False,
        page_size: int = 25,
        max_cost: float | None = None,
        estimated_cost: float | None = None,
        rater: str | None = None,
        samples: int = 1,
        name: str | None = None,
        display_cap: int = DEFAULT_DISPLAY_CAP,
        _state: ComparisonState | None = None,
    ) -> None:
        if rater is None:
            from maquina_nb.config import rater_name

            rater = rater_name()

        # The state must exist before ipywidgets opens the comm: get_state reads it.
        self._state = _state or ComparisonState(
            run_id,
            models,
            items,
            samples=samples,
            blind=blind,
            display_cap=display_cap,
            max_cost=max_cost,
            estimated_cost=estimated_cost,
            name=name,
        )
        self._repository = repository
        self._send_lock = threading.RLock()
        self._flusher_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closing = threading.Event()
        self._last_send = 0.0
        self._keyframes = list(_KEYFRAMES_S)
        self._warned_unstored = False
        self.messages_sent = 0
        """Comm messages this widget has sent after opening (for tests and benchmarks)."""

        super().__init__(
            page_size=min(max(int(page_size), 1), _MAX_PAGE_SIZE),
            rater=rater,
            stored=repository is not None,
        )
        self._state.take_patch()  # the opening state already holds everything
        self._opened_at = time.monotonic()
        self.on_msg(self._on_custom_msg)
        if self._state.has_work:
            self._ensure_flusher()

    # -- public API ----------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        """The id of the run this table shows."""
        run_id: str | None = self._state.header["run_id"]
        return run_id

    @property
    def state(self) -> ComparisonState:
        """The table's state (cells, header, picks); read it under ``state.lock``."""
        return self._state

    def handle_event(self, event: Event) -> None:
        """Apply one run event; safe to call from any thread, never blocks on I/O.

        Text deltas are coalesced: the page gets at most
        :attr:`UPDATES_PER_SECOND` messages a second, and the whole state once
        more when ``RunFinished`` arrives. Events of another run are ignored.
        """
        try:
            if self._state.apply(event):
                self._ensure_flusher()
        except Exception as exc:
            # on_event runs on the loop thread, where a raised error would go unseen.
            logger.exception(
                "comparison widget could not apply a %s event", type(event).__name__
            )
            self._state.add_notice(
                "error", f"The table could not show an update: {exc}"
            )
            self._ensure_flusher()

    def refuse(self, message: str) -> None:
        """Show that the run was refused before anything was sent, and why.

        For a run refused by its budget (or a replay miss) before it started: the
        table shows ``message`` instead of rows that will never be sent. Re-display
        the widget (``update_display``) so the saved fallback says so too.
        """
        self._state.refuse(message)
        self._ensure_flusher()

    def flush(self) -> bool:
        """Send what changed now (rendering no Markdown); return whether anything went."""
        return self._send_patch(render=False)

    def close(self) -> None:
        """Stop the flusher and close the comm."""
        self._closing.set()
        with self._send_lock:
            super().close()

    @classmethod
    def from_run(
        cls,
        repository: Repository,
        run_id: str,
        *,
        blind: bool = False,
        page_size: int = 25,
        rater: str | None = None,
        display_cap: int = DEFAULT_DISPLAY_CAP,
    ) -> ComparisonWidget:
        """Redisplay a stored run with its responses, feedback and picks.

        Raises:
            StoreError: The repository has no run ``run_id``.
        """
        from maquina_nb.notebook._stored import load_stored_run

        stored = load_stored_run(repository, run_id)
        state = ComparisonState(
            run_id,
            stored.models,
            stored.items,
            samples=stored.samples,
            blind=blind,
            display_cap=display_cap,
            max_cost=stored.max_cost_usd,
            estimated_cost=stored.estimated_cost_usd,
            name=stored.name,
        )
        state.header["status"] = stored.status
        for event in stored.events:
            state.apply(event)

        # Feedback and picks name response ids; the cells know theirs by now.
        keys = state.keys_by_response_id()
        for response_id, values in stored.feedback.items():
            if response_id in keys:
                state.set_feedback(keys[response_id], **values)
        for item, response_id in stored.decisions.items():
            if response_id in keys:
                state.set_decision(item, keys[response_id])
        return cls(
            run_id,
            stored.models,
            stored.items,
            repository=repository,
            page_size=page_size,
            rater=rater,
            _state=state,
        )

    # -- ipywidgets hooks ----------------------------------------------------

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """Return the widget state, reading run, items and cells live from the table."""
        state: dict[str, Any] = super().get_state(key=key, drop_defaults=drop_defaults)
        live = {"run", "items", "cells"} & state.keys()
        if live:
            snapshot = self._state.snapshot()
            for name in live:
                state[name] = snapshot[name]
        return state

    def _repr_mimebundle_(
        self, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        # Plain text and sanitized HTML ride along with the widget view, so nbconvert,
        # GitHub and a notebook opened without widget state still show the answers.
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle

        # The static table shows Markdown the flusher has not rendered yet, too.
        for key, text in self._state.unrendered(MAX_STATIC_ITEMS):
            self._state.set_html(key, text, render_markdown(text))
        if self._state.has_work:
            self._ensure_flusher()
        snapshot = self._state.snapshot()
        data = {
            **data,
            "text/plain": render_static_text(snapshot),
            "text/html": render_static_html(snapshot),
        }
        return data, metadata

    # -- sending -------------------------------------------------------------

    def _ensure_flusher(self) -> None:
        with self._flusher_lock:
            if self._flusher is not None or self._closing.is_set():
                return
            self._flusher = threading.Thread(
                target=self._run_flusher, name="maquina-nb-widget-flush", daemon=True
            )
            self._flusher.start()

    def _run_flusher(self) -> None:
        interval = 1.0 / self.UPDATES_PER_SECOND
        idle_since = time.monotonic()
        try:
            while not self._closing.is_set():
                # Keep at least one interval between two sends, whoever sent last.
                delay = max(self._last_send + interval - time.monotonic(), 0.005)
                if self._closing.wait(delay):
                    return
                if (
                    self._keyframes
                    and time.monotonic() - self._opened_at >= self._keyframes[0]
                ):
                    self._keyframes.pop(0)
                    self._state.request_keyframe()
                if self._send_patch(render=True) or self._state.has_work:
                    idle_since = time.monotonic()
                    continue

                with self._flusher_lock:
                    finished = self._state.header["finished"]
                    if not self._state.has_work and (
                        finished or time.monotonic() - idle_since > _IDLE_EXIT_S
                    ):
                        self._flusher = None
                        return
        except Exception:
            logger.exception("comparison widget stopped sending updates")
        finally:
            with self._flusher_lock:
                if self._flusher is threading.current_thread():
                    self._flusher = None

    def _render_pending(self) -> None:
        deadline = time.monotonic() + _RENDER_BUDGET_S
        while time.monotonic() < deadline:
            batch = self._state.next_to_render(1)
            if not batch:
                return
            for key, text in batch:
                self._state.set_html(key, text, render_markdown(text))

    def _send_patch(self, *, render: bool, ack: Any = None) -> bool:
        with self._send_lock:
            if self.comm is None:
                self._closing.set()
                return False
            if render:
                self._render_pending()
            patch = self._state.take_patch()
            if patch is None and ack is None:
                return False

            if patch is None:
                self.send({"kind": "ack", "ack": ack})
            elif patch["kind"] == "sync":
                self.send_state(["run", "items", "cells"])
                if ack is not None:
                    self.send({"kind": "ack", "ack": ack})
                    self.messages_sent += 1
            else:
                self.send({**patch, "ack": ack})
            self.messages_sent += 1
            self._last_send = time.monotonic()
            return True

    # -- clicks --------------------------------------------------------------

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, Mapping) else None
        ack = content.get("req") if isinstance(content, Mapping) else None
        try:
            handler = self._handlers.get(str(kind))
            if handler is None:
                raise ValueError(
                    f"The comparison table got an unknown message kind {kind!r}."
                )
            handler(self, content)
        except Exception as exc:
            # IPython would drop an exception raised in a comm callback without a
            # trace, so it is logged here and shown above the table.
            logger.exception("comparison widget: handling a %r click failed", kind)
            self._state.add_notice("error", f"Could not save that ({kind}): {exc}")
        self._send_patch(render=False, ack=ack)

    def _stored_id(self, key: str) -> str | None:
        slot = self._state.slot(key)
        if self._repository is None:
            if not self._warned_unstored:
                self._warned_unstored = True
                self._state.add_notice(
                    "warning",
                    "No database is attached: feedback stays in this table only.",
                )
            return None
        if slot.response_id is None:
            raise ValueError(
                f"The response in cell {key!r} is not stored yet; wait until it finishes."
            )
        return slot.response_id

    def _on_feedback(self, content: Mapping[str, Any]) -> None:
        key, kind, value = (
            str(content.get("key")),
            content.get("type"),
            content.get("value"),
        )
        if kind not in _FEEDBACK_KINDS:
            raise ValueError(
                f"Unknown feedback type {kind!r}; use one of {', '.join(_FEEDBACK_KINDS)}."
            )
        response_id = self._stored_id(key)

        if kind == "thumbs":
            if value not in (1, -1):
                raise ValueError(f"A thumbs value must be 1 or -1, not {value!r}.")
            stored: dict[str, Any] = {"thumbs": value}
            args: tuple[Any, ...] = ("thumbs", value)
            extra: dict[str, Any] = {}
        elif kind == "rating":
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= 5
            ):
                raise ValueError(
                    f"A rating must be a whole number from 1 to 5, not {value!r}."
                )
            stored, args, extra = {"rating": value}, ("rating", value), {}
        else:
            comment = str(value or "")[:_COMMENT_CAP]
            stored, args, extra = (
                {"comment": comment},
                ("comment", None),
                {"comment": comment},
            )

        if response_id is not None and self._repository is not None:
            self._repository.record_feedback(
                response_id, *args, rater=self.rater, **extra
            )
        self._state.set_feedback(key, **stored)

    def _on_pick(self, content: Mapping[str, Any]) -> None:
        key = str(content.get("key"))
        slot = self._state.slot(key)
        response_id = self._stored_id(key)
        if response_id is not None and self._repository is not None and self.run_id:
            self._repository.record_decision(
                self.run_id,
                slot.item,
                "human",
                winner_response_id=response_id,
                decided_by=self.rater,
                details={"blind": self._state.blind, "revealed": self._state.revealed},
            )
        self._state.set_decision(slot.item, key)

    def _on_reveal(self, _content: Mapping[str, Any]) -> None:
        self._state.reveal()

    def _on_show_full(self, content: Mapping[str, Any]) -> None:
        key = str(content.get("key"))
        text = self._state.full_text(key)
        with self._send_lock:
            self.send({"kind": "full", "key": key, "text": text})
            self.messages_sent += 1

    def _on_render(self, content: Mapping[str, Any]) -> None:
        keys = content.get("keys") or []
        self._state.prioritize([str(key) for key in keys][: _MAX_PAGE_SIZE * 20])
        self._ensure_flusher()

    _handlers: ClassVar[dict[str, Any]] = {
        "feedback": _on_feedback,
        "pick": _on_pick,
        "reveal": _on_reveal,
        "show_full": _on_show_full,
        "render": _on_render,
    }
