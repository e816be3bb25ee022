"""What the fake server says: scripted replies and the two wire formats.

A :class:`Reply` describes one answer and the faults to inject into it. The
builders below turn it into the JSON bodies and server-sent events that the
OpenAI Chat Completions and Anthropic Messages APIs send, so the real SDKs parse
them exactly as they would parse the real services.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

__all__ = ["Reply"]

# Provider words for the normalized finish reasons the scripts use.
_OPENAI_FINISH = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
}
_ANTHROPIC_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
}
_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass
class Reply:
    """One scripted answer, with the faults to inject.

    Every field has a harmless default, so ``Reply(text="hi")`` is a normal answer
    and each fault is one keyword away.
    """

    text: str | None = None
    """Answer text; ``None`` answers ``"Fake answer: <last user message>"``.
    An empty string gives an empty answer (OpenAI ``content: null``, Anthropic
    ``content: []``)."""
    chunks: list[str] | None = None
    """Stream pieces; default splits ``text`` into words."""
    finish: str = "stop"
    """Normalized finish reason: stop, length, content_filter or tool_calls; or
    any provider word, sent as is."""
    tool_calls: list[dict[str, Any]] | None = None
    """Tool calls as ``{"name": ..., "arguments": {...}}``."""
    model: str | None = None
    """Model id to report; default the requested one."""

    status: int = 200
    """HTTP status; an error status sends an error body instead of an answer."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (``Retry-After`` …)."""
    body: Any = None
    """Raw body to send instead of the built one (dict → JSON)."""
    events: list[Any] | None = None
    """Stream payloads to send instead of the built ones, each a JSON value.
    OpenAI: one ``data:`` line each, then ``[DONE]``. Anthropic: a payload's
    ``type`` names its event, or give ``(event name, payload)`` pairs."""
    error_type: str | None = None
    """Error type for error bodies and stream error events."""
    echo_key: bool = False
    """Repeat the submitted API key in the error body (a leaky server)."""

    latency: float = 0.0
    """Seconds before the response headers are sent."""
    chunk_delay: float = 0.0
    """Seconds between stream events."""

    usage: bool = True
    """Report token usage (streams: only when the client asks, for OpenAI)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    """Prompt tokens read from the cache (OpenAI: part of the input count;
    Anthropic: reported apart, as ``cache_read_input_tokens``)."""
    cache_write_tokens: int = 0
    """Anthropic only: prompt tokens written to the cache."""

    empty_choices: bool = False
    """OpenAI streams: start with a ``choices: []`` prompt-filter chunk."""
    error_after: int | None = None
    """Send an error event after this many text chunks (inside HTTP 200)."""
    malformed_after: int | None = None
    """Send a chunk that is not JSON after this many text chunks."""
    truncate_after: int | None = None
    """Drop the connection after this many text chunks."""
    stall_after: int | None = None
    """Go silent for ``stall`` seconds after this many text chunks."""
    stall: float = 0.0
    """How long the ``stall_after`` silence lasts."""
    clean_truncate: bool = False
    """With ``truncate_after``: end the body cleanly, without the final events."""
    split_utf8: bool = False
    """Write every event in two TCP writes split inside a multi-byte character."""
    pings: int = 1
    """Anthropic streams: ping events after ``message_start``."""

    def with_changes(self, **changes: Any) -> Reply:
        """Return a copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1, **kwargs: Any) -> Reply:
        """A 429, with ``Retry-After`` (seconds or an HTTP date) unless ``None``."""
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        headers.update(kwargs.pop("headers", {}))
        return cls(status=429, headers=headers, error_type="rate_limit_error", **kwargs)

    @classmethod
    def server_error(cls, status: int = 500, **kwargs: Any) -> Reply:
        """A 5xx answer; 529 is Anthropic's "overloaded"."""
        kind = "overloaded_error" if status == 529 else "api_error"
        return cls(status=status, error_type=kind, **kwargs)


@dataclass
class ReplyPlan:
    """A reply resolved against one request: the text and counts to send."""

    reply: Reply
    model: str
    text: str
    chunks: list[str]
    input_tokens: int
    output_tokens: int


def plan_reply(reply: Reply, model: str, prompt: str) -> ReplyPlan:
    """Resolve defaults of ``reply`` for a request to ``model`` about ``prompt``."""
    text = reply.text if reply.text is not None else f"Fake answer: {prompt}"
    chunks = list(reply.chunks) if reply.chunks is not None else _WORDS.findall(text)
    if reply.chunks is not None and reply.text is None:
        text = "".join(chunks)
    input_tokens = reply.input_tokens
    if input_tokens is None:
        input_tokens = max(1, len(prompt.split()))
    output_tokens = reply.output_tokens
    if output_tokens is None:
        output_tokens = len(chunks)
    return ReplyPlan(
        reply, reply.model or model, text, chunks, input_tokens, output_tokens
    )


def finish_word(finish: str, api: str) -> str:
    """Return the provider's word for a normalized finish reason."""
    table = _OPENAI_FINISH if api == "openai" else _ANTHROPIC_FINISH
    return table.get(finish, finish)


def error_body(reply: Reply, api: str, key: str | None) -> Any:
    """Return the JSON error body for an error status."""
    if reply.body is not None:
        return reply.body
    kind = reply.error_type or (
        "authentication_error" if reply.status == 401 else "api_error"
    )
    message = {
        401: "Invalid API key.",
        429: "Rate limit reached; slow down.",
        529: "Overloaded.",
    }.get(reply.status, f"Fake error with status {reply.status}.")
    if reply.echo_key:
        message = f"Incorrect API key provided: {key}. Check your key."
    if api == "openai":
        return {
            "error": {"message": message, "type": kind, "param": None, "code": kind}
        }
    return {"type": "error", "error": {"type": kind, "message": message}}


# --- OpenAI Chat Completions ------------------------------------------------


def _openai_usage(plan: ReplyPlan) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.input_tokens,
        "completion_tokens": plan.output_tokens,
        "total_tokens": plan.input_tokens + plan.output_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.reply.cached_tokens},
    }


def _openai_tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": json.dumps(call.get("arguments", {})),
            },
        }
        for index, call in enumerate(reply.tool_calls or [])
    ]


def openai_completion(plan: ReplyPlan, serial: int) -> dict[str, Any]:
    """Return a non-streamed ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": plan.text or None}
    if plan.reply.tool_calls:
        message["tool_calls"] = _openai_tool_calls(plan.reply)
    body: dict[str, Any] = {
        "id": f"chatcmpl-fake{serial}",
        "object": "chat.completion",
        "created": 1700000000,
        "model": plan.model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_word(plan.reply.finish, "openai"),
            }
        ],
    }
    if plan.reply.usage:
        body["usage"] = _openai_usage(plan)
    return body


def openai_events(
    plan: ReplyPlan, serial: int, include_usage: bool
) -> list[tuple[str, Any]]:
    """Return the stream as ``(kind, payload)``: ``data`` events and fault markers."""
    base = {
        "id": f"chatcmpl-fake{serial}",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": plan.model,
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            **base,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events: list[tuple[str, Any]] = []
    if plan.reply.empty_choices:
        filters = [
            {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False}}}
        ]
        events.append(
            ("data", {**base, "choices": [], "prompt_filter_results": filters})
        )
    events.append(("data", chunk({"role": "assistant", "content": ""})))
    events += _text_events(plan, lambda piece: ("data", chunk({"content": piece})))
    for index, call in enumerate(_openai_tool_calls(plan.reply)):
        events.append(("data", chunk({"tool_calls": [{"index": index, **call}]})))
    events.append(("data", chunk({}, finish_word(plan.reply.finish, "openai"))))
    if include_usage and plan.reply.usage:
        events.append(("data", {**base, "choices": [], "usage": _openai_usage(plan)}))
    events.append(("done", "[DONE]"))
    return events


# --- Anthropic Messages -----------------------------------------------------


def _anthropic_usage(plan: ReplyPlan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": plan.reply.cached_tokens,
        "cache_creation_input_tokens": plan.reply.cache_write_tokens,
    }


def _anthropic_tools(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_use",
            "id": f"toolu_{index}",
            "name": call["name"],
            "input": call.get("arguments", {}),
        }
        for index, call in enumerate(reply.tool_calls or [])
    ]


def anthropic_message(plan: ReplyPlan, serial: int) -> dict[str, Any]:
    """Return a non-streamed ``message`` body."""
    content: list[dict[str, Any]] = (
        [{"type": "text", "text": plan.text}] if plan.text else []
    )
    content += _anthropic_tools(plan.reply)
    body: dict[str, Any] = {
        "id": f"msg_fake{serial}",
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": content,
        "stop_reason": finish_word(plan.reply.finish, "anthropic"),
        "stop_sequence": None,
        "usage": _anthropic_usage(plan, plan.output_tokens),
    }
    if not plan.reply.usage:
        body["usage"] = {"input_tokens": 0, "output_tokens": 0}
    return body


def scripted_events(api: str, payloads: list[Any]) -> list[tuple[str, Any]]:
    """Return ``Reply.events`` as ``(kind, payload)`` pairs for ``api``.

    Each becomes an ``as_given`` pair holding ``(event name, payload)``, so a
    scripted event is never taken for one of the fault markers (``error`` …).
    """
    if api == "openai":
        return [("as_given", (None, payload)) for payload in payloads] + [
            ("done", "[DONE]")
        ]
    events: list[tuple[str, Any]] = []
    for payload in payloads:
        if isinstance(payload, tuple):
            events.append(("as_given", payload))
        else:
            kind = payload.get("type") if isinstance(payload, dict) else None
            events.append(("as_given", (str(kind or "message"), payload)))
    return events


def anthropic_events(plan: ReplyPlan, serial: int) -> list[tuple[str, Any]]:
    """Return the full Messages stream as ``(event name, payload)`` pairs."""
    start = anthropic_message(plan, serial)
    start.update(content=[], stop_reason=None, usage=_anthropic_usage(plan, 1))
    events: list[tuple[str, Any]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    events += [("ping", {"type": "ping"})] * plan.reply.pings

    index = 0
    if plan.text or plan.reply.text is None:
        block = {"type": "text", "text": ""}
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )

        def delta(piece: str) -> tuple[str, Any]:
            payload = {"type": "text_delta", "text": piece}
            return (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": payload},
            )

        events += _text_events(plan, delta)
        events.append(
            ("content_block_stop", {"type": "content_block_stop", "index": 0})
        )
        index = 1
    else:
        events += _text_events(plan, lambda piece: ("unused", piece))

    for offset, tool in enumerate(_anthropic_tools(plan.reply)):
        position = index + offset
        arguments = json.dumps(tool["input"])
        events += [
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": position,
                    "content_block": {**tool, "input": {}},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": position,
                    "delta": {"type": "input_json_delta", "partial_json": arguments},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": position}),
        ]

    final_usage = {"output_tokens": plan.output_tokens if plan.reply.usage else 0}
    stop = {
        "stop_reason": finish_word(plan.reply.finish, "anthropic"),
        "stop_sequence": None,
    }
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": stop, "usage": final_usage},
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _text_events(plan: ReplyPlan, make: Any) -> list[tuple[str, Any]]:
    """Text chunks, with the scripted faults inserted after the n-th one."""
    reply = plan.reply
    events: list[tuple[str, Any]] = []
    for position in range(len(plan.chunks) + 1):
        if position == reply.malformed_after:
            events.append(("malformed", None))
        if position == reply.error_after:
            events.append(("error", reply.error_type or "overloaded_error"))
        if position == reply.truncate_after:
            events.append(("truncate", reply.clean_truncate))
        if position == reply.stall_after:
            events.append(("stall", reply.stall))
        if position < len(plan.chunks):
            events.append(make(plan.chunks[position]))
    return [event for event in events if event[0] != "unused"]


# --- bytes on the wire ------------------------------------------------------


def status_line(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Overloaded" if status == 529 else "Error"
    return f"HTTP/1.1 {status} {phrase}\r\n"


def encode_event(api: str, kind: str, payload: Any) -> bytes:
    if kind == "as_given":
        name, data = payload
        head = f"event: {name}\n" if name else ""
        return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
    if api == "openai":
        if kind == "done":
            return b"data: [DONE]\n\n"
        if kind == "malformed":
            return b'data: {"choices": [{"index": 0, "delta": {"content": "bro\n\n'
        if kind == "error":
            error = {
                "message": "The server had an error while processing your request.",
                "type": payload,
            }
            return f"data: {json.dumps({'error': error})}\n\n".encode()
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()
    if kind == "malformed":
        return b"event: content_block_delta\ndata: {not json at all\n\n"
    if kind == "error":
        error = {"type": "error", "error": {"type": payload, "message": "Overloaded"}}
        return f"event: error\ndata: {json.dumps(error)}\n\n".encode()
    return (
        f"event: {kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()
    )


async def write_chunk(
    writer: asyncio.StreamWriter, data: bytes, split_utf8: bool
) -> None:
    pieces = [data]
    if split_utf8:
        # Cut inside the first multi-byte character, so the client's decoder sees a
        # chunk boundary between its bytes.
        cut = next((i + 1 for i, byte in enumerate(data) if byte >= 0xC0), None)
        if cut is not None:
            pieces = [data[:cut], data[cut:]]
    for piece in pieces:
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
        if split_utf8:
            await asyncio.sleep(0.002)
