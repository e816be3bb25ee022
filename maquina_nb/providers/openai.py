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
import json
import os
import re
import threading
from typing import Any
from urllib.parse import urlsplit

from maquina_nb._redact import get_logger
from maquina_nb.providers._errors import map_openai_errors
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

__all__ = ["OllamaModel", "OpenAICompatibleModel", "OpenAIModel"]

logger = get_logger(__name__)

_REASONING = re.compile(r"^(o\d|gpt-5)")
# Base URLs whose servers refused ``stream_options``; shared by every model.
_NO_STREAM_OPTIONS: set[str | None] = set()
_lock = threading.Lock()


def _client_class() -> Any:
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    return client_class(openai.AsyncOpenAI, (ChatCompletion, ChatCompletionChunk))


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
        client = _client_class()(
            api_key=api_key or self._placeholder_key(),
            base_url=self.base_url,
            timeout=self._timeout(),
            # Retries are ours: a 429 must pause the model's whole queue (retry.py).
            max_retries=0,
        )
        if not self._env_identity_allowed():
            withhold_environment(
                client,
                attributes=("organization", "project", "admin_api_key"),
                headers_env="OPENAI_CUSTOM_HEADERS",
            )
        return client

    def _placeholder_key(self) -> str:
        # The SDK refuses to start without a key; local servers ignore it.
        return "not-needed"

    def _key_shape_problem(self, key: str, source: str) -> str | None:
        """An Anthropic key (``sk-ant-``) sent to OpenAI is a likely mix-up."""
        if self.provider != "openai" or self.base_url != self.default_base_url:
            return None
        if not key.startswith("sk-ant-"):
            return None
        return (
            f"The key in {source} looks like an Anthropic key (sk-ant-), not an OpenAI "
            "one; check that OPENAI_API_KEY holds the OpenAI key."
        )

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
            # Per-call options, not with_options(): a copied client would read the
            # environment again (withhold_environment). Retries are off already.
            await self._client().models.list(timeout=15)

    async def _generate_once(self, client: Any, request: ModelRequest) -> Completion:
        body = answer_body(
            await client.chat.completions.create(**self._kwargs(request)),
            provider=self.provider,
            model=self.model,
        )
        # The choices list may be empty, or hold null (C17): never index blindly.
        choices = as_list(body.get("choices"))
        first = as_object(choices[0] if choices else None)
        message = as_object(first.get("message"))
        calls = as_list(message.get("tool_calls"))
        tool_calls = [_tool_call(call) for call in calls] or None
        return self._completion(
            as_text(message.get("content")),
            as_word(first.get("finish_reason")),
            tool_calls,
            body.get("usage"),
            as_word(body.get("model")),
            body,
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
        usage = usage if isinstance(usage, dict) else {}
        details = usage.get("prompt_tokens_details")
        return Completion(
            text=text,
            finish_reason=normalize_finish(finish_raw, text, tool_calls),  # type: ignore[arg-type]
            model_id=model_id or self.model,
            input_tokens=as_int(usage.get("prompt_tokens")),
            output_tokens=as_int(usage.get("completion_tokens")),
            cached_tokens=as_int(details.get("cached_tokens"))
            if isinstance(details, dict)
            else None,
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

    def _stream_reader(self) -> StreamReader:
        return _ChunkReader(self)


class _ChunkReader(StreamReader):
    """Read a Chat Completions stream: choice 0's text, tool calls, finish, usage."""

    awaited = "a finish reason"
    unit = "chunks"

    def __init__(self, model: OpenAIModel) -> None:
        super().__init__(model.provider, model.model)
        self.owner = model
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_raw: str | None = None
        self.model_id: str | None = None
        self.usage: Any = None

    def feed(self, event: Any) -> str | None:
        """Take one chunk; return choice 0's new text."""
        self.received += 1
        chunk = event if event.__class__ is dict else as_json(event)
        model_id = chunk.get("model")
        if model_id and model_id.__class__ is str:
            self.model_id = model_id
        self.usage = chunk.get("usage") or self.usage
        text = None
        # Filter-metadata and usage chunks carry no choices (C09).
        for choice in chunk.get("choices") or ():
            if choice.__class__ is not dict or choice.get("index") not in (0, None):
                continue
            delta = choice.get("delta")
            if delta.__class__ is dict:
                content = delta.get("content")
                if content and content.__class__ is not str:
                    content = as_text(content)  # content parts, as in plain answers
                if content:
                    self.parts.append(content)
                    text = content if text is None else text + content
                if delta.get("tool_calls"):
                    _merge_tool_deltas(self.calls, delta["tool_calls"])
            finish = choice.get("finish_reason")
            if finish:
                self.finish_raw = as_word(finish) or "unknown"
        return text

    def completion(self) -> Completion:
        """Return the answer, or raise if the stream never gave a finish reason."""
        if self.finish_raw is None:
            raise self.incomplete()
        text = "".join(self.parts)
        tool_calls = [self.calls[i] for i in sorted(self.calls)] or None
        raw = {
            "object": "chat.completion.stream",
            "model": self.model_id,
            "text": text,
            "finish_reason": self.finish_raw,
            "tool_calls": tool_calls,
            "usage": self.usage,
            "chunks": self.received,
            "skipped_chunks": list(_skipped_chunks.get() or []),
        }
        return self.owner._completion(
            text, self.finish_raw, tool_calls, self.usage, self.model_id, raw
        )


def _tool_call(call: Any) -> dict[str, Any]:
    call = as_object(call)
    function = as_object(call.get("function"))
    return {
        "id": as_word(call.get("id")),
        "type": as_word(call.get("type")) or "function",
        "name": as_word(function.get("name")),
        "arguments": _arguments(function.get("arguments")),
    }


def _arguments(value: Any) -> str | None:
    """Tool arguments as JSON text, whether the server sent text or an object."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _merge_tool_deltas(calls: dict[int, dict[str, Any]], deltas: Any) -> None:
    for delta in as_list(deltas):
        if not isinstance(delta, dict):
            continue
        index = as_int(delta.get("index")) or 0
        call = calls.setdefault(
            index, {"id": None, "type": "function", "name": None, "arguments": ""}
        )
        if as_word(delta.get("id")):
            call["id"] = as_word(delta["id"])
        function = delta.get("function")
        if isinstance(function, dict):
            if as_word(function.get("name")):
                call["name"] = as_word(function["name"])
            call["arguments"] += _arguments(function.get("arguments")) or ""


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
