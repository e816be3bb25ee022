from __future__ import annotations

import pytest

from maquina_nb.notebook._cells import final_status
from maquina_nb.notebook._state import ComparisonState
from maquina_nb.orchestrator.events import (
    ResponseFailed,
    ResponseFinished,
    ResponseStarted,
    RunFinished,
    TextDelta,
)


@pytest.mark.parametrize(
    ("status", "text", "reason", "expected"),
    [
        pytest.param("done", "hi", "stop", "done", id="answer"),
        pytest.param("done", "", "stop", "empty", id="empty"),
        pytest.param("done", "", "end_turn", "empty", id="anthropic-empty"),
        pytest.param("done", "", "tool_calls", "tool_call_only", id="openai-tool"),
        pytest.param("done", "", "tool_use", "tool_call_only", id="anthropic-tool"),
        pytest.param("done", "", "content_filter", "content_filtered", id="filter"),
        pytest.param("truncated", "", "length", "truncated", id="truncated"),
        pytest.param("cached", "x", "stop", "cached", id="cached"),
    ],
)
def test_final_status_names_what_came_back(
    status: str, text: str, reason: str, expected: str
) -> None:
    assert final_status(status, text, reason) == expected


def test_state_keys_cover_samples_and_keep_them_apart() -> None:
    state = ComparisonState("r", ["a", "b"], ["q"], samples=2)

    state.apply(TextDelta("r", 0, "b", 1, "second sample"))
    state.take_patch()

    assert sorted(state.cells) == ["0-0-0", "0-0-1", "0-1-0", "0-1-1"]
    assert state.cells["0-1-1"]["text"] == "second sample"
    assert state.cells["0-1-0"]["text"] == ""
    assert state.header["total"] == 4


def test_state_renders_what_the_page_shows_first() -> None:
    state = ComparisonState("r", ["a"], [f"q{i}" for i in range(5)])
    for i in range(5):
        state.apply(
            ResponseFinished("r", i, "a", 0, f"id{i}", f"answer {i}", "done", "stop")
        )

    state.prioritize(["3-0-0", "1-0-0"])

    assert state.next_to_render(2) == [("3-0-0", "answer 3"), ("1-0-0", "answer 1")]
    assert [key for key, _ in state.next_to_render(10)] == ["0-0-0", "2-0-0", "4-0-0"]


def test_state_counts_progress_and_spend() -> None:
    state = ComparisonState("r", ["a", "b"], ["q0", "q1"], max_cost=1.0)

    state.apply(ResponseStarted("r", 0, "a", 0))
    state.apply(
        ResponseFinished("r", 0, "b", 0, "x", "ok", "done", "stop", cost_usd=0.25)
    )
    state.apply(ResponseFailed("r", 1, "a", 0, "y", "failed", "timeout", "slow"))
    state.apply(
        ResponseFailed("r", 1, "b", 0, None, "skipped", "budget", "over budget")
    )
    run = state.snapshot()["run"]

    assert {
        k: run[k] for k in ("done", "failed", "skipped", "streaming", "queued", "total")
    } == {
        "done": 1,
        "failed": 1,
        "skipped": 1,
        "streaming": 1,
        "queued": 0,
        "total": 4,
    }
    assert (run["cost_usd"], run["cost_complete"], run["max_cost_usd"]) == (
        0.25,
        True,
        1.0,
    )

    state.apply(RunFinished("r", "cancelled", 1, 1, 4, 0.25, 9.5))
    run = state.snapshot()["run"]
    assert (run["status"], run["cancelled"], run["streaming"], run["elapsed_s"]) == (
        "cancelled",
        1,
        0,
        9.5,
    )


def test_state_ignores_deltas_after_a_response_finished() -> None:
    state = ComparisonState("r", ["a"], ["q"])
    state.apply(ResponseFinished("r", 0, "a", 0, "x", "final", "done", "stop"))

    state.apply(TextDelta("r", 0, "a", 0, " late"))

    assert state.full_text("0-0-0") == "final"


def test_run_notice_shows_above_the_table() -> None:
    state = ComparisonState("r", ["a"], ["q0"], max_cost=0.2)
    notice = "The budget of $0.20 stopped the run: 0 requests were not sent."

    state.apply(RunFinished("r", "partial", 1, 0, 1, 0.2, 1.0, {"notice": notice}))

    notices = state.snapshot()["run"]["notices"]
    assert [(n["level"], n["text"]) for n in notices] == [("warning", notice)]


def test_blind_labels_every_answer_apart_and_reveal_maps_back() -> None:
    import json

    models = ["openai:gpt-4o", "echo"]
    items = [f"q{i}" for i in range(6)]
    state = ComparisonState("run-blind", models, items, samples=2, blind=True)
    for item in range(len(items)):
        for model in models:
            for sample in (0, 1):
                text = f"{model} says {item}.{sample}"
                state.apply(
                    ResponseFinished(
                        "run-blind", item, model, sample, "id", text, "done", "stop"
                    )
                )
    hidden = state.snapshot()

    # One label per shown answer: two models x two samples = A to D.
    assert hidden["run"]["columns"] == [
        "Response A",
        "Response B",
        "Response C",
        "Response D",
    ]
    for item in range(len(items)):
        cells = [c for c in hidden["cells"].values() if c["item"] == item]
        assert sorted(c["pos"] for c in cells) == [0, 1, 2, 3]
        assert {(c["model"], c["sample"]) for c in cells} == {(None, 0)}
    assert all(key.endswith("-0") for key in hidden["cells"])
    shown = json.dumps({k: v for k, v in hidden.items() if k != "cells"})
    assert "gpt-4o" not in shown
    assert "echo" not in shown

    # Still shuffled per item: the columns do not follow -m and sample order.
    orders = {
        tuple(
            c["text"].split(" says ")[0] + c["text"][-2:]
            for c in sorted(
                (c for c in hidden["cells"].values() if c["item"] == item),
                key=lambda c: c["pos"],
            )
        )
        for item in range(len(items))
    }
    assert len(orders) > 1

    # Revealing names each answer's own model and sample.
    state.reveal()
    revealed = state.snapshot()["cells"]
    for cell in revealed.values():
        assert cell["text"] == f"{cell['model']} says {cell['item']}.{cell['sample']}"
    assert sorted((c["item"], c["model"], c["sample"]) for c in revealed.values()) == [
        (item, model, sample)
        for item in range(len(items))
        for model in sorted(models)
        for sample in (0, 1)
    ]


def test_live_blind_table_is_shuffled_by_its_run_as_its_redisplay_is() -> None:
    from maquina_nb.orchestrator.events import RunStarted

    models = ["a", "b", "c"]
    items = [{"item_index": i, "prompt": f"q{i}"} for i in range(6)]

    def layout(state: ComparisonState) -> dict[str, tuple[str, int]]:
        return {key: (slot.model, slot.sample) for key, slot in state._by_key.items()}

    layouts = []
    for run_id in ("run-1", "run-2"):
        # The magic shows the table before the run has an id.
        live = ComparisonState(None, models, items, blind=True)
        live.apply(
            RunStarted(run_id, None, tuple(models), tuple(items), 1, 18, None, None)
        )
        shown_later = ComparisonState(run_id, models, items, blind=True)
        assert layout(live) == layout(shown_later)
        layouts.append(layout(live))
    assert layouts[0] != layouts[1]
