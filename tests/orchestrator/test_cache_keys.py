"""C35: a cache key covers everything that decides an answer, and nothing less."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from maquina_nb.orchestrator import orchestrate
from maquina_nb.orchestrator.cache import cache_key
from maquina_nb.providers import resolve_model
from maquina_nb.providers.base import Message, ModelRequest
from maquina_nb.testing import FakeLLMServer

from .conftest import ScriptedModel

_IDENTITY = {"provider": "openai", "model": "gpt-4o"}
_BASE = ModelRequest(messages=(Message("user", "Say hi"),))


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"temperature": 0.0}, id="temperature-explicit-vs-default"),
        pytest.param({"max_tokens": 16}, id="max_tokens"),
        pytest.param({"top_p": 0.9}, id="top_p"),
        pytest.param({"stop": ("\n",)}, id="stop"),
        pytest.param({"seed": 7}, id="seed"),
        pytest.param({"extra": {"tool_choice": "none"}}, id="extra"),
        pytest.param(
            {"messages": (Message("system", "Be terse."), Message("user", "Say hi"))},
            id="system",
        ),
        pytest.param({"messages": (Message("user", "Say hi!"),)}, id="prompt"),
    ],
)
def test_cache_key_changes_with_every_request_field(changed: dict[str, Any]) -> None:
    other = ModelRequest(**{"messages": _BASE.messages, **changed})

    assert cache_key(_IDENTITY, other, 0) != cache_key(_IDENTITY, _BASE, 0)


def test_cache_key_changes_with_identity_and_sample() -> None:
    at_other_url = {**_IDENTITY, "base_url": "http://127.0.0.1:1/v1"}

    keys = {
        cache_key(_IDENTITY, _BASE, 0),
        cache_key(_IDENTITY, _BASE, 1),
        cache_key(at_other_url, _BASE, 0),
        cache_key({**_IDENTITY, "model": "gpt-4o-mini"}, _BASE, 0),
        cache_key({**_IDENTITY, "provider": "azure"}, _BASE, 0),
    }

    assert len(keys) == 5


def test_cache_key_is_stable_across_equal_numbers() -> None:
    as_int = ModelRequest(messages=_BASE.messages, temperature=1)  # type: ignore[arg-type]
    as_float = ModelRequest(messages=_BASE.messages, temperature=1.0)

    assert cache_key(_IDENTITY, as_int, 0) == cache_key(_IDENTITY, as_float, 0)


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def _gpt(server: FakeLLMServer) -> Any:
    return resolve_model(
        "openai:gpt-4o", base_url=server.openai_base_url, api_key="sk-test-cache-keys"
    )


def _requests_sent(server: FakeLLMServer) -> int:
    return len(server.requests_for())


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"temperature": 0.0}, {"temperature": 1.0}, id="a-temperature"),
        pytest.param({"max_tokens": 16}, {"max_tokens": 2000}, id="b-max_tokens"),
        pytest.param(
            {"system": "Answer in English."},
            {"system": "Answer in French."},
            id="c-system",
        ),
        pytest.param({}, {"temperature": 0.0}, id="f-omitted-vs-zero"),
    ],
)
def test_each_parameter_pair_sends_its_own_request(
    fake: FakeLLMServer, db_url: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    model = _gpt(fake)

    orchestrate("Say hi", [model], db=db_url, **first)
    orchestrate("Say hi", [model], db=db_url, **second)
    assert _requests_sent(fake) == 2

    # Each got its own entry: repeating either one is answered from the cache.
    again = orchestrate("Say hi", [model], db=db_url, **first)
    assert (_requests_sent(fake), again.responses[0].status) == (2, "cached")


def test_d_same_model_name_at_two_servers_is_two_entries(db_url: str) -> None:
    with FakeLLMServer() as one, FakeLLMServer() as two:
        at_one, at_two = _gpt(one), _gpt(two)

        orchestrate("Say hi", [at_one], db=db_url)
        run = orchestrate("Say hi", [at_two], db=db_url)

        assert (_requests_sent(one), _requests_sent(two)) == (1, 1)
        assert run.responses[0].status == "done"


def test_e_custom_model_keys_on_rendered_prompt_and_version(db_url: str) -> None:
    df = pd.DataFrame({"text": ["first document", "second document"]})
    model = ScriptedModel("summariser", version="1")

    run = orchestrate("Summarise {{ text }}", [model], over=df, db=db_url)
    assert [c.turns[-1].content for c in model.calls] == [
        "Summarise first document",
        "Summarise second document",
    ]
    assert run.responses[0].cache_key != run.responses[1].cache_key

    newer = ScriptedModel("summariser", version="2")
    orchestrate("Summarise {{ text }}", [newer], over=df, db=db_url)
    assert len(newer.calls) == 2

    same = ScriptedModel("summariser", version="1")
    rerun = orchestrate("Summarise {{ text }}", [same], over=df, db=db_url)
    assert (same.calls, [r.status for r in rerun.responses]) == (
        [],
        ["cached", "cached"],
    )


def test_key_builder_gives_the_same_keys_as_cache_key() -> None:
    from maquina_nb.orchestrator.cache import KeyBuilder

    builder = KeyBuilder()
    requests = [
        _BASE,
        ModelRequest(
            messages=(Message("user", "é {ü}"),),
            temperature=0.5,
            stop=("x",),
            extra={"b": 1, "a": [1.0]},
        ),
    ]
    identities = [
        _IDENTITY,
        {"provider": "custom", "model": "m", "version": "2", "later_turns": ["t"]},
    ]

    for identity in identities:
        for request in requests:
            for sample in (0, 3):
                assert builder.key(identity, request, sample) == cache_key(
                    identity, request, sample
                )
