"""Pytest fixtures for testing notebooks and code that call models.

Enable with ``pytest_plugins = ["maquina_nb.testing.pytest_plugin"]`` in a
``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maquina_nb.testing.fake_server import FakeLLMServer

__all__ = ["fake_llm_server"]


#: Variables the SDKs read besides the key and base URL; a test sees none of them.
_IDENTITY_VARIABLES = (
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "OPENAI_ADMIN_KEY",
    "OPENAI_CUSTOM_HEADERS",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
)


@pytest.fixture
def fake_llm_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FakeLLMServer]:
    """A running :class:`FakeLLMServer`, with the SDKs' variables pointed at it.

    ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL`` and ``OLLAMA_HOST`` name the fake,
    and both API key variables hold a placeholder key, so code that uses the
    SDK defaults talks to the fake without changes. ``MAQUINA_DB_URL`` names a
    fresh SQLite file in the test's temporary folder, so runs made against the
    fake never land in the real database (a team's PostgreSQL, say), and the
    SDKs' other identity variables (organization, project, extra headers) are
    unset.
    """
    for name in _IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAQUINA_DB_URL", f"sqlite:///{tmp_path / 'maquina.db'}")
    with FakeLLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OLLAMA_HOST", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-openai-key")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-anthropic-key")
        yield server
