"""Fixtures for the orchestrator tests.

``ScriptedModel`` is a real :class:`BaseAIModel` subclass (the custom-model path
users take), answering in-process from a script so engine behaviour can be
tested without a network; the SDK paths are tested against ``FakeLLMServer``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from maquina_nb.providers.base import BaseAIModel, Completion, ModelRequest, TextDelta


class ScriptedModel(BaseAIModel):
    """Answers ``f"{name}: {last user turn}"`` unless ``script`` says otherwise.

    ``script(request)`` may return a :class:`Completion`, raise, or return
    ``None`` for the default answer. ``delay`` sleeps before answering; in
    streaming mode each word is a delta, ``chunk_delay`` apart.
    """

    provider = "custom"

    def __init__(
        self,
        name: str,
        *,
        script: Callable[[ModelRequest], Completion | None] | None = None,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        streaming: bool = False,
        cost: float | None = 0.0,
        estimate: float | None = 0.0,
        version: str = "1",
    ) -> None:
        super().__init__(name, spec=f"custom:{name}")
        self.script = script
        self.delay = delay
        self.chunk_delay = chunk_delay
        self.supports_streaming = streaming
        self.cost = cost
        self.estimate = estimate
        self.version = version
        self.calls: list[ModelRequest] = []

    @property
    def identity(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "version": self.version}

    def price(
        self, input_tokens: int | None, output_tokens: int | None, cached: int | None
    ) -> float | None:
        return self.estimate

    def _answer(self, request: ModelRequest) -> Completion:
        scripted = self.script(request) if self.script is not None else None
        if scripted is not None:
            return scripted
        prompt = request.turns[-1].content
        return Completion(
            text=f"{self.model}: {prompt}",
            finish_reason="stop",
            model_id=f"{self.model}-v{self.version}",
            input_tokens=len(prompt.split()),
            output_tokens=len(prompt.split()) + 1,
            cost_usd=self.cost,
            raw_finish_reason="stop",
        )

    async def generate(self, request: ModelRequest) -> Completion:
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._answer(request)

    async def stream(
        self, request: ModelRequest
    ) -> AsyncIterator[TextDelta | Completion]:
        self.calls.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        completion = self._answer(request)
        for word in completion.text.split(" "):
            yield TextDelta(
                word if word == completion.text.split(" ")[0] else " " + word
            )
            await asyncio.sleep(self.chunk_delay)
        yield completion


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture(autouse=True)
def _no_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAQUINA_NB_PROGRESS", "0")
