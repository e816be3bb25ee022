"""System messages in conversations: one system prompt, first, never inside messages."""

from __future__ import annotations

import pytest

from maquina_nb.errors import TemplateError
from maquina_nb.orchestrator import orchestrate
from maquina_nb.providers import resolve_model
from maquina_nb.providers.base import Message, ModelRequest
from maquina_nb.testing import FakeLLMServer

from .conftest import ScriptedModel

USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}


def test_system_argument_and_a_leading_system_message_conflict(db_url: str) -> None:
    model = ScriptedModel("m")
    conversation = [{"role": "system", "content": "SYS-A"}, USER]

    with pytest.raises(TemplateError, match="system= and a leading system message"):
        orchestrate(conversation, [model], db=db_url, system="SYS-ARG")

    assert model.calls == []


def test_a_system_message_after_the_first_is_refused(db_url: str) -> None:
    model = ScriptedModel("m")
    conversation = [
        {"role": "system", "content": "SYS-A"},
        USER,
        ASSISTANT,
        {"role": "system", "content": "SYS-B"},
        USER,
    ]

    with pytest.raises(TemplateError, match="message 3 has role 'system'"):
        orchestrate(conversation, [model], db=db_url)

    assert model.calls == []


def test_a_leading_system_message_alone_is_sent_as_the_system_prompt(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    conversation = [{"role": "system", "content": "SYS-A"}, USER, ASSISTANT, USER]

    run = orchestrate(conversation, ["anthropic:claude-sonnet-4-5"], db=db_url)

    assert run.status == "complete"
    body = fake_llm_server.requests_for(api="anthropic")[0].body
    assert body["system"] == "SYS-A"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


async def test_claude_never_sends_a_system_role_inside_messages(
    fake_llm_server: FakeLLMServer,
) -> None:
    claude = resolve_model("anthropic:claude-sonnet-4-5")
    request = ModelRequest(
        messages=(
            Message("system", "SYS-A"),
            Message("user", "hi"),
            Message("assistant", "hello"),
            Message("system", "SYS-B"),
            Message("user", "again"),
        )
    )

    await claude.generate(request)

    body = fake_llm_server.requests_for(api="anthropic")[0].body
    assert body["system"] == "SYS-A\n\nSYS-B"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
