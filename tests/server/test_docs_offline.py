"""The API docs page works with no internet and sends browsers to no outside host.

FastAPI's own ``/docs`` and ``/redoc`` load their scripts, styles, fonts and
favicon from CDNs: offline they are blank, and online every visit tells those
hosts who looked. Here ``/docs`` is served whole by the server itself, and
``/redoc`` (whose page fetches its maker's logo) is not offered.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

# Any absolute URL (also protocol-relative ones such as //cdn.example/x.js).
_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""", re.IGNORECASE)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "testserver"}


class _Assets(HTMLParser):
    """Collect what a page makes the browser load: scripts, styles, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            value = values.get(name)
            if value and (tag != "a" or name != "href"):
                self.urls.append(value)


def _outside_urls(text: str) -> list[str]:
    return [
        url
        for url in _URL.findall(text)
        if (urlsplit(url if "://" in url else f"http:{url}").hostname or "")
        not in _LOCAL_HOSTS
    ]


def test_docs_page_names_no_outside_host_and_serves_its_assets(
    client: TestClient,
) -> None:
    page = client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert _outside_urls(page.text) == []

    parser = _Assets()
    parser.feed(page.text)
    assert parser.urls, "the page loads no script or style of its own"
    for url in parser.urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url


def test_docs_page_lets_the_browser_load_from_this_server_only(
    client: TestClient,
) -> None:
    policy = client.get("/docs").headers["content-security-policy"]

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    for value in directives.values():
        assert "http" not in value, policy
        assert "*" not in value, policy


def test_redoc_is_not_offered(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def test_docs_page_reads_the_schema_of_every_endpoint(client: TestClient) -> None:
    page = client.get("/docs").text
    schema = client.get("/openapi.json").json()

    # Swagger UI draws every endpoint of this document, which is the app's own.
    assert "'/openapi.json'" in page or '"/openapi.json"' in page
    assert {"/api/health", "/api/runs", "/api/runs/{run_id}/feedback"} <= set(
        schema["paths"]
    )


def test_swagger_ui_is_told_not_to_use_the_online_validator(
    client: TestClient,
) -> None:
    page = client.get("/docs").text

    # Its default would show a badge image fetched from an outside host.
    assert re.search(r'"validatorUrl":\s*null', page), page


def test_the_server_root_still_leads_to_the_docs(client: TestClient) -> None:
    answer = client.get("/", follow_redirects=False)

    assert answer.status_code in (302, 307)
    assert answer.headers["location"] == "/docs"
