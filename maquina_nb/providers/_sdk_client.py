"""The SDK client classes the remote models talk through.

Each model makes its own client, used by nothing else, from the official SDK's
client class with two changes:

- malformed server-sent events are skipped and counted instead of ending the
  stream (C09, :func:`maquina_nb.providers._streaming.tolerant_decoder`);
- the responses the model reads itself (a chat completion, a stream chunk, a
  message, a message event) come back as the decoded JSON rather than as typed
  SDK objects. The SDKs build a typed object for every stream chunk, which is
  most of their CPU time per call; the model reads a handful of fields and
  keeps the JSON as the raw payload, so building the objects was pure cost.

Everything else (requests, authentication, error translation, in-stream error
events, timeouts) stays the SDK's own.

:func:`withhold_environment` strips what an SDK client took from the environment
besides the key (organization and project ids, an admin key, extra headers such
as ``OPENAI_CUSTOM_HEADERS``) from a client whose model may not send the
environment's key either: one whose base URL came from a spec string, or a
model on another vendor's server.
"""

from __future__ import annotations

import os
from typing import Any

from maquina_nb._redact import get_logger
from maquina_nb.providers._errors import error_in_body
from maquina_nb.providers._streaming import tolerant_decoder

__all__ = [
    "answer_body",
    "as_int",
    "as_json",
    "as_list",
    "as_object",
    "as_text",
    "as_word",
    "client_class",
    "withhold_environment",
]

logger = get_logger(__name__)

_CLASSES: dict[type, type] = {}


def client_class(base: type, json_types: tuple[Any, ...]) -> type:
    """Return ``base`` made tolerant of bad events and lean on ``json_types``.

    Args:
        base: The SDK's async client class (``openai.AsyncOpenAI`` …).
        json_types: The response types handed back as decoded JSON.
    """
    known = _CLASSES.get(base)
    if known is not None:
        return known

    def _make_sse_decoder(self: Any, *args: Any, **kwargs: Any) -> Any:
        return tolerant_decoder(base._make_sse_decoder(self, *args, **kwargs))  # type: ignore[attr-defined]

    def _process_response_data(
        self: Any, *, data: object, cast_to: Any, response: Any
    ) -> Any:
        if cast_to in json_types:
            return data
        return base._process_response_data(  # type: ignore[attr-defined]
            self, data=data, cast_to=cast_to, response=response
        )

    made = type(
        f"Lean{base.__name__}",
        (base,),
        {
            "_make_sse_decoder": _make_sse_decoder,
            "_process_response_data": _process_response_data,
            "__module__": __name__,
        },
    )
    _CLASSES[base] = made
    return made


def as_json(value: Any) -> dict[str, Any]:
    """Return a response as a JSON object, whatever the SDK handed back.

    The clients above return JSON already; an SDK that built a typed object
    anyway (one that no longer routes through the hook) is dumped instead, and
    a body that is not an object at all reads as empty.
    """
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        dumped = dump(mode="json")
        return dumped if isinstance(dumped, dict) else {}
    return {}


def answer_body(value: Any, *, provider: str, model: str) -> dict[str, Any]:
    """Return a plain answer's JSON object; raise if it is an error or no object.

    Raises:
        ProviderResponseError: The body is an error object sent with HTTP 200,
            or JSON that is not an object at all.
    """
    body = value
    if not isinstance(value, dict) and getattr(value, "model_dump", None) is not None:
        body = as_json(value)
    error = error_in_body(body, provider=provider, model=model)
    if error is not None:
        raise error
    return body  # type: ignore[no-any-return]


def as_object(value: Any) -> dict[str, Any]:
    """Return a JSON object field, or an empty one for anything else (null …)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """Return a JSON array field, or an empty one for anything else."""
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    """Return a count or an index, or ``None`` for anything that is not one."""
    if value.__class__ is int and value >= 0:
        return value
    return None


def as_word(value: Any) -> str | None:
    """Return an identifier-like field (a model id, a finish reason, a tool name).

    Only text counts: a number, a list or an object, which no provider sends
    there, reads as missing.
    """
    return value if value.__class__ is str else None


def as_text(value: Any) -> str:
    """Return message content as text: a string, or the text parts of a list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part["text"]
            for part in value
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def withhold_environment(
    client: Any, *, attributes: tuple[str, ...], headers_env: str
) -> None:
    """Drop the environment's identity and extra headers from ``client``.

    Args:
        client: A client just built by the SDK.
        attributes: Client attributes the SDK fills from the environment
            (``organization``, ``project`` …); each is set to ``None``, which
            the SDKs read as "send no such header".
        headers_env: The variable the SDK reads extra headers from
            (``"Name: value"`` lines); those headers are removed again.
    """
    for name in attributes:
        if getattr(client, name, None) is not None:
            setattr(client, name, None)

    lines = os.environ.get(headers_env, "")
    from_env = {
        line.split(":", 1)[0].strip().lower()
        for line in lines.split("\n")
        if ":" in line
    }
    headers = getattr(client, "_custom_headers", None)
    if not from_env or not isinstance(headers, dict):
        return
    for name in [name for name in headers if name.lower() in from_env]:
        del headers[name]
    logger.debug("withheld %d header(s) from %s", len(from_env), headers_env)
