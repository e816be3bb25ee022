"""Test helpers for maquina_nb users: a loopback fake LLM server and fixtures.

``FakeLLMServer`` speaks the OpenAI Chat Completions and Anthropic Messages wire
formats on 127.0.0.1, so notebooks and tests run the real SDKs offline::

    from maquina_nb.testing import FakeLLMServer, Reply

    with FakeLLMServer() as fake:
        fake.enqueue(Reply(text="hello", finish="length"))
        ...

For pytest, add ``pytest_plugins = ["maquina_nb.testing.pytest_plugin"]`` to a
``conftest.py`` and use the ``fake_llm_server`` fixture.
"""

from __future__ import annotations

from maquina_nb.testing._wire import Reply
from maquina_nb.testing.fake_server import FakeLLMServer, LoggedRequest

__all__ = ["FakeLLMServer", "LoggedRequest", "Reply"]
