"""orchestrate() checks its arguments the way %%orchestrate does, in one sentence."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from maquina_nb.db import Repository
from maquina_nb.errors import ConfigurationError, TemplateError
from maquina_nb.orchestrator import orchestrate
from maquina_nb.orchestrator.cache import cache_key
from maquina_nb.providers.base import Message, ModelRequest

from .conftest import ScriptedModel


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"temperature": -1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": "abc"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"tags": 5}, "tags"),
        ({"tags": ["ok", ""]}, "tags"),
    ],
)
def test_bad_arguments_are_refused_before_a_run_exists(
    db_url: str, options: dict, field: str
) -> None:
    model = ScriptedModel("m")

    with pytest.raises(ConfigurationError) as caught:
        orchestrate("hi", [model], db=db_url, **options)

    message = str(caught.value)
    assert message.startswith(f"{field} must be")
    assert message.count(". ") == 0
    assert model.calls == []
    assert Repository.from_url(db_url).list_runs().runs == []


def test_a_string_tag_is_one_tag(db_url: str) -> None:
    run = orchestrate("hi", [ScriptedModel("m")], db=db_url, tags="abc")

    assert Repository.from_url(db_url).get_run(run.id).tags == ["abc"]


@pytest.mark.parametrize("prompt", ["", "   ", ["fine", ""]])
def test_an_empty_prompt_is_refused(db_url: str, prompt: object) -> None:
    model = ScriptedModel("m")

    with pytest.raises(TemplateError, match="empty"):
        orchestrate(prompt, [model], db=db_url)

    assert model.calls == []


def test_a_row_rendering_to_an_empty_prompt_is_refused_naming_it(db_url: str) -> None:
    model = ScriptedModel("m")

    with pytest.raises(TemplateError, match="row 1"):
        orchestrate("{{ q }}", [model], over=[{"q": "a"}, {"q": ""}], db=db_url)

    assert model.calls == []


def test_duplicated_column_names_are_refused(db_url: str) -> None:
    frame = pd.DataFrame([[1, 2]], columns=["q", "q"])

    with pytest.raises(TemplateError, match="'q'"):
        orchestrate("{{ q }}", [ScriptedModel("m")], over=frame, db=db_url)


def test_lone_surrogates_become_replacement_characters(db_url: str) -> None:
    model = ScriptedModel("m")

    run = orchestrate("Say {{ q }}", [model], over=[{"q": "a\ud800b"}], db=db_url)

    assert run.status == "complete"
    assert model.calls[0].messages[-1].content == "Say a\ufffdb"
    assert run.responses[0].variables == {"q": "a\ufffdb"}
    stored = run.to_pandas()
    assert stored["variables"].tolist() == [{"q": "a\ufffdb"}]


def test_cache_key_takes_lone_surrogates() -> None:
    request = ModelRequest(messages=(Message("user", "x\udc80"),))

    assert len(cache_key({"provider": "p", "model": "m"}, request, 0)) == 64


def test_an_unreachable_database_is_one_sentence_without_the_password() -> None:
    import socket

    from maquina_nb.errors import StoreError
    from maquina_nb.orchestrator import orchestrate

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://maquina:PASSWORD123@127.0.0.1:{port}/maquina"

    with pytest.raises(StoreError) as caught:
        orchestrate("Hi", ["echo"], db=url)

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "PASSWORD123" not in message
    assert "\n" not in message
    assert caught.value.__cause__ is None
