"""The comparison table's state, kept apart from ipywidgets so it can be tested alone.

:class:`ComparisonState` holds one *cell* per response (item x model x sample) as a
JSON-ready dict, the run header and the per-item picks. Run events are applied
under a lock from any thread; :meth:`ComparisonState.take_patch` drains what
changed since the last call into one message for the page. Streaming text travels
as appends tagged with start and end offsets (counted in Python characters), so the
page can tell a gap from an overlap; a finished response always carries its whole
display text, which repairs anything a page missed.

Cell keys are ``"<item>-<position>-<sample>"``. In blind mode every answer of an
item (each model's each sample) gets a column of its own, labelled "Response A",
"Response B" … in a per-item shuffle, and the key's sample part is 0: neither the
key, the label nor the column tells the model or the sample; both enter a cell
only once the rater reveals them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from maquina_nb._redact import get_logger, redact
from maquina_nb.notebook._cells import (
    DEFAULT_DISPLAY_CAP,
    ENDED,
    ERROR_CAP,
    MAX_NOTICES,
    MAX_TURNS,
    PROMPT_CAP,
    Slot,
    final_status,
    new_cell,
    prompt_of,
    turns_of,
)
from maquina_nb.notebook._drain import TableDrain
from maquina_nb.orchestrator.events import (
    Event,
    ResponseFailed,
    ResponseFinished,
    ResponseStarted,
    RunFinished,
    RunStarted,
    TextDelta,
)

__all__ = ["ComparisonState", "blind_label"]

logger = get_logger(__name__)


def blind_label(position: int) -> str:
    """Return the label of column ``position`` of a blind table (A to Z, then AA)."""
    letters = ""
    number = position + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return f"Response {letters}"


class ComparisonState(TableDrain):
    """Cells, header and picks of one run, safe to update from several threads.

    Args:
        run_id: The run's id (``None`` until a ``RunStarted`` names it).
        models: Model specs, in column order.
        items: Per item a prompt string or a mapping with ``prompt`` (and
            optionally ``item_index``), as in ``RunStarted.items``.
        samples: Samples per item and model.
        blind: Hide model names until :meth:`reveal`.
        display_cap: Characters of each answer sent to the page.
        max_cost: The run's budget in USD, shown against the spend.
        estimated_cost: The pre-flight estimate in USD.
        name: The run's name.
    """

    def __init__(
        self,
        run_id: str | None,
        models: Sequence[str],
        items: Sequence[Any],
        *,
        samples: int = 1,
        blind: bool = False,
        display_cap: int = DEFAULT_DISPLAY_CAP,
        max_cost: float | None = None,
        estimated_cost: float | None = None,
        name: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.display_cap = max(1, int(display_cap))
        self.blind = bool(blind)
        self.revealed = False
        self.decisions: dict[str, str] = {}
        self.header: dict[str, Any] = {
            "run_id": run_id,
            "name": name,
            "status": "pending",
            "blind": self.blind,
            "revealed": False,
            "max_cost_usd": max_cost,
            "estimated_cost_usd": estimated_cost,
            "elapsed_s": 0.0,
            "finished": False,
            "notices": [],
            "seq": 0,
            "display_cap": self.display_cap,
        }
        self._started = time.monotonic()
        self._duration: float | None = None
        self._notice_id = 0
        self._layout(models, items, samples)

    # -- layout --------------------------------------------------------------

    def _layout(
        self, models: Sequence[str], items: Sequence[Any], samples: int
    ) -> None:
        """(Re)build every cell as queued; callers hold the lock or own the state."""
        self.models = [str(model) for model in models]
        self.samples = max(1, int(samples))
        self.items: list[dict[str, Any]] = []
        for position, item in enumerate(items):
            index, prompt = prompt_of(item)
            self.items.append(
                {
                    "index": position if index is None else index,
                    "prompt": prompt[:PROMPT_CAP],
                    # Every user turn (one for most items, two for MT-Bench).
                    "turns": turns_of(item),
                }
            )

        self.cells: dict[str, dict[str, Any]] = {}
        self._slots: dict[tuple[int, str, int], Slot] = {}
        self._by_key: dict[str, Slot] = {}
        self._counts: Counter[str] = Counter()
        self._cost = 0.0
        self._cost_known = True
        self._dirty: set[str] = set()
        self._appends: dict[str, list[Any]] = {}
        self._render_queue: dict[str, None] = {}
        self._full_sync = True
        self._keyframe = False
        self._header_dirty = True
        self.decisions.clear()

        hidden = self.blind and not self.revealed
        for item in self.items:
            for key, position, model, sample in self._places(item["index"]):
                slot = Slot(key, item["index"], model, sample)
                self._slots[(item["index"], model, sample)] = slot
                self._by_key[key] = slot
                self.cells[key] = new_cell(
                    item["index"],
                    position,
                    0 if hidden else sample,
                    None if hidden else model,
                )
                self._counts["queued"] += 1

        if self.blind:
            answers = len(self.models) * self.samples
            self.header["columns"] = [blind_label(p) for p in range(answers)]
        else:
            self.header["columns"] = list(self.models)
        self.header["models"] = (
            [] if self.blind and not self.revealed else list(self.models)
        )
        self.header["samples"] = self.samples
        self.header["total"] = len(self.cells)

    def _places(self, item: int) -> list[tuple[str, int, str, int]]:
        """``(key, position, model, sample)`` of each answer of ``item``.

        Open: one column per model, its samples stacked in it. Blind: one
        column per answer, shuffled per item (seeded by run and item).
        """
        if not self.blind:
            return [
                (f"{item}-{position}-{s}", position, model, s)
                for position, model in enumerate(self.models)
                for s in range(self.samples)
            ]
        answers = [(model, s) for model in self.models for s in range(self.samples)]
        random.Random(f"{self.header['run_id']}:{item}").shuffle(answers)
        return [
            (f"{item}-{position}-0", position, model, s)
            for position, (model, s) in enumerate(answers)
        ]

    # -- events --------------------------------------------------------------

    def apply(self, event: Event) -> bool:
        """Apply one run event; return whether it belonged to this run."""
        with self.lock:
            run_id = self.header["run_id"]
            named = False
            if run_id is None and isinstance(event, RunStarted):
                self.header["run_id"] = run_id = event.run_id
                named = True
            if event.run_id != run_id:
                logger.debug(
                    "ignoring %s for run %s (widget shows %s)",
                    event.type,
                    event.run_id,
                    run_id,
                )
                return False

            if isinstance(event, TextDelta):
                self._on_delta(event)
            elif isinstance(event, ResponseStarted):
                slot = self._slot_of(event.item_index, event.model, event.sample_index)
                if slot is not None and self.cells[slot.key]["status"] == "queued":
                    self._set_status(slot, "streaming")
            elif isinstance(event, ResponseFinished):
                self._on_finished(event)
            elif isinstance(event, ResponseFailed):
                self._on_failed(event)
            elif isinstance(event, RunStarted):
                self._on_run_started(event, named=named)
            elif isinstance(event, RunFinished):
                self._on_run_finished(event)
            return True

    def _slot_of(self, item: int, model: str, sample: int) -> Slot | None:
        slot = self._slots.get((item, model, sample))
        if slot is None:
            logger.debug(
                "no cell for item %s, model %s, sample %s", item, model, sample
            )
        return slot

    def _set_status(self, slot: Slot, status: str) -> None:
        cell = self.cells[slot.key]
        self._counts[cell["status"]] -= 1
        self._counts[status] += 1
        cell["status"] = status
        self._dirty.add(slot.key)
        self._header_dirty = True

    def _on_delta(self, event: TextDelta) -> None:
        slot = self._slot_of(event.item_index, event.model, event.sample_index)
        if slot is None or not (event.text or event.reset):
            return
        cell = self.cells[slot.key]
        if cell["status"] in ENDED:
            return
        if cell["status"] != "streaming":
            self._set_status(slot, "streaming")
        if event.reset:
            # The provider retried the stream from the start: replace the text.
            self._set_text(slot, event.text)
            self._dirty.add(slot.key)
            return

        slot.chunks.append(event.text)
        slot.length += len(event.text)
        room = self.display_cap - slot.shown
        if room > 0:
            piece = event.text[:room]
            pending = self._appends.get(slot.key)
            if pending is None:
                self._appends[slot.key] = [slot.shown, [piece]]
            else:
                pending[1].append(piece)
            slot.shown += len(piece)
        if slot.length > self.display_cap and not cell["capped"]:
            cell["capped"] = True
            self._dirty.add(slot.key)

    def _set_text(self, slot: Slot, text: str) -> None:
        cell = self.cells[slot.key]
        slot.chunks = [text]
        slot.length = len(text)
        shown = text[: self.display_cap]
        slot.shown = len(shown)
        cell.update(
            text=shown,
            n=len(shown),
            html=None,
            length=len(text),
            capped=len(text) > len(shown),
        )
        self._appends.pop(slot.key, None)
        if shown:
            self._render_queue[slot.key] = None

    def _on_finished(self, event: ResponseFinished) -> None:
        slot = self._slot_of(event.item_index, event.model, event.sample_index)
        if slot is None:
            return
        cell = self.cells[slot.key]
        self._set_text(slot, event.text or "")
        slot.response_id = event.response_id
        cell.update(
            finish_reason=event.finish_reason,
            latency_s=event.latency_s,
            ttft_s=event.ttft_s,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            cost_usd=event.cost_usd,
            # The earlier assistant turns (the answer to turn 1 of an MT-Bench item).
            turns=[
                str(turn)[: self.display_cap]
                for turn in event.assistant_turns[-MAX_TURNS:]
            ],
            stored=event.response_id is not None,
        )
        self._add_cost(event.cost_usd)
        self._set_status(
            slot, final_status(event.status, event.text, event.finish_reason)
        )

    def _on_failed(self, event: ResponseFailed) -> None:
        slot = self._slot_of(event.item_index, event.model, event.sample_index)
        if slot is None:
            return
        cell = self.cells[slot.key]
        self._set_text(slot, event.partial_text or "")
        slot.response_id = event.response_id
        cell.update(
            error_kind=event.error_kind,
            error_message=redact(event.error_message or "")[:ERROR_CAP],
            stored=event.response_id is not None,
        )
        self._set_status(slot, event.status if event.status in ENDED else "failed")

    def _add_cost(self, cost: float | None) -> None:
        if cost is None:
            self._cost_known = False
        else:
            self._cost += cost

    def _on_run_started(self, event: RunStarted, *, named: bool = False) -> None:
        shown = [(item["prompt"], item["turns"]) for item in self.items]
        announced = [
            (prompt_of(item)[1][:PROMPT_CAP], turns_of(item)) for item in event.items
        ]
        # A blind table shown before its run had an id was shuffled without
        # it: shuffle again by the run, as a redisplay of the run will.
        if (
            (named and self.blind)
            or list(event.models) != self.models
            or event.samples != self.samples
            or announced != shown
        ):
            self._layout(event.models, event.items, event.samples)
        self.header.update(
            name=event.name,
            status="running",
            max_cost_usd=event.max_cost_usd,
            estimated_cost_usd=event.estimated_cost_usd,
            total=event.total,
        )
        self._started = time.monotonic()
        self._header_dirty = True

    def _on_run_finished(self, event: RunFinished) -> None:
        self._duration = event.duration_s
        self.header.update(status=event.status, finished=True)
        if event.cost_usd is not None:
            self._cost, self._cost_known = event.cost_usd, True
        # A response still shown as queued or streaming when the run ends never
        # reported back (the run was cancelled before it started or finished).
        for slot in self._by_key.values():
            if self.cells[slot.key]["status"] in ("queued", "streaming"):
                self._set_status(slot, "cancelled")
        notice = (event.extra or {}).get("notice")
        if notice:
            # Why the run is not what was asked (budget reached, rows not saved).
            self.add_notice("warning", str(notice))
        self._full_sync = True
        self._header_dirty = True

    # -- clicks and notices --------------------------------------------------

    def slot(self, key: str) -> Slot:
        """Return the response behind a cell key, or raise ``KeyError`` naming it."""
        try:
            return self._by_key[str(key)]
        except KeyError:
            raise KeyError(
                f"No response with cell key {key!r} in this table."
            ) from None

    def keys_by_response_id(self) -> dict[str, str]:
        """Map each stored response id to its cell key."""
        with self.lock:
            return {
                slot.response_id: key
                for key, slot in self._by_key.items()
                if slot.response_id
            }

    def set_feedback(self, key: str, **values: Any) -> None:
        """Reflect stored feedback (``thumbs``, ``rating``, ``comment``) in a cell."""
        with self.lock:
            self.cells[key]["feedback"].update(values)
            self._dirty.add(key)

    def set_decision(self, item: int, key: str | None) -> None:
        """Reflect the picked best response of an item (``None`` clears it)."""
        with self.lock:
            if key is None:
                self.decisions.pop(str(item), None)
            else:
                self.decisions[str(item)] = key
            self._header_dirty = True

    def reveal(self) -> None:
        """Put model names into every cell and the header."""
        with self.lock:
            self.revealed = True
            self.header["revealed"] = True
            self.header["models"] = list(self.models)
            for key, slot in self._by_key.items():
                self.cells[key].update(model=slot.model, sample=slot.sample)
            self._full_sync = True
            self._header_dirty = True

    def add_notice(self, level: str, text: str) -> None:
        """Show a short message (``error``, ``warning`` or ``info``) above the table."""
        with self.lock:
            self._notice_id += 1
            notices = self.header["notices"]
            notices.append(
                {
                    "id": self._notice_id,
                    "level": level,
                    "text": redact(text)[:ERROR_CAP],
                }
            )
            del notices[:-MAX_NOTICES]
            self._header_dirty = True

    def refuse(self, message: str) -> None:
        """Mark the run as refused before it started (e.g. over budget), with why.

        The page and the static fallback then show ``message`` instead of rows
        that will never be sent.
        """
        with self.lock:
            self.header.update(
                status="refused", finished=True, refusal=redact(message)[:ERROR_CAP]
            )
            self._full_sync = True
            self._header_dirty = True

    def full_text(self, key: str) -> str:
        """Return the whole text of a response, beyond the display cap."""
        with self.lock:
            slot = self.slot(key)
            if len(slot.chunks) > 1:
                slot.chunks = ["".join(slot.chunks)]
            return slot.chunks[0] if slot.chunks else ""
