"""Fixtures for the model layer: a fake server, a fake clock, a clean registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from maquina_nb.providers import openai as openai_provider, registry, settings
from maquina_nb.testing import FakeLLMServer


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
async def _clean_registry() -> AsyncIterator[None]:
    registry._factory.clear_cache()
    settings.clear_configured()
    openai_provider._NO_STREAM_OPTIONS.clear()
    before = dict(registry._registered)
    yield
    # Close the SDK clients made on this test's loop before the loop goes away.
    for model in list(registry._factory._cache.values()):
        await model.aclose()
    registry._registered.clear()
    registry._registered.update(before)
    registry._factory.clear_cache()
    settings.clear_configured()
