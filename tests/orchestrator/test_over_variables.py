"""With ``over=``, a template sees the row's columns and nothing else."""

from __future__ import annotations

import pandas as pd
import pytest

from maquina_nb.db import Repository
from maquina_nb.errors import TemplateError
from maquina_nb.orchestrator import orchestrate

from .conftest import ScriptedModel


def test_a_caller_variable_never_fills_a_missing_column(db_url: str) -> None:
    text = "GLOBAL LEAK"  # noqa: F841 - the caller's variable that must not leak
    df = pd.DataFrame({"question": ["a", "b"]})
    model = ScriptedModel("a")

    with pytest.raises(TemplateError) as caught:
        orchestrate("Answer: {{ text }}", [model], over=df, db=db_url)

    assert caught.value.variable == "text"
    assert "'question'" in str(caught.value)
    assert model.calls == []
    assert Repository.from_url(db_url).list_runs().runs == []


def test_the_system_prompt_is_rendered_from_the_row(db_url: str) -> None:
    lang = "GLOBAL"  # noqa: F841
    df = pd.DataFrame({"q": ["one", "two"], "lang": ["French", "Greek"]})
    model = ScriptedModel("a")

    orchestrate("{{ q }}", [model], over=df, system="Reply in {{ lang }}", db=db_url)

    assert sorted(call.messages[0].content for call in model.calls) == [
        "Reply in French",
        "Reply in Greek",
    ]


def test_without_over_the_callers_variables_still_apply(db_url: str) -> None:
    lang = "Greek"  # noqa: F841
    model = ScriptedModel("a")

    run = orchestrate("Hi", [model], system="Reply in {{ lang }}", db=db_url)

    assert run.status == "complete"
    assert model.calls[0].messages[0].content == "Reply in Greek"
