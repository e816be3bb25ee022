"""Draining the comparison table's changes into messages for the page.

:class:`TableDrain` is the half of
:class:`~maquina_nb.notebook._state.ComparisonState` that turns what changed into
one patch (or a full sync) at a time, keeps the Markdown render queue and takes
consistent snapshots; the state's other half applies run events and clicks.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from maquina_nb.notebook._cells import ANSWERED, ENDED

__all__ = ["TableDrain"]


class TableDrain:
    """Patches, render queue and snapshots of a comparison table's state.

    The attributes below are set by :class:`ComparisonState`; every method here
    reads them under ``lock``.
    """

    lock: threading.RLock
    header: dict[str, Any]
    items: list[dict[str, Any]]
    cells: dict[str, dict[str, Any]]
    decisions: dict[str, str]
    _counts: Counter[str]
    _cost: float
    _cost_known: bool
    _dirty: set[str]
    _appends: dict[str, list[Any]]
    _render_queue: dict[str, None]
    _full_sync: bool
    _keyframe: bool
    _header_dirty: bool
    _started: float
    _duration: float | None

    @property
    def has_work(self) -> bool:
        """Whether a patch or a rendering is waiting."""
        with self.lock:
            return bool(
                self._dirty
                or self._appends
                or self._header_dirty
                or self._render_queue
                or self._full_sync
                or self._keyframe
            )

    def prioritize(self, keys: Sequence[str]) -> None:
        """Move cells the page is showing to the front of the render queue."""
        with self.lock:
            wanted = [
                key
                for key in keys
                if key in self._render_queue or self._unrendered(key)
            ]
            rest = [key for key in self._render_queue if key not in wanted]
            self._render_queue = dict.fromkeys([*wanted, *rest])

    def _unrendered(self, key: str) -> bool:
        cell = self.cells.get(key)
        return bool(
            cell and cell["html"] is None and cell["text"] and cell["status"] in ENDED
        )

    def next_to_render(self, limit: int) -> list[tuple[str, str]]:
        """Pop up to ``limit`` finished cells whose Markdown is still to render."""
        with self.lock:
            batch = []
            for key in list(self._render_queue)[:limit]:
                del self._render_queue[key]
                cell = self.cells[key]
                if cell["status"] in ENDED and cell["html"] is None and cell["text"]:
                    batch.append((key, cell["text"]))
            return batch

    def unrendered(self, items: int) -> list[tuple[str, str]]:
        """Return finished cells of the first ``items`` items still to render."""
        with self.lock:
            first = {item["index"] for item in self.items[:items]}
            return [
                (key, cell["text"])
                for key, cell in self.cells.items()
                if cell["item"] in first and self._unrendered(key)
            ]

    def set_html(self, key: str, text: str, html: str) -> None:
        """Store rendered HTML, unless the cell's text changed meanwhile."""
        with self.lock:
            cell = self.cells[key]
            if cell["text"] == text:
                cell.update(html=html, text="", n=0)
                self._dirty.add(key)

    def elapsed(self) -> float:
        """Seconds since the run started (its duration once it finished)."""
        return (
            self._duration
            if self._duration is not None
            else time.monotonic() - self._started
        )

    def _refresh_header(self) -> None:
        counts = self._counts
        self.header.update(
            done=sum(counts[status] for status in ANSWERED),
            failed=counts["failed"],
            skipped=counts["skipped"],
            cancelled=counts["cancelled"],
            streaming=counts["streaming"],
            queued=counts["queued"],
            cost_usd=self._cost,
            cost_complete=self._cost_known,
            elapsed_s=round(self.elapsed(), 2),
            decisions=dict(self.decisions),
        )

    def request_keyframe(self) -> None:
        """Send the streaming cells whole in the next patch, if any is streaming.

        A page whose listener came up after the first appends went out (custom
        messages sent before then are lost) catches up with the whole text.
        """
        with self.lock:
            if self._counts["streaming"] > 0:
                self._keyframe = True

    def take_patch(self) -> dict[str, Any] | None:
        """Drain everything that changed into one message, or ``None`` if nothing did.

        A full sync (after a layout change, a reveal or the run's end) is
        ``{"kind": "sync"}``: the caller then resends the whole state. Otherwise
        ``{"kind": "patch", "run": header, "cells": {key: cell}, "appends":
        {key: [start, text, end]}}``, where a cell with appends comes without its
        ``text`` and ``n``.
        """
        with self.lock:
            if not (
                self._dirty
                or self._appends
                or self._header_dirty
                or self._full_sync
                or self._keyframe
            ):
                return None
            self.header["seq"] += 1
            self._refresh_header()

            if self._full_sync:
                self._full_sync = False
                self._dirty.clear()
                self._flush_appends()
                self._header_dirty = False
                return {"kind": "sync", "seq": self.header["seq"]}

            # A keyframe sends every streaming cell whole instead of as appends.
            if self._keyframe:
                self._keyframe = False
                self._flush_appends()
                self._dirty.update(
                    key
                    for key, cell in self.cells.items()
                    if cell["status"] == "streaming"
                )

            # A cell that is also streaming goes without its text (the appends
            # carry that); any other changed cell goes whole, text included.
            cells: dict[str, Any] = {}
            for key in self._dirty:
                cell = self.cells[key]
                if key in self._appends:
                    cells[key] = {
                        k: v for k, v in cell.items() if k not in ("text", "n")
                    }
                else:
                    cells[key] = {**cell, "feedback": dict(cell["feedback"])}
            appends = self._flush_appends()
            self._dirty.clear()
            self._header_dirty = False
            return {
                "kind": "patch",
                "run": dict(self.header),
                "cells": cells,
                "appends": appends,
            }

    def _flush_appends(self) -> dict[str, list[Any]]:
        appends: dict[str, list[Any]] = {}
        for key, (start, pieces) in self._appends.items():
            cell = self.cells[key]
            piece = "".join(pieces)
            end = start + len(piece)
            if cell["n"] == start:
                cell["text"] += piece
                cell["n"] = end
            appends[key] = [start, piece, end]
        self._appends.clear()
        return appends

    def snapshot(self) -> dict[str, Any]:
        """Return a consistent copy of header, items, cells and picks."""
        with self.lock:
            self._refresh_header()
            cells = {
                key: {**cell, "feedback": dict(cell["feedback"])}
                for key, cell in self.cells.items()
            }
            # Text still waiting to go out as appends is part of the picture; the
            # page skips those appends later because their end is not past its `n`.
            for key, (start, pieces) in self._appends.items():
                if cells[key]["n"] == start:
                    piece = "".join(pieces)
                    cells[key]["text"] += piece
                    cells[key]["n"] = start + len(piece)
            return {
                "run": {**self.header, "notices": list(self.header["notices"])},
                "items": list(self.items),
                "cells": cells,
            }
