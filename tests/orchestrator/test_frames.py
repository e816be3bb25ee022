"""Run.to_pandas(), Run.comparison() and runs through the real SDKs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maquina_nb.errors import ProviderConnectionError
from maquina_nb.orchestrator import orchestrate
from maquina_nb.providers import resolve_model
from maquina_nb.providers.base import Completion, ModelRequest
from maquina_nb.testing import FakeLLMServer, Reply

from .conftest import ScriptedModel

#: The documented columns of Run.to_pandas(), in order.
COLUMNS = [
    "response_id",
    "run_id",
    "item_index",
    "sample_index",
    "model_spec",
    "provider",
    "model_id",
    "status",
    "prompt",
    "text",
    "finish_reason",
    "raw_finish_reason",
    "error_kind",
    "error_message",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "cost_is_estimate",
    "latency_s",
    "ttft_s",
    "cache_key",
    "cached_from_id",
    "variables",
    "created_at",
    "updated_at",
    "request_parameters",
    "messages",
    "tool_calls",
]


def test_to_pandas_has_the_documented_columns_and_dtypes(db_url: str) -> None:
    def script(request: ModelRequest) -> Completion | None:
        if request.turns[-1].content == "Q: b":
            raise ProviderConnectionError("down", provider="custom", model="y")
        return None

    df = pd.DataFrame({"q": ["a", "b"]})
    run = orchestrate(
        "Q: {{ q }}",
        [ScriptedModel("x", cost=0.25), ScriptedModel("y", cost=None, script=script)],
        over=df,
        db=db_url,
    )

    frame = run.to_pandas()

    assert list(frame.columns) == COLUMNS
    volatile = [
        "response_id",
        "run_id",
        "latency_s",
        "ttft_s",
        "cache_key",
        "created_at",
        "updated_at",
    ]
    expected = pd.DataFrame(
        {
            "item_index": pd.array([0, 0, 1, 1], dtype="Int64"),
            "sample_index": pd.array([0, 0, 0, 0], dtype="Int64"),
            "model_spec": pd.Categorical(["custom:x", "custom:y"] * 2),
            "provider": pd.Categorical(["custom"] * 4),
            "model_id": pd.Categorical(["x-v1", "y-v1", "x-v1", "y"]),
            "status": pd.Categorical(["done", "done", "done", "failed"]),
            "prompt": pd.array(["Q: a", "Q: a", "Q: b", "Q: b"], dtype="str"),
            "text": pd.array(["x: Q: a", "y: Q: a", "x: Q: b", np.nan], dtype="str"),
            "finish_reason": pd.Categorical(["stop", "stop", "stop", "error"]),
            "raw_finish_reason": pd.Categorical(["stop", "stop", "stop", None]),
            "error_kind": pd.Categorical([None, None, None, "connection"]),
            "error_message": pd.array([np.nan, np.nan, np.nan, "down"], dtype="str"),
            "input_tokens": pd.array([2, 2, 2, pd.NA], dtype="Int64"),
            "output_tokens": pd.array([3, 3, 3, pd.NA], dtype="Int64"),
            "cached_tokens": pd.array([pd.NA] * 4, dtype="Int64"),
            "cost_usd": [0.25, np.nan, 0.25, np.nan],
            "cost_is_estimate": [False] * 4,
            "cached_from_id": pd.array([np.nan] * 4, dtype="str"),
            "variables": [{"q": "a"}, {"q": "a"}, {"q": "b"}, {"q": "b"}],
            "request_parameters": [
                {
                    "temperature": None,
                    "max_tokens": None,
                    "top_p": None,
                    "stop": None,
                    "seed": None,
                    "extra": {},
                }
            ]
            * 4,
            "messages": [[{"role": "user", "content": f"Q: {q}"}] for q in "aabb"],
            "tool_calls": [None] * 4,
        }
    )
    pd.testing.assert_frame_equal(
        frame.drop(columns=volatile).reset_index(drop=True), expected
    )
    assert frame["created_at"].dtype == "datetime64[us, UTC]"
    assert frame["latency_s"].dtype == "float64"
    assert set(frame["run_id"]) == {run.id}


def test_to_pandas_lists_models_in_the_given_order_not_finish_order(
    db_url: str,
) -> None:
    # The first model answers last, so finish order and model order differ.
    slow, fast = ScriptedModel("slow", delay=0.3), ScriptedModel("fast")
    run = orchestrate(["p", "q"], [slow, fast], samples=2, db=db_url)

    frame = run.to_pandas()
    rows = list(
        zip(
            frame["item_index"],
            frame["model_spec"].astype(str),
            frame["sample_index"],
            strict=True,
        )
    )
    assert rows == [
        (item, spec, sample)
        for item in (0, 1)
        for spec in ("custom:slow", "custom:fast")
        for sample in (0, 1)
    ]
    assert frame["created_at"].iloc[0] > frame["created_at"].iloc[2]


def test_multi_turn_frame_shows_the_conversation(db_url: str) -> None:
    model = ScriptedModel("m")
    question = {"turns": ["Write a poem.", "Now shorter."]}

    run = orchestrate([question], [model], db=db_url, system="Be brief.")
    frame = run.to_pandas()

    (row,) = frame.to_dict(orient="records")
    assert (row["prompt"], row["text"]) == ("Now shorter.", "m: Now shorter.")
    assert row["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Write a poem."},
        {"role": "assistant", "content": "m: Write a poem."},
        {"role": "user", "content": "Now shorter."},
    ]


def test_comparison_is_items_by_models(db_url: str) -> None:
    run = orchestrate(["p", "q"], [ScriptedModel("x"), ScriptedModel("y")], db=db_url)

    table = run.comparison()

    assert table.to_dict() == {
        "custom:x": {0: "x: p", 1: "x: q"},
        "custom:y": {0: "y: p", 1: "y: q"},
    }


def test_totals_add_up(db_url: str) -> None:
    run = orchestrate(["a b", "c"], [ScriptedModel("x", cost=0.5)], db=db_url)

    totals = run.totals
    assert (totals.responses, totals.answered, totals.failed, totals.cost_usd) == (
        2,
        2,
        0,
        1.0,
    )
    assert (totals.input_tokens, totals.output_tokens) == (2 + 1, 3 + 2)
    assert totals.latency_p50_s is not None
    assert totals.latency_p50_s <= totals.latency_p90_s <= totals.latency_p99_s


def test_one_failing_provider_among_three_through_the_sdks(db_url: str) -> None:
    with FakeLLMServer() as fake:
        gpt = resolve_model(
            "openai:gpt-4o", base_url=fake.openai_base_url, api_key="sk-test-three"
        )
        claude = resolve_model(
            "anthropic:claude-sonnet-4-5",
            base_url=fake.anthropic_base_url,
            api_key="sk-ant-test-three",
        )
        # Port 9 (discard) is closed on loopback: connection refused.
        down = resolve_model(
            "openai-compatible:llama3.1",
            base_url="http://127.0.0.1:9/v1",
            max_attempts=1,
        )

        run = orchestrate(["hello", "again"], [gpt, claude, down], db=db_url)

    assert run.status == "partial"
    assert [(r.model_spec, r.status, r.error_kind) for r in run.responses] == [
        ("openai:gpt-4o", "done", None),
        ("anthropic:claude-sonnet-4-5", "done", None),
        ("openai-compatible:llama3.1", "failed", "connection"),
    ] * 2
    assert run.responses[0].text == "Fake answer: hello"
    assert run.responses[1].cost_usd > 0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
def test_truncated_sdk_answer_is_flagged_and_not_reused(
    db_url: str, stream: bool
) -> None:
    with FakeLLMServer() as fake:
        gpt = resolve_model(
            "openai:gpt-4o", base_url=fake.openai_base_url, api_key="sk-test-trunc"
        )
        fake.enqueue(Reply(text="The answer is", finish="length"))

        first = orchestrate("q", [gpt], db=db_url, max_tokens=5, stream=stream)
        second = orchestrate("q", [gpt], db=db_url, max_tokens=5, stream=stream)

        assert [r.status for r in first.responses + second.responses] == [
            "truncated",
            "done",
        ]
        assert first.responses[0].text == "The answer is"
        assert len(fake.requests_for()) == 2


def test_c29_braces_reach_the_server_verbatim(db_url: str) -> None:
    df = pd.DataFrame({"code": ["{x: x**2 for x in nums}", '{"a": 1}']})

    with FakeLLMServer() as fake:
        gpt = resolve_model(
            "openai:gpt-4o", base_url=fake.openai_base_url, api_key="sk-test-c29"
        )
        orchestrate(
            'Explain this code: {{ code }}\nAnswer as {"verdict": "..."}',
            [gpt],
            over=df,
            db=db_url,
        )
        prompts = sorted(r.prompt for r in fake.requests_for())

    assert prompts == [
        'Explain this code: {"a": 1}\nAnswer as {"verdict": "..."}',
        'Explain this code: {x: x**2 for x in nums}\nAnswer as {"verdict": "..."}',
    ]


def test_budget_refusal_with_real_prices_sends_nothing(db_url: str) -> None:
    from maquina_nb.errors import BudgetExceededError

    with FakeLLMServer() as fake:
        gpt = resolve_model(
            "openai:gpt-4o", base_url=fake.openai_base_url, api_key="sk-test-budget"
        )

        with pytest.raises(BudgetExceededError) as caught:
            orchestrate(["a", "b"], [gpt], db=db_url, max_tokens=1000, max_cost=0.0001)

        assert fake.requests_for() == []
    # Two requests bounded by 1,000 output tokens each at gpt-4o's price.
    assert caught.value.estimate > 0.0001
