"""Pytest fixtures for testing notebooks and code that call models.

Enable with ``pytest_plugins = ["maquina_nb.testing.pytest_plugin"]`` in a
``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from maquina_nb.testing.fake_server import FakeLLMServer

__all__ = ["fake_llm_server"]


@pytest.fixture
def fake_llm_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLMServer]:
    """A running :class:`FakeLLMServer`, with the SDKs' variables pointed at it.

    ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL`` and ``OLLAMA_HOST`` name the fake,
    and both API key variables hold a placeholder key, so code that uses the
    SDK defaults talks to the fake without changes.
    """
    with FakeLLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        monkeypatch.setenv("OLLAMA_HOST", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-openai-key")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-anthropic-key")
        yield server
