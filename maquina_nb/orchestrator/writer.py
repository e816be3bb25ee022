"""One writer per run: finished responses go to the database in batches.

Workers hand finished rows to :meth:`ResponseWriter.add`, which only appends to a
buffer. The writer task flushes the buffer through
``Repository.add_responses`` (one transaction per batch, in a worker thread so
the loop keeps serving streams) once ``batch_size`` rows are waiting or
``interval`` seconds after the first of them arrived, and once more at the end.
While one batch is being written the next one gathers, so under load batches
grow on their own. A process killed with SIGKILL therefore loses the responses
in flight and at most ``interval`` seconds of finished ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger

if TYPE_CHECKING:
    from maquina_nb.db import Repository

__all__ = ["ResponseWriter"]

logger = get_logger(__name__)

Row = dict[str, Any]


class ResponseWriter:
    """Batch rows into ``repository.add_responses`` from a single task.

    Args:
        repository: where rows go.
        on_stored: called on the loop with each batch once it is committed
            (``saved=False`` when the write failed and the rows are lost).
        batch_size: flush as soon as this many rows wait.
        interval: flush at the latest this long after the first waiting row.
        max_batch: the most rows written in one transaction.
    """

    def __init__(
        self,
        repository: Repository,
        *,
        on_stored: Callable[[list[Row], bool], None] | None = None,
        batch_size: int = 50,
        interval: float = 0.1,
        max_batch: int = 2000,
    ) -> None:
        self.repository = repository
        self.on_stored = on_stored
        self.batch_size = batch_size
        self.interval = interval
        self.max_batch = max_batch
        self.written = 0
        self.unsaved = 0
        self._buffer: list[Row] = []
        self._first_at = 0.0
        self._has_rows = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def add(self, row: Row) -> None:
        """Queue one finished row (never blocks)."""
        if not self._buffer:
            self._first_at = time.monotonic()
            self._has_rows.set()
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_size:
            self._full.set()

    async def _run(self) -> None:
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._has_rows.clear()
                await self._has_rows.wait()
                continue

            # Wait for a full batch, or until the oldest row has waited long enough.
            if len(self._buffer) < self.batch_size and not self._closing:
                remaining = self.interval - (time.monotonic() - self._first_at)
                if remaining > 0:
                    self._full.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._full.wait(), remaining)

            batch = self._buffer[: self.max_batch]
            del self._buffer[: self.max_batch]
            if self._buffer:
                self._first_at = time.monotonic()
            await self._write(batch)

    async def _write(self, batch: list[Row]) -> None:
        try:
            await asyncio.to_thread(self.repository.add_responses, batch)
        except Exception:
            # One bad row must not cost the others: retry them one at a time.
            logger.debug(
                "batch of %d failed; writing row by row", len(batch), exc_info=True
            )
            saved_rows, lost_rows = await asyncio.to_thread(self._write_each, batch)
            self._announce(saved_rows, True)
            self._announce(lost_rows, False)
        else:
            self.written += len(batch)
            self._announce(batch, True)

    def _write_each(self, batch: list[Row]) -> tuple[list[Row], list[Row]]:
        saved: list[Row] = []
        lost: list[Row] = []
        for row in batch:
            try:
                self.repository.add_responses([row])
            except Exception as exc:
                lost.append(row)
                logger.warning(
                    "could not save the response of %s to item %s (%s); it is kept in "
                    "the returned Run only",
                    row.get("model_spec"),
                    row.get("item_index"),
                    type(exc).__name__,
                )
            else:
                saved.append(row)
        self.written += len(saved)
        self.unsaved += len(lost)
        return saved, lost

    def _announce(self, rows: list[Row], saved: bool) -> None:
        if not rows or self.on_stored is None:
            return
        try:
            self.on_stored(rows, saved)
        except Exception:
            logger.exception("after storing %d responses", len(rows))

    async def aclose(self) -> None:
        """Write everything still buffered and stop the task."""
        self._closing = True
        self._has_rows.set()
        self._full.set()
        if self._task is not None:
            # Shielded: an interrupt must not lose the rows that finished.
            await asyncio.shield(self._task)
