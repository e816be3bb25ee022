"""Specs, aliases, config files, custom models three ways, identity (C35)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from maquina_nb.errors import ConfigurationError, UnknownModelError
from maquina_nb.providers import (
    BaseAIModel,
    ClaudeModel,
    Completion,
    EchoModel,
    OllamaModel,
    OpenAIModel,
    ReplayModel,
    TextDelta,
    configure_model,
    register_model,
    resolve_model,
)
from maquina_nb.providers.registry import reload_entry_points
from maquina_nb.testing import FakeLLMServer

from .helpers import ask


@pytest.mark.parametrize(
    ("spec", "cls", "model"),
    [
        ("claude", ClaudeModel, "claude-sonnet-4-5"),
        ("gpt-4o", OpenAIModel, "gpt-4o"),
        ("gpt-4", OpenAIModel, "gpt-4"),
        ("gpt-3.5", OpenAIModel, "gpt-3.5-turbo"),
        ("llama", OllamaModel, "llama3.1"),
        ("anthropic:claude-opus-4-1", ClaudeModel, "claude-opus-4-1"),
        ("openai:o3-mini", OpenAIModel, "o3-mini"),
        ("echo", EchoModel, "echo"),
        ("echo:b", EchoModel, "b"),
        ("replay:gpt-4", ReplayModel, "gpt-4"),
    ],
)
def test_specs_and_aliases_resolve(spec: str, cls: type, model: str) -> None:
    resolved = resolve_model(spec)

    assert type(resolved) is cls
    assert resolved.model == model
    assert resolved.spec == spec


def test_same_spec_gives_the_same_object() -> None:
    assert resolve_model("gpt-4o") is resolve_model("gpt-4o")
    assert resolve_model("gpt-4o") is not resolve_model("gpt-4o", timeout=5)


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [
        ("gtp-4o", "gpt-4o"),
        ("opnai:gpt-4o", "openai:gpt-4o"),
        ("claud", "claude"),
        ("lama", "llama"),
    ],
)
def test_unknown_spec_names_close_matches(spec: str, suggestion: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve_model(spec)

    assert suggestion in caught.value.suggestions
    assert f"Did you mean {suggestion!r}" in str(caught.value) or repr(
        suggestion
    ) in str(caught.value)


def test_unknown_setting_is_refused_with_a_hint() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"Unknown setting 'requests_per_minut'.*'requests_per_minute'",
    ):
        resolve_model("gpt-4o", requests_per_minut=5)


def test_project_config_defines_aliases_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maquina.toml").write_text(
        """
[models.house-llama]
spec = "ollama:llama3.2"
base_url = "http://127.0.0.1:9999/v1"
requests_per_minute = 60
parameters = { temperature = 0.1 }

[models."ollama:llama3.2"]
max_in_flight = 2
parameters = { max_tokens = 100 }

[models.claude]
requests_per_minute = 5
""",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)

    llama = resolve_model("house-llama")
    claude = resolve_model("claude")

    assert isinstance(llama, OllamaModel)
    assert llama.model == "llama3.2"
    assert llama.base_url == "http://127.0.0.1:9999/v1"
    assert (llama.settings.requests_per_minute, llama.settings.max_in_flight) == (60, 2)
    assert llama.settings.parameters == {"max_tokens": 100, "temperature": 0.1}
    assert claude.settings.requests_per_minute == 5


def test_user_config_is_read_below_project_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user.toml"
    user.write_text(
        "[models.gpt-4o]\ntimeout = 11\nrequests_per_minute = 1\n", encoding="utf-8"
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "maquina.toml").write_text(
        "[models.gpt-4o]\nrequests_per_minute = 2\n", encoding="utf-8"
    )
    monkeypatch.setenv("MAQUINA_NB_CONFIG", str(user))
    monkeypatch.chdir(project)

    model = resolve_model("gpt-4o")

    assert (model.settings.timeout, model.settings.requests_per_minute) == (11, 2)


def test_bad_setting_in_config_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maquina.toml").write_text(
        "[models.x]\nspec = 'echo'\nrpm = 3\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)

    with pytest.raises(
        ConfigurationError, match=r"Unknown setting 'rpm' in \[models.x\]"
    ):
        resolve_model("x")


async def test_custom_model_as_a_subclass(fake: FakeLLMServer) -> None:
    @register_model("upper")
    class UpperModel(BaseAIModel):
        provider = "custom"

        async def generate(self, request):
            return Completion(
                text=request.messages[-1].content.upper(), finish_reason="stop"
            )

    completion = await resolve_model("upper").generate(ask("shout"))

    assert completion.text == "SHOUT"
    assert isinstance(resolve_model("upper"), UpperModel)


async def test_custom_model_as_an_async_function() -> None:
    @register_model("reverse", version="2")
    async def reverse(request):
        return request.messages[-1].content[::-1]

    model = resolve_model("reverse")
    completion = await model.generate(ask("abc"))

    assert (completion.text, completion.finish_reason, completion.model_id) == (
        "cba",
        "stop",
        "reverse",
    )
    assert model.identity == {"provider": "custom", "model": "reverse", "version": "2"}


async def test_custom_async_generator_streams() -> None:
    @register_model("spell")
    async def spell(request):
        for char in request.messages[-1].content:
            yield char

    items = [item async for item in resolve_model("spell").stream(ask("hey"))]

    assert items[:3] == [TextDelta("h"), TextDelta("e"), TextDelta("y")]
    assert items[-1].text == "hey"


def test_c35_custom_model_identity_changes_with_its_code() -> None:
    async def first(request):
        return "a"

    async def second(request):
        return "b"

    register_model("versioned", first)
    before = resolve_model("versioned").identity
    register_model("versioned", second)
    after = resolve_model("versioned").identity

    assert before["version"] != after["version"]


def test_c35_identity_includes_the_base_url() -> None:
    one = resolve_model("openai-compatible:llama3", base_url="http://127.0.0.1:8001/v1")
    two = resolve_model("openai-compatible:llama3", base_url="http://127.0.0.1:8002/v1")

    assert one.identity == {
        "provider": "openai-compatible",
        "model": "llama3",
        "base_url": "http://127.0.0.1:8001/v1",
    }
    assert one.identity != two.identity


async def test_custom_model_from_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "maquina_plugin_demo"
    package.mkdir()
    (package / "__init__.py").write_text(
        "async def answer(request):\n    return 'from a plugin'\n", encoding="utf-8"
    )
    dist = tmp_path / "maquina_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: maquina-plugin-demo\nVersion: 0.1\n",
        encoding="utf-8",
    )
    (dist / "entry_points.txt").write_text(
        "[maquina_nb.models]\nplugin-model = maquina_plugin_demo:answer\nbroken-model = maquina_plugin_demo:missing\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reload_entry_points()
    try:
        completion = await resolve_model("plugin-model").generate(ask())
        with pytest.raises(UnknownModelError):
            resolve_model("broken-model")
    finally:
        sys.modules.pop("maquina_plugin_demo", None)
        monkeypatch.undo()
        reload_entry_points()

    assert completion.text == "from a plugin"


def test_configure_model_in_code() -> None:
    configure_model("fast", spec="openai:gpt-4o-mini", requests_per_minute=100)

    model = resolve_model("fast")

    assert (model.model, model.settings.requests_per_minute) == ("gpt-4o-mini", 100)
    assert model.spec == "fast"


def test_settings_repr_hides_the_key() -> None:
    model = resolve_model("gpt-4o", api_key="sk-abcdefghijklmnop")

    assert "abcdefghijklmnop" not in repr(model.settings)
    assert "api_key='<redacted>'" in repr(model.settings)
    assert repr(model) == "<OpenAIModel 'gpt-4o'>"
