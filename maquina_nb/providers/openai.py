"""OpenAI models, and any server that speaks OpenAI Chat Completions.

- :class:`OpenAIModel` (``openai:gpt-4o``): the official API; ``OPENAI_API_KEY``
  and ``OPENAI_BASE_URL`` are honoured. Reasoning models (``o1``, ``o3``,
  ``o4-mini``, ``gpt-5`` …) get ``max_completion_tokens`` instead of
  ``max_tokens``.
- :class:`OpenAICompatibleModel` (``openai-compatible:NAME`` with ``base_url``):
  vLLM, llama.cpp server, LM Studio and the like; the key is optional.
- :class:`OllamaModel` (``ollama:llama3.1``): Ollama's OpenAI endpoint, at
  ``OLLAMA_HOST`` or ``http://127.0.0.1:11434``; free unless priced.

Streams ask for usage (``stream_options``); a server that rejects the field with
a 400 is asked again without it, and remembered (C10).
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from maquina_nb._redact import get_logger
from maquina_nb.providers._errors import StreamIncompleteError, map_openai_errors
from maquina_nb.providers._remote import RemoteModel
from maquina_nb.providers._streaming import (
    _skipped_chunks,
    normalize_finish,
    tolerant_decoder,
)
from maquina_nb.providers.base import Completion, ModelRequest, TextDelta

__all__ = ["OllamaModel", "OpenAICompatibleModel", "OpenAIModel"]

logger = get_logger(__name__)

_REASONING = re.compile(r"^(o\d|gpt-5)")
# Base URLs whose servers refused ``stream_options``; shared by every model.
_NO_STREAM_OPTIONS: set[str | None] = set()
_lock = threading.Lock()


def _client_class() -> Any:
    import openai

    class _AsyncOpenAI(openai.AsyncOpenAI):
        # Skip malformed SSE events instead of ending the stream (C09).
        def _make_sse_decoder(self) -> Any:
            return tolerant_decoder(super()._make_sse_decoder())

    return _AsyncOpenAI


def _is_local(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return (
            ipaddress.ip_address(host).is_loopback
            or ipaddress.ip_address(host).is_private
        )
    except ValueError:
        return False


class OpenAIModel(RemoteModel):
    """A model served by the OpenAI Chat Completions API."""

    provider = "openai"
    key_env: str | None = "OPENAI_API_KEY"
    base_url_env: str | None = "OPENAI_BASE_URL"
    default_base_url: str | None = "https://api.openai.com/v1"
    #: Whether to ask for usage in streams (``stream_options.include_usage``).
    request_stream_usage = True

    def _make_client(self, api_key: str | None) -> Any:
        return _client_class()(
            api_key=api_key or self._placeholder_key(),
            base_url=self.base_url,
            timeout=self._timeout(),
            # Retries are ours: a 429 must pause the model's whole queue (retry.py).
            max_retries=0,
        )

    def _placeholder_key(self) -> str:
        # The SDK refuses to start without a key; local servers ignore it.
        return "not-needed"

    def _map_errors(self) -> Any:
        return map_openai_errors(
            provider=self.provider,
            model=self.model,
            base_url=self.base_url,
            clock=self.clock,
        )

    def _uses_completion_tokens(self) -> bool:
        return self.provider == "openai" and bool(_REASONING.match(self.model))

    def _kwargs(self, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [message.to_dict() for message in request.messages],
        }
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.top_p is not None:
            kwargs["top_p"] = request.top_p
        if request.max_tokens is not None:
            name = (
                "max_completion_tokens"
                if self._uses_completion_tokens()
                else "max_tokens"
            )
            kwargs[name] = request.max_tokens
        if request.stop is not None:
            kwargs["stop"] = list(request.stop)
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.extra:
            kwargs["extra_body"] = dict(request.extra)
        return kwargs

    async def check_live(self) -> None:
        """List models once, without retries."""
        with self._map_errors():
            await self._client().with_options(max_retries=0, timeout=15).models.list()

    async def _generate_once(self, client: Any, request: ModelRequest) -> Completion:
        response = await client.chat.completions.create(**self._kwargs(request))
        raw = response.model_dump(mode="json", exclude_none=True)
        choices = response.choices or []
        text, tool_calls, finish_raw = "", None, None
        if choices:
            message = choices[0].message
            text = (message.content if message is not None else None) or ""
            finish_raw = choices[0].finish_reason
            if message is not None and message.tool_calls:
                tool_calls = [_tool_call(call) for call in message.tool_calls]
        return self._completion(
            text, finish_raw, tool_calls, response.usage, response.model, raw
        )

    def _completion(
        self,
        text: str,
        finish_raw: str | None,
        tool_calls: list[dict[str, Any]] | None,
        usage: Any,
        model_id: str | None,
        raw: dict[str, Any],
    ) -> Completion:
        input_tokens = output_tokens = cached = None
        if usage is not None:
            input_tokens = usage.prompt_tokens
            output_tokens = usage.completion_tokens
            details = getattr(usage, "prompt_tokens_details", None)
            cached = (
                getattr(details, "cached_tokens", None) if details is not None else None
            )
        return Completion(
            text=text,
            finish_reason=normalize_finish(finish_raw, text, tool_calls),  # type: ignore[arg-type]
            model_id=model_id or self.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached,
            raw_finish_reason=finish_raw,
            tool_calls=tool_calls,
            raw=raw,
        )

    async def _open_stream(self, client: Any, request: ModelRequest) -> Any:
        import openai

        kwargs = self._kwargs(request)
        with _lock:
            ask_usage = (
                self.request_stream_usage and self.base_url not in _NO_STREAM_OPTIONS
            )
        if not ask_usage:
            return await client.chat.completions.create(**kwargs, stream=True)
        try:
            return await client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        except openai.BadRequestError as exc:
            if "stream_options" not in str(exc) and "stream_options" not in str(
                exc.body
            ):
                raise
            with _lock:
                _NO_STREAM_OPTIONS.add(self.base_url)
            logger.info(
                "the server at %s refused stream_options; streaming without usage from now on",
                self.base_url,
            )
            return await client.chat.completions.create(**kwargs, stream=True)

    async def _stream_once(
        self, client: Any, request: ModelRequest
    ) -> AsyncIterator[TextDelta | Completion]:
        stream = await self._open_stream(client, request)
        parts: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish_raw = model_id = usage = None
        chunks = 0
        async with stream:
            async for chunk in stream:
                chunks += 1
                model_id = getattr(chunk, "model", None) or model_id
                usage = getattr(chunk, "usage", None) or usage
                # Filter-metadata and usage chunks carry no choices (C09).
                for choice in getattr(chunk, "choices", None) or []:
                    if getattr(choice, "index", 0) not in (0, None):
                        continue
                    delta = choice.delta
                    if delta is not None and delta.content:
                        parts.append(delta.content)
                        yield TextDelta(delta.content)
                    if delta is not None and delta.tool_calls:
                        _merge_tool_deltas(calls, delta.tool_calls)
                    if choice.finish_reason:
                        finish_raw = choice.finish_reason

        if finish_raw is None:
            raise StreamIncompleteError(
                provider=self.provider,
                model=self.model,
                awaited="a finish reason",
                received=f"{chunks} chunks",
            )
        text = "".join(parts)
        tool_calls = [calls[i] for i in sorted(calls)] or None
        raw = {
            "object": "chat.completion.stream",
            "model": model_id,
            "text": text,
            "finish_reason": finish_raw,
            "tool_calls": tool_calls,
            "usage": usage.model_dump(mode="json", exclude_none=True)
            if usage is not None
            else None,
            "chunks": chunks,
            "skipped_chunks": list(_skipped_chunks.get() or []),
        }
        yield self._completion(text, finish_raw, tool_calls, usage, model_id, raw)


def _tool_call(call: Any) -> dict[str, Any]:
    function = getattr(call, "function", None)
    return {
        "id": getattr(call, "id", None),
        "type": getattr(call, "type", "function"),
        "name": getattr(function, "name", None),
        "arguments": getattr(function, "arguments", None),
    }


def _merge_tool_deltas(calls: dict[int, dict[str, Any]], deltas: Any) -> None:
    for delta in deltas:
        index = getattr(delta, "index", 0) or 0
        call = calls.setdefault(
            index, {"id": None, "type": "function", "name": None, "arguments": ""}
        )
        if getattr(delta, "id", None):
            call["id"] = delta.id
        function = getattr(delta, "function", None)
        if function is not None:
            if function.name:
                call["name"] = function.name
            if function.arguments:
                call["arguments"] += function.arguments


class OpenAICompatibleModel(OpenAIModel):
    """A model on any OpenAI-compatible server (vLLM, llama.cpp, LM Studio …).

    Needs ``base_url`` (ending in ``/v1``); the key is optional and read from
    ``key_env`` when configured. Servers on this machine or a private network
    cost 0 unless priced.
    """

    provider = "openai-compatible"
    needs_key = False
    key_env = None
    base_url_env = None
    default_base_url = None

    @property
    def free_by_default(self) -> bool:  # type: ignore[override]
        """Local and private-network servers are free unless priced."""
        return _is_local(self.base_url)

    def _make_client(self, api_key: str | None) -> Any:
        if not self.base_url:
            from maquina_nb.errors import ConfigurationError

            raise ConfigurationError(
                f"The model {self.spec!r} needs a base URL; pass base_url= (for example "
                "'http://127.0.0.1:8000/v1') or set base_url in its [models] settings."
            )
        return super()._make_client(api_key)


def ollama_base_url() -> str:
    """Return Ollama's OpenAI endpoint from ``OLLAMA_HOST`` or the usual address."""
    host = os.environ.get("OLLAMA_HOST", "").strip() or "127.0.0.1:11434"
    if "://" not in host:
        host = f"http://{host}"
    parts = urlsplit(host)
    hostname = parts.hostname or "127.0.0.1"
    # OLLAMA_HOST often names the server's bind address; 0.0.0.0 means "this machine".
    if hostname in ("0.0.0.0", "::"):
        hostname = "127.0.0.1"
    port = parts.port or 11434
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{hostname}:{port}{path}/v1"


class OllamaModel(OpenAICompatibleModel):
    """A model served by Ollama (``ollama:llama3.1``); free unless priced."""

    provider = "ollama"

    @property
    def free_by_default(self) -> bool:  # type: ignore[override]
        """Ollama runs locally: free unless priced."""
        return True

    @property
    def base_url(self) -> str | None:
        """``base_url`` from settings, else ``OLLAMA_HOST``, else 127.0.0.1:11434."""
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        return ollama_base_url()

    def _placeholder_key(self) -> str:
        return "ollama"
