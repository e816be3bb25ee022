"""The server's /docs page (Swagger UI) in headless Chromium, with no internet.

A real uvicorn on 127.0.0.1 serves the app; Chromium (every flag RECIPES.md
lists, in tests/browser/conftest.py) records every request the page makes. The
page must draw every endpoint of the app's OpenAPI document, and call one,
while asking nothing of any host but the server itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from maquina_nb.server import create_app
from maquina_nb.server._uvicorn import serve_in_thread

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("docs")) / "docs.db"
    with serve_in_thread(create_app(db_url=f"sqlite:///{db}")) as base:
        yield base


def _open(page: Any, url: str) -> tuple[list[str], list[str]]:
    requested: list[str] = []
    console_errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "console",
        lambda message: (
            console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.goto(url, wait_until="load", timeout=20_000)
    return requested, console_errors


def _outside(requested: list[str], base: str) -> list[str]:
    return [
        url for url in requested if not url.startswith((f"{base}/", "data:", "blob:"))
    ]


def _paths(server: str) -> list[str]:
    import httpx

    return sorted(httpx.get(f"{server}/openapi.json", timeout=10).json()["paths"])


def test_swagger_ui_draws_every_endpoint_from_the_server_alone(
    page: Any, server: str
) -> None:
    requested, console_errors = _open(page, f"{server}/")

    page.wait_for_selector(".opblock", timeout=20_000)
    landed = page.url
    drawn = page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.dataset.path)"
    )

    # "Try it out" on the health route: the page may call its own server.
    health = page.locator("#operations-server-health_api_health_get")
    health.locator(".opblock-summary").click()
    health.locator(".try-out__btn").click()
    health.locator(".execute").click()
    health.locator(".live-responses-table tbody .response-col_status").first.wait_for(
        timeout=20_000
    )
    status = health.locator(".live-responses-table tbody .response-col_status").first

    assert landed == f"{server}/docs"
    assert set(_paths(server)) <= set(drawn)
    assert status.inner_text().strip() == "200"
    assert _outside(requested, server) == []
    assert f"{server}/api/health" in requested
    assert page.page_errors == []
    assert console_errors == []
