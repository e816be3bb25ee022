"""Fixtures shared by the whole suite.

- ``clean_environ`` (autouse): no API keys or ``MAQUINA_NB_*`` settings leak in
  from the developer's shell, and no user config file is read.
- ``_loopback_only`` (session, autouse): any socket connection to an address other
  than loopback fails the test (DESIGN.md: every request goes to 127.0.0.1).
- ``pg_url``: the session's PostgreSQL (``tests/_pg.py`` makes throwaway
  schemas on it).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator

import pytest

# The public fixture users load the same way (`fake_llm_server`).
pytest_plugins = ["maquina_nb.testing.pytest_plugin"]

_CLEARED_PREFIXES = ("MAQUINA_NB_", "MAQUINA_DB_URL")
_CLEARED_NAMES = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OLLAMA_HOST",
)


@pytest.fixture(autouse=True)
def clean_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for name in list(os.environ):
        if name in _CLEARED_NAMES or name.startswith(_CLEARED_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    config_dir = tmp_path_factory.mktemp("user-config")
    monkeypatch.setenv("MAQUINA_NB_CONFIG", str(config_dir / "config.toml"))
    monkeypatch.setenv("MAQUINA_NB_RATER", "test-rater")


def _is_loopback(address: object) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # AF_UNIX paths and the like stay on the machine
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def guarded_connect(self: socket.socket, address: object) -> object:
        if not _is_loopback(address):
            raise AssertionError(
                f"test tried to reach {address!r}; tests talk to 127.0.0.1 only"
            )
        return original_connect(self, address)  # type: ignore[arg-type]

    def guarded_connect_ex(self: socket.socket, address: object) -> int:
        if not _is_loopback(address):
            raise AssertionError(
                f"test tried to reach {address!r}; tests talk to 127.0.0.1 only"
            )
        return original_connect_ex(self, address)  # type: ignore[arg-type]

    socket.socket.connect = guarded_connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = guarded_connect_ex  # type: ignore[method-assign,assignment]
    yield
    socket.socket.connect = original_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Skip postgres/browser tests when their service is absent — never under CI."""
    if _in_ci():
        return
    has_pg = bool(os.environ.get("MAQUINA_TEST_PG_URL"))
    has_browser = os.path.exists(CHROMIUM)
    for item in items:
        if "postgres" in item.keywords and not has_pg:
            item.add_marker(pytest.mark.skip(reason="set MAQUINA_TEST_PG_URL to run"))
        if "browser" in item.keywords and not has_browser:
            item.add_marker(
                pytest.mark.skip(reason=f"install chromium ({CHROMIUM}) to run")
            )


CHROMIUM = os.environ.get("MAQUINA_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The URL of a reachable PostgreSQL server; fails (not skips) under CI."""
    url = os.environ.get("MAQUINA_TEST_PG_URL", "")
    if not url:
        pytest.fail(
            "CI=true but MAQUINA_TEST_PG_URL is unset; .ci/run starts PostgreSQL"
        )
    return url
