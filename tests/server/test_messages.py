"""What the server and `maquina-nb serve` say: each message fits where it is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from maquina_nb.cli import build_parser, main
from maquina_nb.db import Repository
from maquina_nb.server import create_app


def test_a_bad_url_names_the_db_option_of_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--db", "nosuch://x"]) == 1
    err = capsys.readouterr().err
    assert "(--db or MAQUINA_DB_URL)" in err
    assert "--url" not in err

    # --url still works for db commands, but the advice names the one spelling.
    assert main(["db", "current", "--url", "nosuch://x"]) == 1
    err = capsys.readouterr().err
    assert "(--db or MAQUINA_DB_URL)" in err
    assert "--url" not in err


def test_serve_help_shows_the_defaults() -> None:
    parser = build_parser()
    serve = parser._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    text = " ".join(serve.format_help().split())
    assert "address to listen on (default: 127.0.0.1)" in text
    assert "port to listen on (default: 8765)" in text


def test_unknown_model_points_api_clients_at_get_api_models(
    client: TestClient,
) -> None:
    answer = client.post(
        "/api/runs", json={"template": "Hi", "models": ["echo", "opnai:gpt-4o"]}
    )
    assert answer.status_code == 422
    message = answer.json()["detail"][0]["msg"]
    assert "opnai:gpt-4o" in message
    assert "GET /api/models" in message
    assert "%maquina" not in message


def test_a_wrong_token_is_told_apart_from_a_missing_one(repo: Repository) -> None:
    token = "t0ken-for-the-tests-0123456789"
    with TestClient(create_app(repo, token=token)) as guarded:
        missing = guarded.get("/api/runs")
        wrong = guarded.get("/api/runs", headers={"Authorization": "Bearer nope-nope"})

    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["detail"].startswith("This server needs its token")
    assert wrong.json()["detail"].startswith("The token was rejected")
    assert "nope-nope" not in wrong.text
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_root_redirects_to_the_docs(repo: Repository) -> None:
    token = "t0ken-for-the-tests-0123456789"
    with TestClient(create_app(repo, token=token)) as guarded:
        answer = guarded.get("/", follow_redirects=False)
        assert answer.status_code in (307, 308)
        assert answer.headers["location"] == "/docs"
        assert guarded.get("/").status_code == 200
        schema = guarded.get("/openapi.json").json()
    assert "/" not in schema["paths"]


def test_startup_line_names_the_database_and_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.server import cli

    assert cli.startup_line(
        "postgresql+psycopg://ada:SECRETSECRET@db.example/maquina", "::1", 8765, None
    ) == (
        "serving postgresql+psycopg://ada:***@db.example/maquina "
        "on http://[::1]:8765 (token off)"
    )
    # A host given in brackets is bracketed once.
    assert "http://[::1]:8765" in cli.startup_line("sqlite:///x.db", "[::1]", 8765, "t")

    # serve() logs it through uvicorn's own handler, so it shows in the terminal.
    import uvicorn

    seen: dict[str, Any] = {}

    class FakeConfig:
        def __init__(self, app: Any, **settings: Any) -> None:
            seen.update(settings, app=app)

    class FakeServer:
        def __init__(self, config: Any) -> None:
            pass

        def run(self, sockets: list[Any] | None = None) -> None:
            seen["ran"] = True
            seen["sockets"] = sockets

    monkeypatch.setattr(uvicorn, "Config", FakeConfig)
    monkeypatch.setattr(uvicorn, "Server", FakeServer)
    cli.serve(db_url=f"sqlite:///{tmp_path / 'served.db'}", port=0)
    assert seen["ran"] is True
    # uvicorn serves on the socket serve() bound itself.
    assert len(seen["sockets"]) == 1
    loggers = seen["log_config"]["loggers"]
    assert loggers["maquina_nb"]["handlers"] == ["default"]
    assert loggers["maquina_nb"]["propagate"] is False
