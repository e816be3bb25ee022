"""A recording comm and a page model that applies messages the way widget.js does."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm


class RecordingComm(BaseComm):
    """A comm that keeps every message it would send, JSON-encoded as on the wire."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[float, str, dict[str, Any]]] = []
        self._sent_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        **keys: Any,
    ) -> None:
        wire = json.loads(json.dumps(data or {}, allow_nan=False))
        with self._sent_lock:
            self.sent.append((time.monotonic(), msg_type, wire))

    def messages(self) -> list[tuple[float, dict[str, Any]]]:
        """Return ``(time, data)`` of each comm_msg (updates and custom messages)."""
        with self._sent_lock:
            return [(at, data) for at, kind, data in self.sent if kind == "comm_msg"]

    def opening_state(self) -> dict[str, Any]:
        with self._sent_lock:
            return next(
                data["state"] for _, kind, data in self.sent if kind == "comm_open"
            )


def frontend_message(widget: Any, content: dict[str, Any]) -> None:
    """Deliver a custom message from the page to the kernel side, as ipywidgets does."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
    )


class Page:
    """The page's copy of the table, updated by the same rules as widget.js."""

    def __init__(self, opening: dict[str, Any]) -> None:
        self.run = opening["run"]
        self.items = opening["items"]
        self.cells = {key: dict(cell) for key, cell in opening["cells"].items()}
        self.gaps = 0
        self.acks: list[Any] = []
        self.full: dict[str, str] = {}

    def receive(self, data: dict[str, Any]) -> None:
        if data.get("method") == "update":
            state = data["state"]
            self.run = state.get("run", self.run)
            self.items = state.get("items", self.items)
            if "cells" in state:
                self.cells = {key: dict(cell) for key, cell in state["cells"].items()}
            return
        content = data["content"]
        if content.get("ack") is not None:
            self.acks.append(content["ack"])
        if content["kind"] == "full":
            self.full[content["key"]] = content["text"]
        if content["kind"] != "patch":
            return
        self.run = content["run"]
        for key, update in content["cells"].items():
            old = self.cells.get(key, {})
            new = {**old, **update}
            if "text" not in update:
                new["text"], new["n"] = old.get("text", ""), old.get("n", 0)
            self.cells[key] = new
        for key, (start, piece, end) in content["appends"].items():
            cell = self.cells[key]
            have = cell.get("n", 0)
            if start == have:
                cell["text"] += piece
                cell["n"] = end
            elif start < have < end:
                cell["text"] += piece[have - start :]
                cell["n"] = end
            elif start > have:
                cell["text"] += f" […] {piece}"
                cell["n"] = end
                self.gaps += 1


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f} s")
        time.sleep(0.01)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    """Make every new widget comm a :class:`RecordingComm` (import into a test module)."""
    created: list[RecordingComm] = []

    def create_comm(*args: Any, **kwargs: Any) -> RecordingComm:
        created.append(RecordingComm(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return created
