"""Every model setting is checked and coerced once, when the model is resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from maquina_nb.errors import ConfigurationError
from maquina_nb.providers import configure_model, resolve_model
from maquina_nb.providers.settings import ModelSettings
from maquina_nb.testing import FakeLLMServer

from .helpers import ask


def test_spec_options_are_coerced_to_their_types() -> None:
    model = resolve_model(
        "openai:gpt-4o?requests_per_minute=10&timeout=2.5&free=true&max_attempts=2"
        "&tokens_per_minute=1e3"
    )

    settings = model.settings
    assert settings.requests_per_minute == 10
    assert type(settings.requests_per_minute) is int
    assert (settings.timeout, settings.free, settings.max_attempts) == (2.5, True, 2)
    assert settings.tokens_per_minute == 1000


async def test_a_model_with_spec_limits_answers(fake: FakeLLMServer) -> None:
    model = resolve_model(
        "openai:gpt-4o?requests_per_minute=10&max_in_flight=2&timeout=30",
        base_url=fake.openai_base_url,
        api_key="test-key-1234",
    )

    completion = await model.generate(ask())

    assert completion.text
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("openai:gpt-4o?timeout=abc", ["timeout", "'abc'", "number"]),
        ("openai:gpt-4o?requests_per_minute=0", ["requests_per_minute", "above 0"]),
        ("openai:gpt-4o?requests_per_minute=-5", ["requests_per_minute", "'-5'"]),
        ("openai:gpt-4o?requests_per_minute=ten", ["requests_per_minute", "whole"]),
        ("openai:gpt-4o?max_in_flight=1.5", ["max_in_flight", "whole"]),
        ("openai:gpt-4o?read_timeout=nan", ["read_timeout"]),
        ("openai:gpt-4o?free=maybe", ["free", "true or false"]),
        ("openai:gpt-4o?base_url=file:///etc/passwd", ["base_url", "http"]),
        (
            "openai:gpt-4o?requests_per_minut=5",
            ["requests_per_minut", "Did you mean 'requests_per_minute'"],
        ),
        ("echo?latncy=1", ["latncy", "Did you mean 'latency'"]),
        ("echo?latency=-1", ["latency", "0 or more"]),
        ("echo:slow?chunk_delay=abc", ["chunk_delay", "'abc'"]),
        ("replay:gpt-4?pth=x.jsonl", ["pth", "Did you mean 'path'"]),
    ],
)
def test_bad_spec_options_are_refused_at_resolve_time(
    spec: str, words: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_model(spec)

    message = str(caught.value)
    for word in words:
        assert word in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("requests_per_minute = -5", ["requests_per_minute", "-5", "[models.x]"]),
        ("requests_per_minute = 0", ["requests_per_minute", "above 0"]),
        ('requests_per_minute = "ten"', ["requests_per_minute", "'ten'"]),
        ("requests_per_minute = true", ["requests_per_minute", "True"]),
        ("timeout = -1", ["timeout", "above 0"]),
        ('parameters = "hot"', ["parameters", "table"]),
        ("max_attempts = 0", ["max_attempts"]),
        ("input_price_per_mtok = -1", ["input_price_per_mtok", "0 or more"]),
        ("spec = 5", ["spec", "text"]),
    ],
)
def test_bad_values_in_maquina_toml_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, words: list[str]
) -> None:
    spec_line = "" if line.startswith("spec") else 'spec = "openai:gpt-4o"\n'
    (tmp_path / "maquina.toml").write_text(
        f"[models.x]\n{spec_line}{line}\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigurationError) as caught:
        resolve_model("x")

    for word in words:
        assert word in str(caught.value)


def test_numbers_written_as_text_in_maquina_toml_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maquina.toml").write_text(
        '[models.x]\nspec = "openai:gpt-4o"\nrequests_per_minute = "60"\n'
        'timeout = 30\nfree = "yes"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    settings = resolve_model("x").settings

    assert (settings.requests_per_minute, settings.timeout, settings.free) == (
        60,
        30.0,
        True,
    )


def test_bad_values_in_code_are_refused_where_they_are_given() -> None:
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        configure_model("fast", spec="openai:gpt-4o", requests_per_minute=0)
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        resolve_model("gpt-4o", requests_per_minute=0)
    with pytest.raises(ConfigurationError, match="max_retry_after"):
        resolve_model("gpt-4o", max_retry_after="soon")
    with pytest.raises(ConfigurationError, match="latency"):
        resolve_model("echo", latency="abc")
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        ModelSettings(requests_per_minute="ten")  # type: ignore[arg-type]


def test_a_run_with_a_bad_setting_is_refused_before_it_starts(tmp_path: Path) -> None:
    from maquina_nb.orchestrator import orchestrate

    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        orchestrate(
            "Hi",
            ["echo", "openai:gpt-4o?requests_per_minute=0"],
            db=f"sqlite:///{tmp_path / 'runs.db'}",
            stream=False,
        )


def test_an_empty_api_key_still_means_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-from-the-environment")

    model = resolve_model("gpt-4o", api_key="")

    assert model.key_info().source == "OPENAI_API_KEY"


def test_default_request_parameters_are_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maquina.toml").write_text(
        '[models.x]\nspec = "openai:gpt-4o"\n'
        'parameters = { max_tokens = "100", stop = "END", temperature = 0, '
        "top_p = 1, seed = 7, logprobs = true }\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    parameters = resolve_model("x").settings.parameters

    assert parameters == {
        "max_tokens": 100,
        "stop": ["END"],
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 7,
        "logprobs": True,
    }


@pytest.mark.parametrize(
    "parameters",
    [
        {"max_tokens": "lots"},
        {"max_tokens": 0},
        {"temperature": "hot"},
        {"temperature": -1},
        {"top_p": 2},
        {"seed": 1.5},
        {"stop": [1, 2]},
    ],
)
def test_bad_default_request_parameters_are_refused(
    parameters: dict[str, object],
) -> None:
    name = next(iter(parameters))

    with pytest.raises(ConfigurationError, match=f"parameters.{name}"):
        resolve_model("gpt-4o", parameters=parameters)
