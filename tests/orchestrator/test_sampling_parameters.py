"""top_p, stop and seed reach the providers, the store and the cache key."""

from __future__ import annotations

import pytest

from maquina_nb.errors import ConfigurationError
from maquina_nb.orchestrator import aorchestrate, orchestrate
from maquina_nb.testing import FakeLLMServer


def test_sampling_parameters_reach_both_providers_and_the_store(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    run = orchestrate(
        "Count to three",
        ["openai:gpt-4o", "anthropic:claude-haiku-4-5"],
        top_p=0.5,
        stop=["END"],
        seed=7,
        db=db_url,
    )

    bodies = {r.api: r.body for r in fake_llm_server.requests}
    assert (bodies["openai"]["top_p"], bodies["openai"]["stop"]) == (0.5, ["END"])
    assert bodies["openai"]["seed"] == 7
    assert (bodies["anthropic"]["top_p"], bodies["anthropic"]["stop_sequences"]) == (
        0.5,
        ["END"],
    )
    assert "seed" not in bodies["anthropic"]  # the Messages API has none
    stored = run.to_pandas()["request_parameters"].tolist()
    assert all(p["top_p"] == 0.5 and p["seed"] == 7 for p in stored)


def test_another_seed_is_another_request(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    for seed in (1, 1, 2):
        orchestrate("Pick a number", ["openai:gpt-4o"], seed=seed, db=db_url)

    assert [r.body["seed"] for r in fake_llm_server.requests] == [1, 2]


async def test_the_async_twin_takes_them_too(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    await aorchestrate("Hi", ["openai:gpt-4o"], stop="STOP", db=db_url)

    assert fake_llm_server.requests[0].body["stop"] == ["STOP"]


def test_a_bad_top_p_is_one_sentence(db_url: str) -> None:
    with pytest.raises(ConfigurationError, match="top_p must be a number from 0 to 1"):
        orchestrate("Hi", ["echo"], top_p=1.5, db=db_url)
