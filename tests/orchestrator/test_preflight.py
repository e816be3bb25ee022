"""Models that cannot work are refused before a run exists; failures keep their kind."""

from __future__ import annotations

import logging

import pytest

from maquina_nb.db import Repository
from maquina_nb.errors import ConfigurationError, MissingKeyError
from maquina_nb.orchestrator import orchestrate
from maquina_nb.providers.base import ModelRequest

from .conftest import ScriptedModel


def _no_runs(db_url: str) -> bool:
    return Repository.from_url(db_url).list_runs().runs == []


def test_missing_keys_are_refused_up_front_naming_each_variable(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    with pytest.raises(MissingKeyError) as caught:
        orchestrate("k", ["gpt-4o", "claude"], db=db_url)

    message = str(caught.value)
    assert "The 'gpt-4o' model needs OPENAI_API_KEY" in message
    assert "The 'claude' model needs ANTHROPIC_API_KEY" in message
    assert "\n" not in message
    assert [(m, v) for m, v in caught.value.missing] == [
        ("gpt-4o", "OPENAI_API_KEY"),
        ("claude", "ANTHROPIC_API_KEY"),
    ]
    assert _no_runs(db_url)


def test_a_compatible_server_without_base_url_is_refused_before_pricing(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(ConfigurationError, match="needs a base URL"),
    ):
        orchestrate("k", ["openai-compatible:mine"], db=db_url)

    assert not [r for r in caplog.records if "no price known" in r.getMessage()]
    assert _no_runs(db_url)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        pytest.param(MissingKeyError("custom:a", "MY_KEY"), "missing_key", id="key"),
        pytest.param(ConfigurationError("Bad setting."), "configuration", id="config"),
    ],
)
def test_configuration_errors_reaching_a_row_keep_their_kind(
    db_url: str, error: Exception, kind: str
) -> None:
    def fail(request: ModelRequest) -> None:
        raise error

    run = orchestrate("k", [ScriptedModel("a", script=fail)], db=db_url)

    assert [(r.status, r.error_kind) for r in run.responses] == [("failed", kind)]


def test_each_failing_model_is_reported(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(request: ModelRequest) -> None:
        raise RuntimeError("down")

    models = [ScriptedModel("a", script=fail), ScriptedModel("b", script=fail)]
    with caplog.at_level(logging.WARNING, logger="maquina_nb"):
        orchestrate("k", models, db=db_url)

    reported = sorted(
        r.getMessage().split(" ")[0]
        for r in caplog.records
        if "the run goes on" in r.getMessage()
    )
    assert reported == ["custom:a", "custom:b"]
