"""Live updates: coalescing (C08), ordering, threads (C05), display cap, run ids."""

from __future__ import annotations

import threading

import pytest
from _widget_harness import Page, comms, frontend_message, wait_until

from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator.events import (
    ResponseFinished,
    ResponseStarted,
    RunFinished,
    RunStarted,
    TextDelta,
)

pytestmark = pytest.mark.usefixtures(comms.__name__)

MODELS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5", "ollama:llama3.1", "echo")


def _started(run_id: str, items: int, models: tuple[str, ...] = MODELS) -> RunStarted:
    return RunStarted(
        run_id=run_id,
        name="stream test",
        models=models,
        items=tuple({"item_index": i, "prompt": f"question {i}"} for i in range(items)),
        samples=1,
        total=items * len(models),
        estimated_cost_usd=None,
        max_cost_usd=None,
    )


def test_widget_coalesces_400_streams_into_at_most_20_messages_a_second() -> None:
    items = 100  # x 4 models = 400 simultaneous streams
    widget = ComparisonWidget("run-1", MODELS, [f"question {i}" for i in range(items)])
    wire = widget.comm
    page = Page(wire.opening_state())
    widget.handle_event(_started("run-1", items))
    streams = [(i, model) for i in range(items) for model in MODELS]
    expected = {stream: [] for stream in streams}

    # Four producer threads (like several loops' callbacks) stream 60 rounds each.
    def produce(part: list[tuple[int, str]]) -> None:
        for round_ in range(60):
            for item, model in part:
                piece = f"{model[:2]}{item}.{round_} "
                expected[(item, model)].append(piece)
                widget.handle_event(TextDelta("run-1", item, model, 0, piece))
            threading.Event().wait(0.02)

    threads = [
        threading.Thread(target=produce, args=(streams[k::4],)) for k in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    wait_until(lambda: not widget.state.has_work)

    # Before anything finishes, the page holds every streamed piece, in order.
    messages = wire.messages()
    for _, data in messages:
        page.receive(data)
    assert page.gaps == 0
    cells = {(cell["item"], MODELS[cell["pos"]]): cell for cell in page.cells.values()}
    for stream, pieces in expected.items():
        assert cells[stream]["text"] == "".join(pieces)
        assert cells[stream]["status"] == "streaming"

    # Rate ceiling: in every one-second window at most 20 messages (C08).
    times = [at for at, _ in messages]
    for first, start in enumerate(times):
        in_window = sum(1 for at in times[first:] if at - start < 1.0)
        assert in_window <= ComparisonWidget.UPDATES_PER_SECOND
    deltas = len(streams) * 60
    assert len(messages) * 200 < deltas

    # The finishing events end in one full state sync; the page then equals the kernel.
    for item, model in streams:
        text = "".join(expected[(item, model)])
        widget.handle_event(
            ResponseFinished(
                "run-1", item, model, 0, f"id-{item}-{model}", text, "done", "stop"
            )
        )
    widget.handle_event(
        RunFinished("run-1", "complete", len(streams), 0, len(streams), None, 3.0)
    )
    wait_until(lambda: widget._flusher is None)
    for _, data in wire.messages()[len(messages) :]:
        page.receive(data)
    assert page.run["done"] == len(streams)
    assert page.run["finished"] is True
    kernel = widget.get_state()["cells"]
    assert page.cells == kernel
    widget.close()


def test_widget_keeps_order_of_deltas_from_one_stream() -> None:
    widget = ComparisonWidget("run-1", ["echo"], ["q"], display_cap=100_000)
    pieces = [f"<{i}>" for i in range(5000)]

    for piece in pieces:
        widget.handle_event(TextDelta("run-1", 0, "echo", 0, piece))
    wait_until(lambda: not widget.state.has_work)

    page = Page(widget.comm.opening_state())
    for _, data in widget.comm.messages():
        page.receive(data)
    assert page.cells["0-0-0"]["text"] == "".join(pieces)
    widget.close()


def test_widget_caps_a_2mb_answer_and_shows_it_whole_on_request() -> None:
    widget = ComparisonWidget("run-1", ["echo"], ["q"], display_cap=20_000)
    chunk = "abcdefghij" * 200
    for _ in range(1000):  # 2,000,000 characters
        widget.handle_event(TextDelta("run-1", 0, "echo", 0, chunk))
    full = chunk * 1000
    widget.handle_event(
        ResponseFinished("run-1", 0, "echo", 0, "r1", full, "done", "stop")
    )
    wait_until(lambda: not widget.state.has_work)

    sent = sum(len(str(data)) for _, data in widget.comm.messages())
    cell = widget.get_state()["cells"]["0-0-0"]
    assert cell["capped"] is True
    assert cell["length"] == 2_000_000
    assert len(cell["text"]) + len(cell["html"] or "") < 30_000
    assert sent < 200_000

    frontend_message(widget, {"kind": "show_full", "key": "0-0-0", "req": 7})
    page = Page(widget.comm.opening_state())
    for _, data in widget.comm.messages():
        page.receive(data)
    assert page.full == {"0-0-0": full}
    assert 7 in page.acks
    widget.close()


def test_widget_ignores_events_of_another_run() -> None:
    widget = ComparisonWidget("run-2", ["echo"], ["q"])

    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "old run's text"))
    widget.handle_event(ResponseStarted("run-1", 0, "echo", 0))

    assert widget.state.has_work is False
    assert widget.get_state()["cells"]["0-0-0"]["status"] == "queued"
    widget.close()


def test_widget_takes_run_id_and_layout_from_run_started() -> None:
    widget = ComparisonWidget(None, [], [])

    widget.handle_event(_started("run-9", 2, ("echo", "echo:b")))
    widget.handle_event(TextDelta("run-9", 1, "echo:b", 0, "hello"))
    wait_until(lambda: not widget.state.has_work)

    assert widget.run_id == "run-9"
    page = Page(widget.comm.opening_state())
    for _, data in widget.comm.messages():
        page.receive(data)
    assert sorted(page.cells) == ["0-0-0", "0-1-0", "1-0-0", "1-1-0"]
    assert page.cells["1-1-0"]["text"] == "hello"
    assert page.run["columns"] == ["echo", "echo:b"]
    widget.close()


def test_widget_finish_repairs_a_page_that_missed_appends() -> None:
    widget = ComparisonWidget("run-1", ["echo"], ["q"])
    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "lost "))
    wait_until(lambda: not widget.state.has_work)
    seen = len(widget.comm.messages())
    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "kept"))
    widget.handle_event(
        ResponseFinished("run-1", 0, "echo", 0, "r1", "lost kept", "done", "stop")
    )
    wait_until(lambda: not widget.state.has_work)

    # A page that never saw the first messages still ends with the whole answer.
    page = Page(widget.comm.opening_state())
    for _, data in widget.comm.messages()[seen:]:
        page.receive(data)
    assert page.cells["0-0-0"]["html"] == "<p>lost kept</p>\n"
    widget.close()


def test_widget_flusher_stops_after_the_run_and_on_close() -> None:
    widget = ComparisonWidget("run-1", ["echo"], ["q"])
    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "x"))
    assert widget._flusher is not None

    widget.handle_event(RunFinished("run-1", "cancelled", 0, 0, 1, None, 1.0))
    wait_until(lambda: widget._flusher is None)
    assert widget.get_state()["cells"]["0-0-0"]["status"] == "cancelled"

    widget.close()
    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "late"))
    assert widget._flusher is None


def test_widget_keyframe_heals_a_page_that_started_listening_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("maquina_nb.notebook.widget._KEYFRAMES_S", (0.3,))
    widget = ComparisonWidget("run-1", ["echo"], ["q"])
    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "first words "))
    wait_until(lambda: not widget.state.has_work)
    missed = len(widget.comm.messages())

    # The page's listener comes up now: it saw the opening state, then nothing.
    page = Page(widget.comm.opening_state())
    widget.handle_event(TextDelta("run-1", 0, "echo", 0, "later words"))
    wait_until(lambda: len(widget.comm.messages()) > missed)
    applied = len(widget.comm.messages())
    for _, data in widget.comm.messages()[missed:applied]:
        page.receive(data)
    assert page.cells["0-0-0"]["text"] == " […] later words"

    # Still streaming, the keyframe brings the whole text.
    wait_until(lambda: widget._keyframes == [] and not widget.state.has_work)
    for _, data in widget.comm.messages()[applied:]:
        page.receive(data)
    assert page.cells["0-0-0"]["text"] == "first words later words"
    assert page.cells["0-0-0"]["status"] == "streaming"
    widget.close()
