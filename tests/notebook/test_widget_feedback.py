"""Clicks stored through the real Repository, redisplay, blind mode, C17/C32/C33."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _html_checks import C32_PAYLOADS, assert_inert, visible_text
from _widget_harness import Page, comms, frontend_message, wait_until

from maquina_nb.db import Repository
from maquina_nb.notebook.widget import ComparisonWidget
from maquina_nb.orchestrator.events import (
    ResponseFailed,
    ResponseFinished,
    RunFinished,
    RunStarted,
)

pytestmark = pytest.mark.usefixtures(comms.__name__)

MODELS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5")
PROMPTS = ("What is 2+2?", "Name a colour.")


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.from_url(f"sqlite:///{tmp_path / 'maquina.db'}")


class StoredRun:
    """A run stored in the repository, and the events an orchestrator would emit."""

    def __init__(
        self, repo: Repository, texts: dict[tuple[int, str], dict[str, Any]]
    ) -> None:
        self.id = repo.add_run(
            name="feedback test",
            template="{{ q }}",
            system_prompt=None,
            models=list(MODELS),
            parameters={},
            tags=[],
            item_count=len(PROMPTS),
            samples=1,
        )
        rows = []
        for (item, model), fields in texts.items():
            row = {
                "run_id": self.id,
                "item_index": item,
                "sample_index": 0,
                "model_spec": model,
                "messages": [{"role": "user", "content": PROMPTS[item]}],
                "text": fields.get("text", ""),
                "status": fields.get("status", "done"),
                "finish_reason": fields.get("finish_reason", "stop"),
                "error_kind": fields.get("error_kind"),
                "error_message": fields.get("error_message"),
                "cost_usd": fields.get("cost_usd"),
                "latency_s": fields.get("latency_s"),
            }
            rows.append(row)
        self.ids = dict(zip(texts, repo.add_responses(rows), strict=True))
        self.texts = texts

    def events(self) -> Iterator[Any]:
        yield RunStarted(
            self.id,
            "feedback test",
            MODELS,
            tuple({"item_index": i, "prompt": p} for i, p in enumerate(PROMPTS)),
            1,
            len(PROMPTS) * len(MODELS),
            None,
            1.0,
        )
        for (item, model), fields in self.texts.items():
            status = fields.get("status", "done")
            if status == "failed":
                yield ResponseFailed(
                    self.id,
                    item,
                    model,
                    0,
                    self.ids[(item, model)],
                    "failed",
                    fields["error_kind"],
                    fields["error_message"],
                )
            else:
                yield ResponseFinished(
                    self.id,
                    item,
                    model,
                    0,
                    self.ids[(item, model)],
                    fields.get("text", ""),
                    status,
                    fields.get("finish_reason", "stop"),
                    cost_usd=fields.get("cost_usd"),
                    latency_s=fields.get("latency_s"),
                )
        yield RunFinished(
            self.id, "complete", len(self.texts), 0, len(self.texts), 0.01, 2.5
        )


def _live(repo: Repository, run: StoredRun, **kwargs: Any) -> ComparisonWidget:
    widget = ComparisonWidget(run.id, MODELS, PROMPTS, repository=repo, **kwargs)
    for event in run.events():
        widget.handle_event(event)
    wait_until(lambda: widget._flusher is None)
    return widget


def _page(widget: ComparisonWidget) -> Page:
    page = Page(widget.comm.opening_state())
    for _, data in widget.comm.messages():
        page.receive(data)
    return page


SIMPLE = {
    (0, MODELS[0]): {"text": "**4**", "cost_usd": 0.002, "latency_s": 1.5},
    (0, MODELS[1]): {"text": "Four.", "cost_usd": 0.003, "latency_s": 0.9},
    (1, MODELS[0]): {"text": "Blue"},
    (1, MODELS[1]): {"text": "Red"},
}


def test_widget_stores_thumbs_rating_comment_and_reflects_them(
    repo: Repository,
) -> None:
    run = StoredRun(repo, SIMPLE)
    widget = _live(repo, run)

    frontend_message(
        widget,
        {"kind": "feedback", "key": "0-0-0", "type": "thumbs", "value": 1, "req": 1},
    )
    frontend_message(
        widget,
        {"kind": "feedback", "key": "0-0-0", "type": "rating", "value": 4, "req": 2},
    )
    frontend_message(
        widget,
        {
            "kind": "feedback",
            "key": "1-1-0",
            "type": "comment",
            "value": "too short",
            "req": 3,
        },
    )

    frame = repo.feedback_frame(run.id).sort_values("feedback_id")
    frame = frame.astype(object).where(frame.notna(), None)
    assert frame[["response_id", "kind", "value", "comment", "rater"]].to_dict(
        "records"
    ) == [
        {
            "response_id": run.ids[(0, MODELS[0])],
            "kind": "thumbs",
            "value": 1,
            "comment": None,
            "rater": "test-rater",
        },
        {
            "response_id": run.ids[(0, MODELS[0])],
            "kind": "rating",
            "value": 4,
            "comment": None,
            "rater": "test-rater",
        },
        {
            "response_id": run.ids[(1, MODELS[1])],
            "kind": "comment",
            "value": None,
            "comment": "too short",
            "rater": "test-rater",
        },
    ]
    page = _page(widget)
    assert page.acks == [1, 2, 3]
    assert page.cells["0-0-0"]["feedback"] == {"thumbs": 1, "rating": 4, "comment": ""}
    assert page.cells["1-1-0"]["feedback"] == {
        "thumbs": 0,
        "rating": None,
        "comment": "too short",
    }
    widget.close()


def test_widget_pick_is_a_human_decision(repo: Repository) -> None:
    run = StoredRun(repo, SIMPLE)
    widget = _live(repo, run, rater="ada")

    frontend_message(widget, {"kind": "pick", "key": "0-1-0", "req": 5})

    frame = repo.decisions_frame(run.id)
    assert frame[
        ["item_index", "strategy", "winner_response_id", "decided_by"]
    ].to_dict("records") == [
        {
            "item_index": 0,
            "strategy": "human",
            "winner_response_id": run.ids[(0, MODELS[1])],
            "decided_by": "ada",
        }
    ]
    assert _page(widget).run["decisions"] == {"0": "0-1-0"}
    widget.close()


def test_widget_redisplays_a_stored_run_with_its_feedback(repo: Repository) -> None:
    run = StoredRun(repo, SIMPLE)
    live = _live(repo, run)
    frontend_message(
        live, {"kind": "feedback", "key": "1-0-0", "type": "thumbs", "value": -1}
    )
    frontend_message(
        live, {"kind": "feedback", "key": "1-0-0", "type": "thumbs", "value": 1}
    )
    frontend_message(live, {"kind": "pick", "key": "1-0-0"})
    live.close()

    widget = ComparisonWidget.from_run(repo, run.id)
    wait_until(lambda: widget._flusher is None)

    page = _page(widget)
    assert [item["prompt"] for item in page.items] == list(PROMPTS)
    assert page.cells["1-0-0"]["feedback"] == {
        "thumbs": 1,
        "rating": None,
        "comment": "",
    }
    assert page.run["decisions"] == {"1": "1-0-0"}
    assert page.cells["0-0-0"]["html"] == "<p><strong>4</strong></p>\n"
    assert page.cells["0-0-0"]["cost_usd"] == 0.002
    assert (page.run["done"], page.run["total"]) == (4, 4)
    widget.close()


def test_widget_shows_and_logs_a_failing_click(
    repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    run = StoredRun(repo, SIMPLE)
    widget = _live(repo, run)
    repo.delete_run(run.id)  # the click now names a response that is gone

    with caplog.at_level(logging.ERROR, logger="maquina_nb"):
        frontend_message(
            widget,
            {
                "kind": "feedback",
                "key": "0-0-0",
                "type": "thumbs",
                "value": 1,
                "req": 9,
            },
        )

    # The traceback is kept (redacted into exc_text by the module's log filter).
    assert [(r.name, r.levelno) for r in caplog.records] == [
        ("maquina_nb.notebook.widget", logging.ERROR)
    ]
    assert "StoreError: Could not store the HumanFeedback" in caplog.records[0].exc_text
    page = _page(widget)
    assert page.acks == [9]
    [notice] = page.run["notices"]
    assert notice["level"] == "error"
    assert notice["text"].startswith(
        "Could not save that (feedback): Could not store the HumanFeedback"
    )
    assert page.cells["0-0-0"]["feedback"]["thumbs"] == 0
    widget.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            {"kind": "feedback", "key": "0-0-0", "type": "thumbs", "value": 2},
            "A thumbs value must be 1 or -1, not 2.",
            id="thumbs",
        ),
        pytest.param(
            {"kind": "feedback", "key": "0-0-0", "type": "rating", "value": 6},
            "A rating must be a whole number from 1 to 5, not 6.",
            id="rating",
        ),
        pytest.param(
            {"kind": "feedback", "key": "9-9-9", "type": "rating", "value": 3},
            "\"No response with cell key '9-9-9' in this table.\"",
            id="key",
        ),
        pytest.param(
            {"kind": "launch"},
            "The comparison table got an unknown message kind 'launch'.",
            id="kind",
        ),
    ],
)
def test_widget_rejects_bad_clicks_with_a_notice(
    repo: Repository, content: dict[str, Any], message: str
) -> None:
    run = StoredRun(repo, SIMPLE)
    widget = _live(repo, run)

    frontend_message(widget, content)

    [notice] = _page(widget).run["notices"]
    assert notice["text"].endswith(message)
    assert repo.feedback_frame(run.id).empty
    widget.close()


def test_widget_refuses_feedback_on_an_unstored_response(repo: Repository) -> None:
    widget = ComparisonWidget("run-x", MODELS, PROMPTS, repository=repo)

    frontend_message(
        widget, {"kind": "feedback", "key": "0-0-0", "type": "thumbs", "value": 1}
    )

    [notice] = _page(widget).run["notices"]
    assert notice["text"].endswith(
        "The response in cell '0-0-0' is not stored yet; wait until it finishes."
    )
    widget.close()


def test_widget_without_repository_keeps_feedback_locally_and_says_so() -> None:
    widget = ComparisonWidget("run-x", MODELS, PROMPTS)
    widget.handle_event(
        ResponseFinished("run-x", 0, MODELS[0], 0, None, "hi", "done", "stop")
    )

    frontend_message(
        widget, {"kind": "feedback", "key": "0-0-0", "type": "rating", "value": 2}
    )

    page = _page(widget)
    assert page.cells["0-0-0"]["feedback"]["rating"] == 2
    assert [n["level"] for n in page.run["notices"]] == ["warning"]
    widget.close()


def test_widget_blind_mode_hides_models_until_revealed(repo: Repository) -> None:
    run = StoredRun(repo, SIMPLE)
    widget = _live(repo, run, blind=True)

    before = json.dumps(
        [widget.comm.opening_state(), [d for _, d in widget.comm.messages()]]
    )
    assert "gpt-4o" not in before
    assert "claude" not in before
    page = _page(widget)
    assert page.run["columns"] == ["Response A", "Response B"]
    assert {cell["model"] for cell in page.cells.values()} == {None}

    frontend_message(widget, {"kind": "pick", "key": "0-0-0"})
    frontend_message(widget, {"kind": "reveal"})

    page = _page(widget)
    by_item = {(c["item"], c["model"]) for c in page.cells.values()}
    assert by_item == {(i, m) for i in range(2) for m in MODELS}
    assert page.run["models"] == list(MODELS)
    [decision] = repo.decisions_frame(run.id).to_dict("records")
    assert decision["details"] == {"blind": True, "revealed": False}
    widget.close()


def test_widget_shows_placeholders_for_empty_tool_call_and_filtered_answers(
    repo: Repository,
) -> None:
    texts = {
        (0, MODELS[0]): {"text": "", "finish_reason": "stop"},
        (0, MODELS[1]): {
            "text": "",
            "status": "tool_call_only",
            "finish_reason": "tool_calls",
        },
        (1, MODELS[0]): {"text": "", "finish_reason": "content_filter"},
        (1, MODELS[1]): {
            "text": "cut",
            "status": "truncated",
            "finish_reason": "length",
        },
    }
    run = StoredRun(repo, texts)
    widget = _live(repo, run)

    statuses = {key: cell["status"] for key, cell in _page(widget).cells.items()}
    assert statuses == {
        "0-0-0": "empty",
        "0-1-0": "tool_call_only",
        "1-0-0": "content_filtered",
        "1-1-0": "truncated",
    }
    html = widget._repr_mimebundle_()[0]["text/html"]
    for placeholder in (
        "(The model returned no text.)",
        "(The model answered with a tool call only, no text.)",
        "(The provider&#x27;s content filter stopped this answer.)",
        "[truncated]",
    ):
        assert placeholder in html

    # Rating still works on a row without text (C17).
    frontend_message(
        widget, {"kind": "feedback", "key": "1-0-0", "type": "rating", "value": 1}
    )
    assert repo.feedback_frame(run.id)["kind"].tolist() == ["rating"]
    widget.close()


def test_widget_never_sends_live_html_from_model_text(repo: Repository) -> None:
    texts = {
        (i, m): {"text": C32_PAYLOADS[(i * 2 + j) % 3]}
        for i in range(2)
        for j, m in enumerate(MODELS)
    }
    texts[(1, MODELS[1])] = {"text": "\n\n".join(C32_PAYLOADS)}
    run = StoredRun(repo, texts)
    widget = _live(repo, run)

    # Every HTML string on the wire and in the static fallback is inert (C32).
    page = _page(widget)
    htmls = [cell["html"] for cell in page.cells.values()]
    assert all(htmls)
    for _, data in widget.comm.messages():
        for cell in (
            data.get("content", data.get("state", {})).get("cells", {}).values()
        ):
            if cell.get("html"):
                assert_inert(cell["html"])
    for fragment in htmls:
        assert_inert(fragment)
    bundle = widget._repr_mimebundle_()[0]
    assert_inert(bundle["text/html"])
    assert C32_PAYLOADS[2] in visible_text(bundle["text/html"])
    assert set(bundle) == {
        "text/plain",
        "text/html",
        "application/vnd.jupyter.widget-view+json",
    }
    widget.close()


def test_widget_masks_keys_in_errors(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRETSECRET")
    texts = dict(SIMPLE)
    texts[(1, MODELS[0])] = {
        "status": "failed",
        "error_kind": "auth",
        "error_message": "401: key sk-test-SECRETSECRET rejected",
    }
    run = StoredRun(repo, texts)
    widget = _live(repo, run)

    wire = json.dumps(
        [widget.comm.opening_state(), [d for _, d in widget.comm.messages()]]
    )
    bundle = json.dumps(widget._repr_mimebundle_()[0])
    assert "SECRETSECRET" not in wire
    assert "SECRETSECRET" not in bundle
    cell = _page(widget).cells["1-0-0"]
    assert (cell["status"], cell["error_kind"]) == ("failed", "auth")
    assert "failed (auth)" in bundle
    widget.close()


def test_static_fallback_lists_items_models_and_summary(repo: Repository) -> None:
    run = StoredRun(repo, SIMPLE)
    widget = _live(repo, run)

    text = widget._repr_mimebundle_()[0]["text/plain"]

    assert text.splitlines() == [
        "Comparison feedback test: 4/4 done · $0.01 of $1.00 budget · 2.5 s · complete",
        "[0] What is 2+2?",
        "    openai:gpt-4o: [done] 4",
        "    anthropic:claude-sonnet-4-5: [done] Four.",
        "[1] Name a colour.",
        "    openai:gpt-4o: [done] Blue",
        "    anthropic:claude-sonnet-4-5: [done] Red",
    ]
    widget.close()
