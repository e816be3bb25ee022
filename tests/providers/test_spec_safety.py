"""Spec strings are data: a base_url written in one never gets the environment's key."""

from __future__ import annotations

from pathlib import Path

import pytest

from maquina_nb.errors import MissingKeyError
from maquina_nb.providers import check_credentials, resolve_model
from maquina_nb.testing import FakeLLMServer

from .helpers import ask

ENV_KEYS = {
    "openai": ("OPENAI_API_KEY", "sk-test-ENVKEYOPENAI"),
    "anthropic": ("ANTHROPIC_API_KEY", "sk-ant-ENVKEYANTHROPIC"),
}
SPECS = {"openai": "openai:gpt-4o", "anthropic": "anthropic:claude-haiku-4-5"}


def _url(fake: FakeLLMServer, provider: str) -> str:
    return fake.openai_base_url if provider == "openai" else fake.anthropic_base_url


@pytest.fixture(autouse=True)
def _env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV_KEYS.values():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_spec_base_url_does_not_get_the_environment_key(
    fake: FakeLLMServer, provider: str
) -> None:
    model = resolve_model(f"{SPECS[provider]}?base_url={_url(fake, provider)}")

    with pytest.raises(MissingKeyError, match="key_env") as caught:
        await model.generate(ask())

    assert fake.requests == []
    assert ENV_KEYS[provider][1] not in str(caught.value)
    report = check_credentials([model.spec]).iloc[0]
    assert report["status"] == "missing"
    assert "key_env" in report["detail"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_the_environment_key_goes_to_the_environment_base_url(
    fake: FakeLLMServer, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{provider.upper()}_BASE_URL", _url(fake, provider))
    model = resolve_model(f"{SPECS[provider]}?base_url={_url(fake, provider)}/")

    await model.generate(ask())

    assert fake.requests[0].api_key == ENV_KEYS[provider][1]


async def test_a_key_named_in_code_goes_to_a_spec_base_url(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCAL_SERVER_KEY", "local-key-123456")
    model = resolve_model(
        f"openai:gpt-4o?base_url={fake.openai_base_url}", key_env="LOCAL_SERVER_KEY"
    )

    await model.generate(ask())

    assert [r.api_key for r in fake.requests] == ["local-key-123456"]


async def test_an_alias_in_maquina_toml_may_name_its_key(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOCAL_SERVER_KEY", "local-key-123456")
    (tmp_path / "maquina.toml").write_text(
        "[models.local]\n"
        f'spec = "openai:gpt-4o?base_url={fake.openai_base_url}"\n'
        'key_env = "LOCAL_SERVER_KEY"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    await resolve_model("local").generate(ask())

    assert [r.api_key for r in fake.requests] == ["local-key-123456"]


async def test_a_base_url_set_in_code_or_config_keeps_the_environment_key(
    fake: FakeLLMServer,
) -> None:
    model = resolve_model("openai:gpt-4o", base_url=fake.openai_base_url)

    await model.generate(ask())

    assert fake.requests[0].api_key == ENV_KEYS["openai"][1]


def test_a_run_says_why_a_spec_base_url_has_no_key(
    fake: FakeLLMServer, tmp_path: Path
) -> None:
    from maquina_nb.orchestrator import orchestrate

    spec = f"openai:gpt-4o?base_url={fake.openai_base_url}"

    with pytest.raises(MissingKeyError) as caught:
        orchestrate("Hi", ["echo", spec], db=f"sqlite:///{tmp_path / 'r.db'}")

    assert "does not get the key in OPENAI_API_KEY" in str(caught.value)
    assert fake.requests == []


IDENTITY_ENV = {
    "OPENAI_ORG_ID": "org-ENVORG",
    "OPENAI_PROJECT_ID": "proj_ENVPROJECT",
    "OPENAI_CUSTOM_HEADERS": "X-Gateway-Token: ENVGATEWAY\nX-Team: research",
    "ANTHROPIC_CUSTOM_HEADERS": "X-Gateway-Token: ENVGATEWAY",
}


def _sent_identity(fake: FakeLLMServer) -> str:
    return repr(sorted(fake.requests[0].headers.items()))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_spec_base_url_gets_no_identity_from_the_environment(
    fake: FakeLLMServer, provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in IDENTITY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOCAL_SERVER_KEY", "local-key-123456")
    model = resolve_model(
        f"{SPECS[provider]}?base_url={_url(fake, provider)}", key_env="LOCAL_SERVER_KEY"
    )

    await model.generate(ask())
    await model.check_live()

    assert len(fake.requests) == 2
    for request in fake.requests:
        sent = repr(sorted(request.headers.items()))
        assert "ENV" not in sent
        assert "x-team" not in sent
    await model.aclose()


@pytest.mark.parametrize("spec", ["ollama:llama3.1", "openai-compatible:local"])
async def test_a_local_server_gets_no_openai_identity(
    fake: FakeLLMServer, spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in IDENTITY_ENV.items():
        monkeypatch.setenv(name, value)

    await resolve_model(spec, base_url=fake.openai_base_url).generate(ask())

    assert "ENV" not in _sent_identity(fake)


async def test_the_environment_base_url_keeps_the_environment_identity(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in IDENTITY_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)

    await resolve_model("openai:gpt-4o").generate(ask())

    headers = fake.requests[0].headers
    assert headers["openai-organization"] == "org-ENVORG"
    assert headers["openai-project"] == "proj_ENVPROJECT"
    assert headers["x-gateway-token"] == "ENVGATEWAY"
