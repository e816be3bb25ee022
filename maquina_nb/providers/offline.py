"""Models that need no key and no network: ``echo`` and ``replay:NAME``.

``echo`` answers with the last user message, word by word when streamed; it is
deterministic, costs 0 and honours ``max_tokens`` (counting words), so it also
shows truncation. Options come as keyword overrides or in the spec::

    resolve_model("echo:slow?latency=0.2&chunk_delay=0.01")
    resolve_model("echo", latency=0.2)

``replay:NAME`` answers from recorded answers. Bundled: the 80 MT-Bench questions
with the answers recorded from ``gpt-4``, ``gpt-3.5-turbo``, ``claude-v1`` and
``llama-13b`` (see ``data/mt_bench/SOURCE.md``). A multi-turn request matches
when its user turns equal a question's first turns; the answer to the last one
is returned. ``replay:PATH.jsonl`` (or ``path=``) reads your own file, either in
the FastChat answer format (``question_id``, ``choices[0].turns``; the bundled
questions are used to match) or as ``{"prompt": ..., "answer": ...}`` lines. A
request with no recorded answer raises :class:`~maquina_nb.errors.ReplayMissError`.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from maquina_nb.errors import ConfigurationError, ReplayMissError
from maquina_nb.providers.base import BaseAIModel, Completion, ModelRequest, TextDelta

__all__ = ["BUNDLED_REPLAYS", "EchoModel", "ReplayModel", "mt_bench_questions"]

BUNDLED_REPLAYS = ("gpt-4", "gpt-3.5-turbo", "claude-v1", "llama-13b")
_WORDS = re.compile(r"\S+\s*|\s+")
_SPACES = re.compile(r"\s+")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text)


class _OfflineModel(BaseAIModel):
    """Shared plumbing: optional latency, word streaming, zero cost."""

    supports_streaming = True

    def __init__(
        self,
        model: str,
        *,
        spec: str | None = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__(model, spec=spec)
        self.latency = float(latency)
        self.chunk_delay = float(chunk_delay)

    def _answer(self, request: ModelRequest) -> tuple[str, str | None]:
        raise NotImplementedError  # pragma: no cover - both subclasses override it

    def _complete(
        self, request: ModelRequest, text: str, model_id: str | None
    ) -> Completion:
        words = _words(text)
        finish = "stop" if text else "empty"
        if request.max_tokens is not None and len(words) > request.max_tokens:
            words = words[: request.max_tokens]
            text = "".join(words)
            finish = "length"
        prompt_words = sum(len(m.content.split()) for m in request.messages)
        return Completion(
            text=text,
            finish_reason=finish,  # type: ignore[arg-type]
            model_id=model_id or self.model,
            input_tokens=prompt_words,
            output_tokens=len(words),
            cached_tokens=0,
            raw_finish_reason=finish,
            raw={
                "provider": self.provider,
                "model": model_id or self.model,
                "text": text,
            },
            cost_usd=0.0,
        )

    async def generate(self, request: ModelRequest) -> Completion:
        """Answer at once, after the configured latency."""
        started = time.perf_counter()
        text, model_id = self._answer(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        completion = self._complete(request, text, model_id)
        completion.latency_s = time.perf_counter() - started
        completion.ttft_s = completion.latency_s
        return completion

    async def stream(
        self, request: ModelRequest
    ) -> AsyncIterator[TextDelta | Completion]:
        """Yield the answer word by word, then the completion."""
        started = time.perf_counter()
        text, model_id = self._answer(request)
        completion = self._complete(request, text, model_id)
        if self.latency:
            await asyncio.sleep(self.latency)
        ttft = None
        for index, word in enumerate(_words(completion.text)):
            if index and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if ttft is None:
                ttft = time.perf_counter() - started
            yield TextDelta(word)
        completion.latency_s = time.perf_counter() - started
        completion.ttft_s = ttft if ttft is not None else completion.latency_s
        yield completion

    def price(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
    ) -> float:
        """Offline models are free."""
        return 0.0


class EchoModel(_OfflineModel):
    """Answers with the last user message: deterministic, free, offline."""

    provider = "echo"

    def __init__(
        self, model: str = "echo", *, spec: str | None = None, **options: Any
    ) -> None:
        super().__init__(
            model,
            spec=spec or ("echo" if model == "echo" else f"echo:{model}"),
            **options,
        )

    @property
    def identity(self) -> dict[str, Any]:
        """Provider and name (latency does not change answers)."""
        return {"provider": "echo", "model": self.model}

    def _answer(self, request: ModelRequest) -> tuple[str, str | None]:
        user = [m.content for m in request.turns if m.role == "user"]
        return (user[-1] if user else ""), None


def _normalize(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _read_jsonl(path: Path | Any) -> Iterator[dict[str, Any]]:
    opener = gzip.open if str(getattr(path, "name", path)).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ConfigurationError(
                    f"Line {number} of the replay file {str(path)!r} is not JSON ({exc}); "
                    "fix the file or remove the line."
                ) from exc


def _bundled(name: str) -> Any:
    return resources.files("maquina_nb.providers").joinpath("data", "mt_bench", name)


@functools.lru_cache(maxsize=1)
def _questions() -> tuple[dict[str, Any], ...]:
    return tuple(_read_jsonl(_bundled("question.jsonl.gz")))


def mt_bench_questions() -> list[dict[str, Any]]:
    """Return the 80 bundled MT-Bench questions (``question_id``, ``category``, ``turns``)."""
    return [dict(question) for question in _questions()]


@functools.lru_cache(maxsize=16)
def _load_answers(source: str) -> tuple[dict[tuple[str, ...], str], str | None]:
    """Map normalized user turns to the recorded answer for the last one."""
    path: Any = (
        _bundled(f"answer_{source}.jsonl.gz")
        if source in BUNDLED_REPLAYS
        else Path(source)
    )
    if not path.is_file():
        raise ConfigurationError(
            f"No replay answers found at {source!r}; use one of "
            f"{', '.join(repr(n) for n in BUNDLED_REPLAYS)} or a path to a .jsonl file."
        )
    questions = {q["question_id"]: q["turns"] for q in _questions()}
    table: dict[tuple[str, ...], str] = {}
    model_id = None
    for row in _read_jsonl(path):
        if "question_id" in row and "choices" in row:
            turns = questions.get(row["question_id"]) or row.get("turns") or []
            answers = row["choices"][0]["turns"]
            model_id = model_id or row.get("model_id")
            for depth in range(1, min(len(turns), len(answers)) + 1):
                key = tuple(_normalize(t) for t in turns[:depth])
                table[key] = answers[depth - 1]
        elif "prompt" in row:
            answer = row.get("answer", row.get("response", row.get("completion")))
            if answer is not None:
                table[(_normalize(row["prompt"]),)] = str(answer)
    return table, model_id


class ReplayModel(_OfflineModel):
    """Answers from recorded answers; a request without one raises ReplayMissError."""

    provider = "replay"

    def __init__(
        self,
        model: str,
        *,
        spec: str | None = None,
        path: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, spec=spec or f"replay:{model}", **options)
        self.source = path or model
        self._table: dict[tuple[str, ...], str] | None = None
        self._model_id: str | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """Provider, name and answer source."""
        return {"provider": "replay", "model": self.model, "source": self.source}

    def _load(self) -> dict[tuple[str, ...], str]:
        if self._table is None:
            self._table, self._model_id = _load_answers(self.source)
        return self._table

    def _answer(self, request: ModelRequest) -> tuple[str, str | None]:
        table = self._load()
        user_turns = tuple(
            _normalize(m.content) for m in request.turns if m.role == "user"
        )
        answer = table.get(user_turns)
        if answer is None and len(user_turns) > 1:
            answer = table.get(user_turns[-1:])
        if answer is None:
            prompt = user_turns[-1] if user_turns else ""
            raise ReplayMissError(
                f"The replay model {self.spec!r} has no recorded answer for the prompt "
                f"{prompt[:80]!r}; it knows {len(table)} recorded prompts (the bundled ones "
                "are the MT-Bench questions, see maquina_nb.providers.mt_bench_questions())."
            )
        return answer, self._model_id or self.model
