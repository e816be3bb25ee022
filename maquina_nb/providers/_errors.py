"""Translate SDK exceptions into maquina_nb's exception tree.

One context manager per SDK (:func:`map_openai_errors`, :func:`map_anthropic_errors`)
turns every failure into a :class:`~maquina_nb.errors.ProviderError` subclass,
chained to the original. Two attributes tell the retry loop what to do:
``retryable`` and ``retry_after`` (seconds, from the response headers).

Before chaining, the SDK exception and everything it chains to are scrubbed:
their text passes through :func:`~maquina_nb._redact.redact`, so a server that
echoes the key in a 401 body, or a transport error quoting a header, cannot
leak it through a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from maquina_nb._redact import redact
from maquina_nb.errors import (
    ProviderAuthError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from maquina_nb.providers.retry import parse_retry_after

__all__ = [
    "StreamIncompleteError",
    "is_retryable",
    "map_anthropic_errors",
    "map_openai_errors",
    "scrub_exception",
]

# Error types inside a 200 stream that are worth another attempt.
_TRANSIENT_STREAM_TYPES = {
    "overloaded_error",
    "api_error",
    "server_error",
    "rate_limit_error",
    "timeout_error",
    "internal_server_error",
}
_SENSITIVE_HEADERS = ("authorization", "x-api-key", "api-key")


class StreamIncompleteError(ProviderResponseError):
    """A stream ended before the provider said it was finished; always retryable.

    Also raised when the connection broke after the stream had started: the
    server was reached, so "could not reach the server" would mislead.

    Args:
        provider: The provider's name.
        model: The model's name.
        awaited: What the stream never sent (``"message_stop"``).
        received: How much it did send (``"12 events"``).
    """

    kind = "incomplete_stream"

    def __init__(
        self, *, provider: str, model: str, awaited: str, received: str
    ) -> None:
        super().__init__(
            f"The {provider} model {model!r} stream ended before {awaited}, "
            f"after {received}: the connection was cut or the server stopped early; "
            "try again later.",
            provider=provider,
            model=model,
        )
        self.retryable = True


def is_retryable(exc: BaseException) -> bool:
    """Tell whether another attempt may succeed."""
    return bool(getattr(exc, "retryable", False))


def scrub_exception(exc: BaseException) -> None:
    """Redact secrets from ``exc`` and every exception it chains to, in place."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(
            redact(a) if isinstance(a, str) else a for a in current.args
        )
        for name in ("message", "body", "api_message"):
            value = getattr(current, name, None)
            if isinstance(value, str):
                _set(current, name, redact(value))
            elif isinstance(value, (dict, list)):
                _set(current, name, json.loads(redact(json.dumps(value, default=str))))
        _scrub_response(getattr(current, "response", None))
        request = getattr(current, "request", None)
        headers = getattr(request, "headers", None)
        if headers is not None:
            for header in _SENSITIVE_HEADERS:
                with suppress(Exception):
                    headers.pop(header, None)
        current = current.__cause__ or current.__context__


def _scrub_response(response: Any) -> None:
    """Redact the body an SDK error keeps on its HTTP response.

    A leaky server may echo the key there; ``response.text`` is decoded from it.
    """
    content = getattr(response, "_content", None)
    if not isinstance(content, bytes):
        return
    text = content.decode("utf-8", "replace")
    cleaned = redact(text)
    if cleaned != text:
        _set(response, "_content", cleaned.encode("utf-8"))
        _set(response, "_text", cleaned)


def _set(obj: object, name: str, value: Any) -> None:
    with suppress(AttributeError):
        setattr(obj, name, value)


def _mark(
    error: ProviderError, *, retryable: bool, retry_after: float | None = None
) -> ProviderError:
    error.retryable = retryable  # type: ignore[attr-defined]
    if not isinstance(error, ProviderRateLimitError):
        error.retry_after = retry_after  # type: ignore[attr-defined]
    return error


def _body_text(body: object) -> str:
    if body is None:
        return ""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return redact(text)[:2000]


def _error_type(body: object) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return str(inner["type"])
        if isinstance(body.get("type"), str) and body.get("type") != "error":
            return str(body["type"])
    return None


def _error_detail(body: object, kind: str | None) -> str | None:
    """Return "type: message" from a provider's error body, when it has one."""
    inner = body.get("error", body) if isinstance(body, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    if not isinstance(message, str) or not message.strip():
        return None
    text = redact(" ".join(message.split()))[:300].rstrip(".")
    return f"{kind}: {text}" if kind else text


_CALLER_ERRORS = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
)


def error_in_body(body: object, *, provider: str, model: str) -> ProviderError | None:
    """Return the error an HTTP 200 answer carries instead of an answer, if any.

    Some proxies and local servers answer 200 with an OpenAI-style
    ``{"error": {...}}`` or an Anthropic-style ``{"type": "error", ...}`` body;
    read as an answer it would be stored as a silent empty one.
    """
    if not isinstance(body, dict):
        error = ProviderResponseError(
            f"The {provider} model {model!r} answered with JSON that is not an object; "
            "check that its base URL points at a chat API.",
            provider=provider,
            model=model,
            body=_body_text(body),
        )
        return _mark(error, retryable=False)
    is_error = body.get("type") == "error" or (
        body.get("error") is not None
        and "choices" not in body
        and "content" not in body
    )
    if not is_error:
        return None
    kind = _error_type(body)
    detail = _error_detail(body, kind) or kind or "no details"
    error = ProviderResponseError(
        f"The {provider} model {model!r} answered HTTP 200 with an error instead of an "
        f"answer ({detail}); {_advice(400 if kind in _CALLER_ERRORS else 500)}.",
        provider=provider,
        model=model,
        body=_body_text(body),
    )
    return _mark(error, retryable=kind not in _CALLER_ERRORS)


def _advice(status: int) -> str:
    """Say what to do about an HTTP error status."""
    if status == 404:
        return "check the model name and the base URL"
    if status in (400, 413, 422):
        return "check the request's parameters, prompt length and model name"
    if status >= 500:
        return "the provider failed on its side; try again later"
    return "check the model's settings"


def _should_retry_header(exc: Any) -> bool | None:
    response = getattr(exc, "response", None)
    value = (
        getattr(response, "headers", {}).get("x-should-retry")
        if response is not None
        else None
    )
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def translate(
    exc: Exception,
    sdk: Any,
    *,
    provider: str,
    model: str,
    base_url: str | None,
    now: float | None = None,
) -> ProviderError | None:
    """Return the product error for an SDK exception, or ``None`` if not an SDK one."""
    where = f"{provider} model {model!r}"
    if isinstance(exc, sdk.APITimeoutError):
        return _mark(
            ProviderTimeoutError(
                f"The {where} did not answer in time ({exc}); raise timeout= or read_timeout= "
                "in its settings if the model is slow.",
                provider=provider,
                model=model,
            ),
            retryable=False,
        )
    if isinstance(exc, sdk.APIConnectionError):
        return _mark(
            ProviderConnectionError(
                f"Could not reach the {where} at {base_url!r} ({exc}); check that the server "
                "is running and the base URL is right.",
                provider=provider,
                model=model,
            ),
            retryable=True,
        )
    if isinstance(exc, sdk.APIStatusError):
        return _translate_status(exc, provider=provider, model=model, now=now)
    if isinstance(exc, sdk.APIError):
        # An error event inside an HTTP 200 stream: the SDKs raise and never retry it.
        kind = _error_type(exc.body) or getattr(exc, "type", None)
        message = redact(getattr(exc, "message", str(exc)))
        if kind == "rate_limit_error":
            error: ProviderError = ProviderRateLimitError(
                f"The {where} reported a rate limit inside its stream ({message}).",
                provider=provider,
                model=model,
            )
            return _mark(error, retryable=True)
        error = ProviderResponseError(
            f"The {where} sent an error inside its stream ({kind or 'unknown'}: {message}).",
            provider=provider,
            model=model,
            body=_body_text(exc.body),
        )
        return _mark(error, retryable=kind in _TRANSIENT_STREAM_TYPES or kind is None)
    return None


def _translate_status(
    exc: Any, *, provider: str, model: str, now: float | None
) -> ProviderError:
    status = int(exc.status_code)
    # A stream error event arrives with the stream's 200 status.
    kind = _error_type(exc.body)
    headers = getattr(getattr(exc, "response", None), "headers", None)
    retry_after = parse_retry_after(headers, now=now)
    where = f"{provider} model {model!r}"
    body = _body_text(exc.body)
    hint = _should_retry_header(exc)

    if status in (401, 403) or kind in ("authentication_error", "permission_error"):
        error: ProviderError = ProviderAuthError(
            f"The {where} rejected the API key (HTTP {status}); check the key in its "
            "environment variable or settings.",
            provider=provider,
            model=model,
        )
        return _mark(error, retryable=False)
    if status == 429 or kind == "rate_limit_error":
        error = ProviderRateLimitError(
            f"The {where} is rate limited (HTTP {status}).",
            provider=provider,
            model=model,
            retry_after=retry_after,
        )
        return _mark(error, retryable=hint is not False)
    # An error type counts only inside a 200 stream: a 4xx is the caller's to fix
    # whatever type its body names. An unknown stream error is worth one more try.
    in_stream = status < 400
    transient = (
        status >= 500
        or status in (408, 409)
        or (in_stream and (kind is None or kind in _TRANSIENT_STREAM_TYPES))
    )
    detail = _error_detail(exc.body, kind) or body[:300] or "no body"
    if status == 200:
        message = f"The {where} sent an error inside its stream ({kind or 'unknown'})."
    else:
        message = f"The {where} answered HTTP {status} ({detail}); {_advice(status)}."
    error = ProviderResponseError(
        message, provider=provider, model=model, status_code=status, body=body
    )
    return _mark(
        error,
        retryable=hint if hint is not None else transient,
        retry_after=retry_after,
    )


@contextmanager
def _map_errors(
    sdk: Any, *, provider: str, model: str, base_url: str | None, clock: Any = None
) -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except json.JSONDecodeError as exc:
        # A body the SDK could not decode (not JSON at all).
        scrub_exception(exc)
        error = ProviderResponseError(
            f"The {provider} model {model!r} sent a body that could not be decoded ({exc}).",
            provider=provider,
            model=model,
        )
        raise _mark(error, retryable=True) from exc
    except Exception as exc:
        now = clock.time() if clock is not None else None
        translated = translate(
            exc, sdk, provider=provider, model=model, base_url=base_url, now=now
        )
        if translated is None:
            raise
        scrub_exception(exc)
        raise translated from exc


def map_openai_errors(
    *, provider: str, model: str, base_url: str | None, clock: Any = None
) -> Any:
    """Context manager turning ``openai`` exceptions into product exceptions.

    ``clock`` (its ``time()``) dates HTTP-date ``Retry-After`` values.
    """
    import openai

    return _map_errors(
        openai, provider=provider, model=model, base_url=base_url, clock=clock
    )


def map_anthropic_errors(
    *, provider: str, model: str, base_url: str | None, clock: Any = None
) -> Any:
    """Context manager turning ``anthropic`` exceptions into product exceptions."""
    import anthropic

    return _map_errors(
        anthropic, provider=provider, model=model, base_url=base_url, clock=clock
    )
