"""Keys: cleaning, refusal before any request, live checks, and the canary (C33)."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from maquina_nb.errors import (
    MissingKeyError,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from maquina_nb.providers import check_credentials, resolve_model
from maquina_nb.providers.settings import ModelSettings
from maquina_nb.testing import FakeLLMServer, Reply

from .helpers import ask

CANARY = "SECRETSECRET"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_c33_trailing_crlf_is_stripped(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"sk-test-{CANARY}\r\n")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)

    await resolve_model("openai:gpt-4o").generate(ask())

    assert fake.requests[0].api_key == f"sk-test-{CANARY}"


async def test_c33_leading_space_is_stripped_for_anthropic(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", f" sk-ant-test-{CANARY}")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)

    await resolve_model("claude").generate(ask())

    assert fake.requests[0].api_key == f"sk-ant-test-{CANARY}"


@pytest.mark.parametrize(
    "bad", [f"sk-test-{CANARY}\nmore", f"sk-test {CANARY}", f"sk-test-{CANARY}\x07x"]
)
async def test_c33_key_with_inner_whitespace_is_refused_before_any_request(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", bad)
    model = resolve_model("openai:gpt-4o", base_url=fake.openai_base_url)

    with pytest.raises(
        ProviderAuthError, match=r"from OPENAI_API_KEY .* inside it; copy the key again"
    ) as caught:
        await model.generate(ask())

    assert fake.requests == []
    assert CANARY not in str(caught.value)


async def test_missing_key_names_the_variable(fake: FakeLLMServer) -> None:
    model = resolve_model("openai:gpt-4o", base_url=fake.openai_base_url)

    with pytest.raises(MissingKeyError, match="needs OPENAI_API_KEY"):
        await model.generate(ask())

    assert fake.requests == []


def _texts_of(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


FAILURES = [
    "openai-401-echo",
    "anthropic-401-echo",
    "500-echo",
    "refused",
    "timeout",
    "malformed",
    "stream-401",
]


@pytest.mark.parametrize("path", FAILURES)
@pytest.mark.parametrize(
    "key", [f"sk-test-{CANARY}", f"plain-{CANARY}-token"], ids=["sk-shaped", "plain"]
)
async def test_c33_canary_key_leaks_nowhere(
    path: str,
    key: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeLLMServer(accepted_keys={"the-right-key"}, echo_key_on_401=True) as fake:
        openai_url, anthropic_url = fake.openai_base_url, fake.anthropic_base_url
        options: dict[str, object] = {"initial_backoff": 0.01, "max_attempts": 2}
        if path == "500-echo":
            fake.accepted_keys = None
            fake.default_reply = Reply(status=500, echo_key=True)
        if path == "refused":
            openai_url = f"http://127.0.0.1:{closed_port()}/v1"
        if path == "timeout":
            fake.accepted_keys = None
            fake.default_reply = Reply(latency=2)
            options["read_timeout"] = 0.1
        if path == "malformed":
            key = key + "\n" + key
        spec, url = (
            ("anthropic:claude-haiku-4-5", anthropic_url)
            if path.startswith("anthropic")
            else ("openai:gpt-4o", openai_url)
        )
        monkeypatch.setenv("MAQUINA_CANARY_KEY", key)
        model = resolve_model(
            spec, base_url=url, key_env="MAQUINA_CANARY_KEY", **options
        )

        async def call() -> None:
            if path == "stream-401":
                async for _ in model.stream(ask()):
                    pass
            else:
                await model.generate(ask())

        with pytest.raises(ProviderError) as caught:
            await call()

        expected = {
            "openai-401-echo": ProviderAuthError,
            "anthropic-401-echo": ProviderAuthError,
            "stream-401": ProviderAuthError,
            "500-echo": ProviderResponseError,
            "refused": ProviderConnectionError,
            "timeout": ProviderTimeoutError,
            "malformed": ProviderAuthError,
        }[path]
        assert isinstance(caught.value, expected)
        if path.endswith("401-echo"):
            assert len(fake.requests) == 1  # rejected keys are not retried
            assert CANARY in str(fake.requests[0].api_key)  # the key really went out

        report = check_credentials([spec], live=False)
        haystack = [
            *_texts_of(caught.value),
            caplog.text,
            *(record.getMessage() for record in caplog.records),
            repr(model),
            repr(model.settings),
            repr(ModelSettings(api_key=key)),
            report.to_string(),
            str(getattr(caught.value, "body", "")),
        ]
        leaks = [text for text in haystack if CANARY in text]
        assert leaks == []


def test_check_credentials_reports_each_state(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer(accepted_keys={"sk-good-0123456789"}) as fake:
        monkeypatch.setenv("GOOD_KEY", "sk-good-0123456789")
        monkeypatch.setenv("BAD_KEY", "sk-bad-0123456789")
        monkeypatch.setenv("BROKEN_KEY", "sk-broken 0123456789")
        from maquina_nb.providers import configure_model

        configure_model(
            "good",
            spec="openai:gpt-4o",
            base_url=fake.openai_base_url,
            key_env="GOOD_KEY",
        )
        configure_model(
            "bad",
            spec="anthropic:claude-haiku-4-5",
            base_url=fake.anthropic_base_url,
            key_env="BAD_KEY",
        )
        configure_model(
            "broken",
            spec="openai:gpt-4o",
            base_url=fake.openai_base_url,
            key_env="BROKEN_KEY",
        )
        configure_model(
            "down",
            spec="openai:gpt-4o",
            base_url=f"http://127.0.0.1:{closed_port()}/v1",
            key_env="GOOD_KEY",
            max_attempts=1,
        )
        configure_model("nokey", spec="openai:gpt-4o", key_env="NOT_SET_ANYWHERE")

        offline = check_credentials(["good", "bad", "broken", "down", "nokey", "echo"])
        live = check_credentials(
            ["good", "bad", "broken", "down", "nokey", "echo"], live=True
        )

    assert list(offline.columns) == [
        "spec",
        "provider",
        "model",
        "key_source",
        "status",
        "detail",
    ]
    assert offline["status"].tolist() == [
        "ok",
        "ok",
        "malformed",
        "ok",
        "missing",
        "ok",
    ]
    assert live["status"].tolist() == [
        "ok",
        "rejected",
        "malformed",
        "unreachable",
        "missing",
        "ok",
    ]
    assert live["key_source"].tolist()[:5] == [
        "GOOD_KEY",
        "BAD_KEY",
        "BROKEN_KEY",
        "GOOD_KEY",
        "NOT_SET_ANYWHERE",
    ]
    assert "0123456789" not in live.to_string()
    # Only the live check for good and bad reached the server, once each.
    assert sorted(r.path for r in fake.requests) == ["/v1/models", "/v1/models"]


@pytest.mark.parametrize(
    ("variable", "spec", "wrong", "hint"),
    [
        ("ANTHROPIC_API_KEY", "claude", "sk-proj-" + "A" * 24, "start with sk-ant-"),
        (
            "OPENAI_API_KEY",
            "gpt-4o",
            "sk-ant-api03-" + "A" * 24,
            "looks like an Anthropic key",
        ),
    ],
)
def test_the_check_spots_another_providers_key(
    monkeypatch: pytest.MonkeyPatch, variable: str, spec: str, wrong: str, hint: str
) -> None:
    for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, wrong)

    report = check_credentials([spec]).iloc[0]

    assert report["status"] == "malformed"
    assert hint in report["detail"]
    assert wrong not in report["detail"]


def test_a_gateway_may_use_keys_of_any_shape(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "gateway-token-" + "B" * 20)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)

    assert check_credentials(["claude"]).iloc[0]["status"] == "ok"


def test_a_keyless_local_model_says_the_server_was_not_checked() -> None:
    report = check_credentials(["ollama:llama3.1"]).iloc[0]

    assert report["status"] == "ok"
    assert "--live" in report["detail"]
