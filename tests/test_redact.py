"""``redact`` removes keys, bearer tokens and URL passwords, and nothing else."""

from __future__ import annotations

import logging

import pytest

from maquina_nb import _redact
from maquina_nb._redact import get_logger, redact, register_secret


def _fake_key(prefix: str) -> str:
    """A key-shaped placeholder built at run time, so no key-like literal is committed."""
    return prefix + "NOTxAxREALxKEY" * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"key {_fake_key('sk-test-')}!",
            "key sk-<redacted>!",
            id="openai-key",
        ),
        pytest.param(
            f"key {_fake_key('sk-ant-')}",
            "key sk-<redacted>",
            id="anthropic-key",
        ),
        pytest.param(
            "Authorization: Bearer abcdefghijklmnop",
            "Authorization: Bearer <redacted>",
            id="authorization-header",
        ),
        pytest.param(
            "postgresql+psycopg://bob:hunter3pass@127.0.0.1:5432/x",
            "postgresql+psycopg://bob:<redacted>@127.0.0.1:5432/x",
            id="url-password",
        ),
        pytest.param(
            "postgresql://postgres@127.0.0.1:5432/db",
            "postgresql://postgres@127.0.0.1:5432/db",
            id="url-without-password",
        ),
        pytest.param(
            "sqlite:///tmp/maquina.db", "sqlite:///tmp/maquina.db", id="sqlite"
        ),
        pytest.param("skill-based answer", "skill-based answer", id="plain-words"),
    ],
)
def test_redact_masks_secrets_only(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_removes_registered_and_environment_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_redact, "_secrets", set())
    monkeypatch.setenv("OPENAI_API_KEY", "plain-looking-token-123")
    register_secret("another-custom-secret")

    shown = redact("a plain-looking-token-123 and another-custom-secret here")

    assert shown == "a <redacted> and <redacted> here"


def test_a_registered_prefix_does_not_unmask_the_rest_of_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_redact, "_secrets", set())
    register_secret("sk-test")

    assert redact(f"key {_fake_key('sk-test-')}!") == "key sk-<redacted>!"


def test_logger_filter_redacts_messages_and_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = get_logger("maquina_nb.tests.redact")

    with caplog.at_level(logging.DEBUG, logger="maquina_nb"):
        logger.debug("calling with %s", _fake_key("sk-test-"))

    assert caplog.record_tuples == [
        ("maquina_nb.tests.redact", logging.DEBUG, "calling with sk-<redacted>")
    ]
