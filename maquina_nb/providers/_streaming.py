"""Stream helpers shared by the SDK-backed models.

- :class:`StreamReader` reads one streamed answer's events, one call per event:
  the text to pass on, then the finished :class:`Completion`;
- :func:`tolerant_decoder` makes an SDK's server-sent-event decoder skip and
  count a malformed chunk instead of ending the stream (C09);
- :func:`normalize_finish` maps each provider's finish word to the product's.
"""

from __future__ import annotations

import abc
import contextvars
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

from maquina_nb._redact import get_logger, redact
from maquina_nb.providers._errors import StreamIncompleteError
from maquina_nb.providers.base import Completion

__all__ = ["StreamReader", "TolerantSSEDecoder", "normalize_finish", "tolerant_decoder"]

logger = get_logger(__name__)

# Malformed stream chunks skipped in the current call (C09); read into ``raw``.
_skipped_chunks: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "maquina_skipped_chunks", default=None
)


class StreamReader(abc.ABC):
    """Read one streamed answer, event by event, without awaiting anything.

    :meth:`maquina_nb.providers._remote.RemoteModel.stream` drives the SDK's
    stream and hands each event to :meth:`feed`; a plain method call per event
    costs far less than another async generator between the SDK and the caller.

    Args:
        provider: The provider's name, for errors.
        model: The model's name, for errors.
    """

    #: What a finished stream ends with, named in :meth:`incomplete`.
    awaited = "its end"
    #: What one event is called, for :meth:`incomplete`.
    unit = "events"

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        #: Events fed so far; more than 0 means the server was reached.
        self.received = 0

    @abc.abstractmethod
    def feed(self, event: Any) -> str | None:
        """Take one event (decoded JSON); return the answer text it adds, if any."""

    @abc.abstractmethod
    def completion(self) -> Completion:
        """Return the finished answer; raise :meth:`incomplete` if it never finished."""

    def incomplete(self) -> StreamIncompleteError:
        """Return the error for a stream that stopped before :attr:`awaited`."""
        return StreamIncompleteError(
            provider=self.provider,
            model=self.model,
            awaited=self.awaited,
            received=f"{self.received} {self.unit}",
        )


def _parsed(value: Any) -> Any:
    return value


class TolerantSSEDecoder:
    """Wrap an SDK's SSE decoder and drop events whose data is not JSON.

    Both SDKs call ``json.loads`` on every event and let a decode error end the
    whole stream. A proxy or a local server that garbles one chunk should cost
    that chunk, not the answer (C09), so malformed events are skipped and
    counted instead.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @staticmethod
    def _keep(sse: Any) -> bool:
        data = sse.data
        if not data or data.startswith("[DONE]"):
            return True
        try:
            parsed = json.loads(data)
        except ValueError:
            skipped = _skipped_chunks.get()
            if skipped is not None:
                skipped.append(redact(data[:200]))
            logger.warning("skipped a malformed stream chunk (%d bytes)", len(data))
            return False
        # Hand the SDK the parsed value, so each event is decoded once, not twice.
        # (An event type with __slots__ would refuse; it then decodes again.)
        # A bare try is used: contextlib.suppress costs a microsecond per chunk.
        try:  # noqa: SIM105
            sse.json = functools.partial(_parsed, parsed)
        except AttributeError:  # pragma: no cover - no such SDK type today
            pass
        return True

    def iter_bytes(self, iterator: Any) -> Any:
        """Decode a sync byte iterator, skipping malformed events."""
        for sse in self._inner.iter_bytes(iterator):
            if self._keep(sse):
                yield sse

    async def aiter_bytes(self, iterator: Any) -> AsyncIterator[Any]:
        """Decode an async byte iterator, skipping malformed events."""
        async for sse in self._inner.aiter_bytes(iterator):
            if self._keep(sse):
                yield sse

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_SUBCLASSES: dict[Any, type] = {}


def _tolerant_subclass(base: Any) -> type:
    known = _SUBCLASSES.get(base)
    if known is not None:
        return known
    base_decode = base.decode

    def decode(self: Any, line: str) -> Any:
        sse = base_decode(self, line)
        if sse is None or not TolerantSSEDecoder._keep(sse):
            return None
        return sse

    subclass = type(f"Tolerant{base.__name__}", (base,), {"decode": decode})
    _SUBCLASSES[base] = subclass
    return subclass


def tolerant_decoder(decoder: Any) -> Any:
    """Return ``decoder`` made to skip malformed events (C09).

    The SDK decoders build each event in ``decode(line)``; a subclass that vets
    the event there costs nothing per chunk beyond the check itself. A decoder
    without that method is wrapped in :class:`TolerantSSEDecoder` instead.
    """
    if callable(getattr(type(decoder), "decode", None)):
        try:
            decoder.__class__ = _tolerant_subclass(type(decoder))
        except TypeError:  # pragma: no cover - a decoder type that refuses it
            return TolerantSSEDecoder(decoder)
        return decoder
    return TolerantSSEDecoder(decoder)


_FINISH = {
    # OpenAI
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    # Anthropic
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def normalize_finish(
    raw: str | None, text: str, tool_calls: list[dict[str, Any]] | None
) -> str:
    """Map a provider's finish word to stop, length, content_filter, tool_calls or empty."""
    finish = _FINISH.get(raw or "", "stop")
    if finish == "stop" and not text:
        return "tool_calls" if tool_calls else "empty"
    return finish
