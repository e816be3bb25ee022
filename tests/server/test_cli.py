"""`maquina-nb serve` argument handling and the bind rules."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from maquina_nb.errors import ConfigurationError
from maquina_nb.server.cli import add_serve_parser, check_bind, resolve_token


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="maquina-nb")
    add_serve_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["serve", *argv])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "lab-server"])
def test_any_other_host_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigurationError, match="MAQUINA_NB_SERVER_TOKEN"):
        check_bind(host, None)
    check_bind(host, "a-long-enough-token-0123")


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16"):
        check_bind("127.0.0.1", "short")


def test_token_comes_from_argument_file_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-0123456789\n")
    monkeypatch.setenv("MAQUINA_NB_SERVER_TOKEN", "from-the-env-0123456789")

    assert (
        resolve_token("from-the-arg-0123456789", str(token_file))
        == "from-the-arg-0123456789"
    )
    assert resolve_token(None, str(token_file)) == "from-the-file-0123456789"
    assert resolve_token(None, None) == "from-the-env-0123456789"
    with pytest.raises(ConfigurationError, match="Could not read the token file"):
        resolve_token(None, str(tmp_path / "missing"))


def test_serve_refuses_a_public_bind_without_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = _parse("--host", "0.0.0.0", "--db", "sqlite://")

    assert args.func(args) == 2
    assert "listen on 127.0.0.1" in capsys.readouterr().err


def test_serve_defaults() -> None:
    args = _parse()
    assert (args.host, args.port, args.db_url, args.allow_start_runs) == (
        "127.0.0.1",
        8765,
        None,
        True,
    )
    assert _parse("--no-start-runs").allow_start_runs is False


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_maquina_nb_serve_starts_a_real_server(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    db_url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "MAQUINA_NB_SERVER_TOKEN": "cli-test-token-0123456789"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maquina_nb.cli",
            "serve",
            "--db",
            db_url,
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        health = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health is not None, (
            server.stderr.read().decode() if server.stderr else ""
        )
        runs = httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=5)
        authorized = httpx.get(
            f"http://127.0.0.1:{port}/api/runs",
            headers={"Authorization": "Bearer cli-test-token-0123456789"},
            timeout=5,
        )
        docs = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
    finally:
        # Ctrl+C, as a person at the terminal would stop it.
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    log = server.stderr.read().decode() if server.stderr else ""

    assert f"serving {db_url} on http://127.0.0.1:{port} (token on)" in log
    assert "Traceback" not in log
    assert server.returncode == 130
    assert health.json()["status"] == "ok"
    assert runs.status_code == 401
    assert authorized.json() == {"runs": [], "next_cursor": None}
    assert docs.status_code == 200


def test_serve_on_a_port_in_use_says_so_in_one_sentence(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    database = tmp_path / "never-opened.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "maquina_nb.cli",
                "serve",
                "--db",
                f"sqlite:///{database}",
                "--port",
                str(port),
            ],
            env={**os.environ, "MAQUINA_NB_PROGRESS": "0"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    lines = finished.stderr.strip().splitlines()
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert lines == [
        f"maquina-nb serve: Port {port} on 127.0.0.1 is already in use; "
        "pick another with --port."
    ], finished.stderr
    assert not database.exists()


def test_an_address_of_another_machine_is_refused_in_one_sentence() -> None:
    from maquina_nb.server.cli import bind_listener

    # 192.0.2.0/24 is reserved for documentation: never an address of this host.
    with pytest.raises(ConfigurationError) as raised:
        bind_listener("192.0.2.1", 0)

    assert str(raised.value) == (
        "192.0.2.1 is not an address of this machine; pick one of its own "
        "addresses with --host (127.0.0.1 by default)."
    )


def test_serve_reports_the_port_it_really_listens_on(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from maquina_nb.server import cli

    bound: list[int] = []

    def run(self: uvicorn.Server, sockets: list[object] | None = None) -> None:
        assert sockets is not None
        bound.append(sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    monkeypatch.setattr(uvicorn.Server, "run", run)
    # Leave the process's logging as it is (uvicorn's set-up would take it over).
    monkeypatch.setattr(cli, "_log_config", lambda level: None)
    with caplog.at_level("INFO", logger="maquina_nb.server.cli"):
        cli.serve(db_url="sqlite://", port=0)

    assert bound
    assert bound[0] != 0
    assert f"on http://127.0.0.1:{bound[0]} (token off)" in caplog.text


def test_the_command_line_does_not_import_the_server_extra() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, maquina_nb.cli as cli; cli.build_parser(); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"
