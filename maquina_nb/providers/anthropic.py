"""Claude models through the ``anthropic`` SDK and the Messages API.

``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` are honoured. The base URL is
the server root: the SDK adds ``/v1`` itself. The Messages API needs
``max_tokens``; when neither the request nor the settings give one, 4,096 is
sent. It has no ``seed``: a seed stays in the request (and its cache key) but is
not sent. System messages never travel inside ``messages``: they are joined
(blank line apart) into the top-level ``system``.

Token counts are reported the way :mod:`maquina_nb.providers.pricing` expects:
``input_tokens`` is the whole prompt (Anthropic's uncached input plus cache reads
and cache writes) and ``cached_tokens`` the cache reads.
"""

from __future__ import annotations

import json
from typing import Any

from maquina_nb._redact import get_logger
from maquina_nb.providers._errors import map_anthropic_errors
from maquina_nb.providers._remote import RemoteModel
from maquina_nb.providers._sdk_client import (
    answer_body,
    as_int,
    as_json,
    as_list,
    as_object,
    as_text,
    as_word,
    client_class,
    withhold_environment,
)
from maquina_nb.providers._streaming import (
    StreamReader,
    _skipped_chunks,
    normalize_finish,
)
from maquina_nb.providers.base import Completion, ModelRequest

__all__ = ["DEFAULT_MAX_TOKENS", "ClaudeModel"]

logger = get_logger(__name__)

DEFAULT_MAX_TOKENS = 4096


def _client_class() -> Any:
    import anthropic
    from anthropic.types import Message, RawMessageStreamEvent

    return client_class(anthropic.AsyncAnthropic, (Message, RawMessageStreamEvent))


class ClaudeModel(RemoteModel):
    """A Claude model (``anthropic:claude-sonnet-4-5``)."""

    provider = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    default_base_url = "https://api.anthropic.com"

    def _make_client(self, api_key: str | None) -> Any:
        client = _client_class()(
            api_key=api_key,
            base_url=self.base_url,
            timeout=self._timeout(),
            # Retries are ours: a 429 must pause the model's whole queue (retry.py).
            max_retries=0,
        )
        if not self._env_identity_allowed():
            withhold_environment(
                client, attributes=(), headers_env="ANTHROPIC_CUSTOM_HEADERS"
            )
        return client

    def _key_shape_problem(self, key: str, source: str) -> str | None:
        """Anthropic's keys start with ``sk-ant-``; an OpenAI key is a likely mix-up."""
        if self.base_url != self.default_base_url or key.startswith("sk-ant-"):
            return None
        return (
            f"The key in {source} does not look like an Anthropic key (those start with "
            "sk-ant-); check that it is not another provider's key."
        )

    def _map_errors(self) -> Any:
        return map_anthropic_errors(
            provider=self.provider,
            model=self.model,
            base_url=self.base_url,
            clock=self.clock,
        )

    def _kwargs(self, request: ModelRequest) -> dict[str, Any]:
        # The Messages API takes no system role inside messages: every system
        # message (the orchestrator sends only a leading one) goes to system=.
        system = [m.content for m in request.messages if m.role == "system"]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in request.messages if m.role != "system"],
            "max_tokens": request.max_tokens
            if request.max_tokens is not None
            else DEFAULT_MAX_TOKENS,
        }
        if system:
            kwargs["system"] = "\n\n".join(system)
        if request.stop is not None:
            kwargs["stop_sequences"] = list(request.stop)

        # NOTE: the installed SDK's create() no longer lists temperature and top_p
        # (newer Claude models fix them), but the API still takes them for the
        # models that allow them, so they travel in the body.
        body: dict[str, Any] = {}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        body.update(request.extra)
        if body:
            kwargs["extra_body"] = body
        return kwargs

    async def check_live(self) -> None:
        """List models once, without retries."""
        with self._map_errors():
            # Per-call options, not with_options(): a copied client would read the
            # environment again (withhold_environment). Retries are off already.
            await self._client().models.list(timeout=15)

    def _completion(
        self,
        text: str,
        stop_reason: str | None,
        tool_calls: list[dict[str, Any]] | None,
        usage: dict[str, int | None],
        model_id: str | None,
        raw: dict[str, Any],
    ) -> Completion:
        uncached = usage.get("input_tokens")
        read = usage.get("cache_read_input_tokens") or 0
        written = usage.get("cache_creation_input_tokens") or 0
        input_tokens = None if uncached is None else uncached + read + written
        return Completion(
            text=text,
            finish_reason=normalize_finish(stop_reason, text, tool_calls),  # type: ignore[arg-type]
            model_id=model_id or self.model,
            input_tokens=input_tokens,
            output_tokens=usage.get("output_tokens"),
            cached_tokens=read if input_tokens is not None else None,
            raw_finish_reason=stop_reason,
            tool_calls=tool_calls,
            raw=raw,
        )

    def _cache_write_tokens(self, completion: Completion) -> int | None:
        usage = (completion.raw or {}).get("usage")
        written = (
            usage.get("cache_creation_input_tokens")
            if isinstance(usage, dict)
            else None
        )
        return as_int(written) or None

    async def _generate_once(self, client: Any, request: ModelRequest) -> Completion:
        body = answer_body(
            await client.messages.create(**self._kwargs(request)),
            provider=self.provider,
            model=self.model,
        )
        # The content list may be empty (C17); never index into it. A server
        # that sends the content as one string is read as one text block.
        content = body.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        blocks = [b for b in as_list(content) if isinstance(b, dict)]
        text = "".join(
            as_text(b.get("text")) for b in blocks if b.get("type") == "text"
        )
        tool_calls = [
            _tool_call(b) for b in blocks if b.get("type") == "tool_use"
        ] or None
        return self._completion(
            text,
            as_word(body.get("stop_reason")),
            tool_calls,
            _usage_dict(body.get("usage")),
            as_word(body.get("model")),
            body,
        )

    async def _open_stream(self, client: Any, request: ModelRequest) -> Any:
        return await client.messages.create(**self._kwargs(request), stream=True)

    def _stream_reader(self) -> StreamReader:
        return _EventReader(self)


class _EventReader(StreamReader):
    """Read a Messages stream: text deltas, tool use, stop reason, usage."""

    awaited = "message_stop"

    def __init__(self, model: ClaudeModel) -> None:
        super().__init__(model.provider, model.model)
        self.owner = model
        self.parts: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, int | None] = {}
        self.stop_reason: str | None = None
        self.model_id: str | None = None
        self.finished = False

    def feed(self, event: Any) -> str | None:
        """Take one event; return the text it adds."""
        self.received += 1
        if event.__class__ is not dict:
            event = as_json(event)
        kind = event.get("type")
        # Text deltas first: nearly every event is one.
        if kind == "content_block_delta":
            delta = event.get("delta")
            if delta.__class__ is not dict:
                return None
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                text = delta.get("text")
                if text and text.__class__ is str:
                    self.parts.append(text)
                    return text
            elif delta_type == "input_json_delta":
                call = self.tools.get(as_int(event.get("index")) or 0)
                if call is not None:
                    call["arguments"] += as_text(delta.get("partial_json"))
        elif kind == "message_start":
            message = as_object(event.get("message"))
            self.model_id = as_word(message.get("model"))
            self.usage.update(_usage_dict(message.get("usage")))
        elif kind == "content_block_start":
            block = as_object(event.get("content_block"))
            if block.get("type") == "tool_use":
                index = as_int(event.get("index")) or 0
                self.tools[index] = {**_tool_call(block), "arguments": ""}
        elif kind == "message_delta":
            delta = as_object(event.get("delta"))
            stop = delta.get("stop_reason")
            if stop:
                self.stop_reason = as_word(stop) or "unknown"
            for name, value in _usage_dict(event.get("usage")).items():
                if value is not None:
                    self.usage[name] = value
        elif kind == "message_stop":
            self.finished = True
        return None

    def completion(self) -> Completion:
        """Return the answer, or raise if the stream never reached message_stop."""
        if not self.finished or self.stop_reason is None:
            raise self.incomplete()
        text = "".join(self.parts)
        tool_calls = [self.tools[i] for i in sorted(self.tools)] or None
        raw = {
            "type": "message.stream",
            "model": self.model_id,
            "text": text,
            "stop_reason": self.stop_reason,
            "tool_calls": tool_calls,
            "usage": self.usage,
            "events": self.received,
            "skipped_chunks": list(_skipped_chunks.get() or []),
        }
        return self.owner._completion(
            text, self.stop_reason, tool_calls, self.usage, self.model_id, raw
        )


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": as_word(block.get("id")),
        "type": "tool_use",
        "name": as_word(block.get("name")),
        "arguments": json.dumps(block.get("input", {}), default=str),
    }


def _usage_dict(usage: Any) -> dict[str, int | None]:
    usage = as_object(usage)
    return {
        name: as_int(usage.get(name))
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
    }
