"""Fixtures for the browser tests: a real JupyterLab and headless Debian Chromium.

- ``lab`` (session): a ``jupyter lab`` server on a free loopback port with its own
  ``JUPYTER_*`` and ``IPYTHONDIR`` directories, the news/update toast switched off
  through an ``overrides.json``, and no API keys in its environment.
- ``browser`` (session): a persistent Chromium context launched with every flag
  RECIPES.md lists, so not even a DNS lookup leaves the machine.
- ``page``: a fresh tab per test; helpers in ``_lab.py`` drive the UI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser._lab import CHROMIUM, Lab, launch_chromium, start_lab, stop_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    handle = start_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield handle
    finally:
        stop_lab(handle)


# NOTE: module scope, not session: Playwright's sync API keeps an event loop
# running in the main thread while it is open, which breaks every later
# asyncio test (pytest-asyncio refuses to start a loop inside a running one).
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                f"CI=true but Chromium is not at {CHROMIUM}; .ci/run installs it"
            )
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = launch_chromium(
            playwright, tmp_path_factory.mktemp("chromium-profile")
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.page_errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        tab.close()
