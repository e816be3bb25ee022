"""max_cost holds with many requests in flight: each reserves its worst case first."""

from __future__ import annotations

import pytest

from maquina_nb.orchestrator import events as ev, orchestrate
from maquina_nb.orchestrator.budget import worst_case_output_tokens
from maquina_nb.providers import resolve_model
from maquina_nb.testing import FakeLLMServer, Reply


def test_budget_holds_with_default_concurrency(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    # Every answer claims 100k output tokens: $1.00 each at gpt-4o's price.
    fake_llm_server.default_reply = Reply(text="long", output_tokens=100_000)
    seen: list[ev.Event] = []

    run = orchestrate(
        [f"q{i}" for i in range(10)],
        ["openai:gpt-4o"],
        db=db_url,
        max_cost=0.2,
        on_event=seen.append,
    )

    # One request fits its worst case in $0.20; the rest wait, then are skipped.
    assert len(fake_llm_server.requests) == 1
    statuses = [r.status for r in run.responses]
    assert statuses.count("done") == 1
    assert statuses.count("skipped") == 9
    assert run.status == "partial"
    assert run.totals.cost_usd == pytest.approx(1.0, rel=0.01)
    skipped = [r for r in run.responses if r.status == "skipped"]
    assert {r.error_kind for r in skipped} == {"budget"}
    assert skipped[0].error_message.startswith("Not sent: spend reached max_cost=$0.20")
    assert run.notice is not None
    assert "max_cost" in run.notice
    assert "9 of 10" in run.notice
    finished = next(e for e in seen if isinstance(e, ev.RunFinished))
    assert finished.extra["budget_stopped"] is True


def test_reservation_larger_than_what_is_left_is_not_sent(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    # gpt-4o without max_tokens may write 16,384 tokens ($0.16): more than $0.10.
    run = orchestrate(["q0", "q1"], ["openai:gpt-4o"], db=db_url, max_cost=0.1)

    assert fake_llm_server.requests == []
    assert [r.status for r in run.responses] == ["skipped", "skipped"]
    message = run.responses[0].error_message
    assert "worst-case cost" in message
    assert "16,384 output tokens" in message
    assert "max_tokens" in message
    assert run.status == "failed"
    assert "max_cost" in (run.notice or "")


def test_max_tokens_bounds_the_reservation(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    fake_llm_server.default_reply = Reply(text="short", output_tokens=10)

    run = orchestrate(
        [f"q{i}" for i in range(5)],
        ["openai:gpt-4o"],
        db=db_url,
        max_cost=0.2,
        max_tokens=100,
    )

    assert [r.status for r in run.responses] == ["done"] * 5
    assert run.status == "complete"
    assert run.notice is None


def test_worst_case_output_tokens_names_its_source() -> None:
    gpt = resolve_model(
        "openai:gpt-4o", api_key="sk-test", base_url="http://127.0.0.1:9/v1"
    )
    from maquina_nb.providers.base import Message, ModelRequest

    request = ModelRequest(messages=(Message("user", "hi"),))
    assert worst_case_output_tokens(gpt, request) == (16_384, "its output limit")
    bounded = ModelRequest(messages=(Message("user", "hi"),), max_tokens=50)
    assert worst_case_output_tokens(gpt, bounded) == (50, "max_tokens")
