"""POST /api/runs takes plain specs and aliases only: no options, no replay files.

A spec string is data a client sends; options in it could point the server's
provider keys at another host, open files on the server, or stall a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maquina_nb.testing import FakeLLMServer

OPTIONS_MESSAGE = "model options are not accepted over the API"


def _start(client: TestClient, models: list[str]) -> Any:
    return client.post("/api/runs", json={"template": "Hi", "models": models})


def _only_error(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert len(errors) == 1
    return errors[0]


@pytest.mark.parametrize(
    ("spec", "url_of"),
    [
        ("openai:gpt-4o", "openai_base_url"),
        ("anthropic:claude-sonnet-4-5", "anthropic_base_url"),
    ],
)
def test_a_base_url_option_is_refused_and_no_key_leaves(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, spec: str, url_of: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SERVERKEYOPENAI")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-SERVERKEYANTHROPIC")
    with FakeLLMServer() as evil:
        answer = _start(client, ["echo", f"{spec}?base_url={getattr(evil, url_of)}"])
        requests = list(evil.requests)

    error = _only_error(answer)
    assert error["loc"] == ["body", "models", 1]
    assert OPTIONS_MESSAGE in error["msg"]
    assert "maquina.toml" in error["msg"]
    assert requests == []


@pytest.mark.parametrize(
    "spec",
    [
        "echo?latency=999999",
        "echo:slow?chunk_delay=100",
        "replay:gpt-4?path=/etc/hostname",
        "gpt-4o?timeout=1",
        "openai:gpt-4o?requests_per_minute=1",
    ],
)
def test_any_option_is_refused(client: TestClient, spec: str) -> None:
    error = _only_error(_start(client, [spec]))

    assert error["loc"] == ["body", "models", 0]
    assert OPTIONS_MESSAGE in error["msg"]


def test_a_replay_file_is_refused_without_telling_whether_it_exists(
    client: TestClient, tmp_path: Path
) -> None:
    there = tmp_path / "answers.jsonl"
    there.write_text('{"prompt": "Hi", "answer": "secret file content"}\n')
    missing = tmp_path / "nothing.jsonl"

    first = _only_error(_start(client, [f"replay:{there}"]))
    second = _only_error(_start(client, [f"replay:{missing}"]))

    assert first["loc"] == second["loc"] == ["body", "models", 0]
    assert first["msg"].replace(str(there), "P") == second["msg"].replace(
        str(missing), "P"
    )
    assert "replay" in first["msg"]
    assert "secret file content" not in first["msg"]


def test_bundled_replays_and_aliases_still_start(client: TestClient) -> None:
    answer = _start(client, ["replay:gpt-4", "echo"])

    assert answer.status_code == 202, answer.text


def test_a_server_configured_alias_may_carry_options(
    repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.server import create_app

    (tmp_path / "maquina.toml").write_text(
        '[models.slowish]\nspec = "echo:slowish?latency=0.01"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app(repo)) as client:
        answer = _start(client, ["slowish"])

    assert answer.status_code == 202, answer.text


def test_a_broken_server_config_answers_422_not_500(
    repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.server import create_app

    (tmp_path / "maquina.toml").write_text(
        '[models.x]\nspec = "echo"\nrequests_per_minute = 0\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    app = create_app(repo)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = _start(client, [f"replay:{tmp_path / 'a.jsonl'}"])

    error = _only_error(answer)
    assert "requests_per_minute" in error["msg"]


def test_the_model_list_names_a_broken_config_instead_of_a_bare_500(
    repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.server import create_app

    (tmp_path / "maquina.toml").write_text(
        '[models.x]\nspec = "echo"\ntimeout = "soon"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app(repo), raise_server_exceptions=False) as client:
        answer = client.get("/api/models")

    assert answer.status_code == 500
    assert "maquina.toml" in answer.json()["detail"]
    assert "soon" not in answer.json()["detail"]
