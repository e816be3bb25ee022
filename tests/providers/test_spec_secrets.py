"""Keys never ride in spec strings, and keys given in code are redacted at once."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest

from maquina_nb._redact import redact
from maquina_nb.errors import ConfigurationError
from maquina_nb.providers import configure_model, resolve_model

CANARY = "INLINESECRETX"


def _texts_of(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


@pytest.mark.parametrize(
    "spec",
    [
        f"openai:gpt-4o?api_key=sk-test-{CANARY}",
        f"anthropic:claude-haiku-4-5?api_key=plain{CANARY}",
        f"openai:gpt-4o?base_url=http://127.0.0.1:1/v1&key_env={CANARY}",
        f"openai-compatible:x?base_url=http://127.0.0.1:1/v1&token={CANARY}",
        f"ollama:llama3.1?API-KEY={CANARY}",
        f"openai:gpt-4o?apikey={CANARY}",
        f"openai:gpt-4o?client_secret={CANARY}",
        f"openai:gpt-4o?password={CANARY}",
        f"opnai:gpt-4o?api_key={CANARY}",
        f"echo?auth_token={CANARY}",
    ],
)
def test_a_key_in_a_spec_is_refused_without_repeating_it(
    spec: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ConfigurationError) as caught:
        resolve_model(spec)

    message = str(caught.value)
    assert "key_env" in message
    assert "maquina.toml" in message
    assert [t for t in [*_texts_of(caught.value), caplog.text] if CANARY in t] == []
    assert CANARY not in redact(f"logged later: {spec}")


@pytest.mark.parametrize(
    "options", ["tokens_per_minute=1000&timeout=5", "first_token_timeout=30"]
)
def test_settings_named_like_tokens_are_not_taken_for_keys(options: str) -> None:
    model = resolve_model(f"openai:gpt-4o?{options}")

    assert model.spec == f"openai:gpt-4o?{options}"


def test_an_alias_whose_spec_holds_a_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maquina.toml").write_text(
        f'[models.leaky]\nspec = "openai:gpt-4o?api_key=plain{CANARY}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigurationError) as caught:
        resolve_model("leaky")

    assert CANARY not in str(caught.value)


def test_keys_given_in_code_or_config_are_redacted_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_model("mine", spec="openai:gpt-4o", api_key="plain-CODEKEY-1")
    assert "plain-CODEKEY-1" not in redact("the key is plain-CODEKEY-1")

    (tmp_path / "maquina.toml").write_text(
        '[models.theirs]\nspec = "openai:gpt-4o"\napi_key = "plain-FILEKEY-2"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    resolve_model("mine")
    assert "plain-FILEKEY-2" not in redact("the key is plain-FILEKEY-2")


def test_a_run_naming_a_key_in_a_spec_stores_nothing(tmp_path: Path) -> None:
    from maquina_nb.orchestrator import orchestrate

    db_path = tmp_path / "runs.db"
    spec = f"openai:gpt-4o?api_key=sk-test-{CANARY}"

    with pytest.raises(ConfigurationError) as caught:
        orchestrate("Hi", ["echo", spec], db=f"sqlite:///{db_path}", stream=False)

    assert [t for t in _texts_of(caught.value) if CANARY in t] == []
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert CANARY.encode() not in stored


def test_configure_model_refuses_a_spec_holding_a_key_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        configure_model("leaky", spec=f"openai:gpt-4o?token=plain{CANARY}")

    assert CANARY not in str(caught.value)
    with pytest.raises(Exception, match="Unknown model 'leaky'"):
        resolve_model("leaky")


def test_only_the_key_settings_count_as_secret_names() -> None:
    from maquina_nb.providers.settings import _NAMES, is_secret_name

    assert [name for name in _NAMES if is_secret_name(name)] == ["api_key", "key_env"]
    assert not any(is_secret_name(n) for n in ("latency", "chunk_delay", "path"))
