"""The contract every model implements: requests in, completions out.

A :class:`ModelRequest` is what the orchestrator asks; a :class:`Completion` is
what comes back. :class:`BaseAIModel` turns one into the other, either at once
(:meth:`BaseAIModel.generate`) or as a stream of :class:`TextDelta` values that
ends with the :class:`Completion` (:meth:`BaseAIModel.stream`).
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FINISH_REASONS",
    "BaseAIModel",
    "Completion",
    "FinishReason",
    "Message",
    "ModelRequest",
    "TextDelta",
]

FinishReason = Literal[
    "stop", "length", "content_filter", "tool_calls", "empty", "error", "cancelled"
]
FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "content_filter",
    "tool_calls",
    "empty",
    "error",
    "cancelled",
)

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: Role
    """Who speaks: ``system``, ``user`` or ``assistant``."""
    content: str
    """The message text."""

    def to_dict(self) -> dict[str, str]:
        """Return the message as a plain ``{"role", "content"}`` dict."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything that decides a model's answer.

    ``None`` means "the provider's default" and is kept distinct from an explicit
    value (a missing temperature is not temperature 0) in cache keys.
    """

    messages: tuple[Message, ...]
    """System, user and assistant turns, in order. A system prompt is the first
    message with role ``system``."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Provider-specific parameters passed through unchanged."""

    @property
    def system(self) -> str | None:
        """The system prompt, when the first message is one."""
        if self.messages and self.messages[0].role == "system":
            return self.messages[0].content
        return None

    @property
    def turns(self) -> tuple[Message, ...]:
        """The messages without the leading system prompt."""
        if self.system is not None:
            return self.messages[1:]
        return self.messages

    def parameters(self) -> dict[str, Any]:
        """Return the sampling parameters as a JSON-ready dict (``None`` kept)."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "stop": list(self.stop) if self.stop is not None else None,
            "seed": self.seed,
            "extra": dict(self.extra),
        }


@dataclass(slots=True)
class Completion:
    """One answer, with what is needed to audit and price it."""

    text: str
    """The answer text; ``""`` when the model produced none."""
    finish_reason: FinishReason
    """Normalized: stop, length (truncated), content_filter, tool_calls, empty,
    error, cancelled."""
    model_id: str | None = None
    """The exact model id the provider reports having used."""
    input_tokens: int | None = None
    """``None`` when the provider did not report usage (never a made-up 0)."""
    output_tokens: int | None = None
    cached_tokens: int | None = None
    """Prompt tokens served from the provider's prompt cache."""
    latency_s: float | None = None
    """Wall time of the whole call, seconds."""
    ttft_s: float | None = None
    """Time to first token of a stream, seconds."""
    raw_finish_reason: str | None = None
    """The provider's own word (``end_turn``, ``max_tokens``, ``length`` …)."""
    tool_calls: list[dict[str, Any]] | None = None
    """Tool calls the model asked for, kept as JSON."""
    raw: dict[str, Any] | None = None
    """The provider payload (or the assembled stream), for auditing."""
    cost_usd: float | None = None
    """Filled by the pricing step; ``None`` means unknown."""
    cost_is_estimate: bool = False

    @property
    def truncated(self) -> bool:
        """Tell whether the answer stopped at the token limit."""
        return self.finish_reason == "length"


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed text."""

    text: str
    reset: bool = False
    """When true, drop the text streamed so far before appending ``text``: the
    stream failed part-way and is being retried from the start. The final
    :class:`Completion` always holds the full, authoritative text."""


class BaseAIModel(abc.ABC):
    """A model that answers :class:`ModelRequest` values.

    Subclasses implement :meth:`generate`; streaming ones also override
    :meth:`stream`. Instances are shared across runs and must be safe to call
    concurrently from the background event loop.
    """

    #: Provider name as used in specs (``openai``, ``anthropic``, ``echo`` …).
    provider: str = "custom"
    #: Whether :meth:`stream` yields real increments.
    supports_streaming: bool = False
    #: Whether the model needs an API key.
    needs_key: bool = False

    def __init__(self, model: str, *, spec: str | None = None) -> None:
        self.model = model
        self.spec = spec or f"{self.provider}:{model}"

    @property
    def identity(self) -> dict[str, Any]:
        """What distinguishes this model's answers in a cache key.

        Includes the provider, the model name and anything that changes answers
        for the same name, such as the base URL of a local server or a custom
        model's version.
        """
        return {"provider": self.provider, "model": self.model}

    @abc.abstractmethod
    async def generate(self, request: ModelRequest) -> Completion:
        """Answer ``request`` in one call."""

    async def stream(
        self, request: ModelRequest
    ) -> AsyncIterator[TextDelta | Completion]:
        """Yield text deltas, then the finished :class:`Completion` last.

        The default calls :meth:`generate` and yields its text as one delta.
        """
        started = time.perf_counter()
        completion = await self.generate(request)
        if completion.text:
            yield TextDelta(completion.text)
        if completion.ttft_s is None:
            completion.ttft_s = time.perf_counter() - started
        yield completion

    async def aclose(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release network clients; called when the registry drops the model."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r}>"
