"""Answers that are valid HTTP but wrong in shape or intent, through the real SDKs.

Each case here was found by trying to break the model layer: a far-off
Retry-After, fields of the wrong type, an error object sent with HTTP 200, a key
echoed into the SDK's own exception, a stall after the first token, a 4xx whose
body names a transient type, and a stream cut after it had started.
"""

from __future__ import annotations

from typing import Any

import pytest

from maquina_nb.errors import (
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from maquina_nb.providers import Completion, resolve_model
from maquina_nb.testing import FakeLLMServer, Reply

from .helpers import ask

PROVIDERS = ["openai", "anthropic"]
SPECS = {"openai": "openai:gpt-4o", "anthropic": "anthropic:claude-haiku-4-5"}


def model(fake: FakeLLMServer, provider: str, **settings: Any) -> Any:
    base_url = fake.openai_base_url if provider == "openai" else fake.anthropic_base_url
    key = "sk-test-" + "0123456789abcdef"
    return resolve_model(
        SPECS[provider],
        base_url=base_url,
        api_key=key,
        initial_backoff=0.01,
        **settings,
    )


async def answer(model: Any, stream: bool) -> Completion:
    if not stream:
        return await model.generate(ask())  # type: ignore[no-any-return]
    final = None
    async for item in model.stream(ask()):
        if isinstance(item, Completion):
            final = item
    assert final is not None
    return final


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_far_off_retry_after_fails_later_calls_at_once(
    fake: FakeLLMServer, provider: str, stream: bool
) -> None:
    fake.enqueue(Reply.rate_limited(retry_after=1000))
    subject = model(fake, provider)

    with pytest.raises(ProviderRateLimitError, match="max_retry_after"):
        await answer(subject, stream)
    with pytest.raises(ProviderRateLimitError, match=r"left alone for \d+s more"):
        await answer(subject, stream)

    assert len(fake.requests) == 1


def _odd_fields(provider: str, stream: bool) -> Reply:
    usage = {"prompt_tokens": -5, "completion_tokens": 2}
    if provider == "openai" and stream:
        return Reply(
            events=[
                {"model": 7, "choices": [{"index": 0, "delta": {"content": "x"}}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": ["stop"]}]},
                {"choices": [], "usage": usage},
            ]
        )
    if provider == "openai":
        choice = {"message": {"content": "x"}, "finish_reason": {"a": 1}}
        return Reply(body={"model": 7, "choices": [choice], "usage": usage})
    anthropic_usage = {"input_tokens": -5, "output_tokens": 2}
    if stream:
        return Reply(
            events=[
                {
                    "type": "message_start",
                    "message": {"model": [7], "usage": anthropic_usage},
                },
                {
                    "type": "content_block_delta",
                    "delta": {"type": "text_delta", "text": "x"},
                },
                {"type": "message_delta", "delta": {"stop_reason": ["end_turn"]}},
                {"type": "message_stop"},
            ]
        )
    return Reply(
        body={
            "model": {"id": 7},
            "content": "x",
            "stop_reason": ["end_turn"],
            "usage": anthropic_usage,
        }
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_fields_of_the_wrong_type_read_as_missing(
    fake: FakeLLMServer, provider: str, stream: bool
) -> None:
    fake.enqueue(_odd_fields(provider, stream))

    completion = await answer(model(fake, provider), stream)

    assert completion.text == "x"
    assert completion.finish_reason == "stop"
    assert completion.model_id == SPECS[provider].split(":")[1]
    assert completion.input_tokens is None
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("openai", {"error": {"type": "server_error", "message": "upstream died"}}),
        (
            "anthropic",
            {
                "type": "error",
                "error": {"type": "api_error", "message": "upstream died"},
            },
        ),
    ],
)
async def test_an_error_object_sent_with_http_200_is_an_error(
    fake: FakeLLMServer, provider: str, body: dict[str, Any]
) -> None:
    fake.default_reply = Reply(body=body)

    with pytest.raises(ProviderResponseError, match="HTTP 200 with an error") as caught:
        await model(fake, provider, max_attempts=2).generate(ask())

    assert "upstream died" in str(caught.value)
    assert len(fake.requests) == 2  # retried: the provider failed on its side


async def test_a_body_that_is_no_json_object_is_refused_once(
    fake: FakeLLMServer,
) -> None:
    fake.default_reply = Reply(body=[1, 2, 3])

    with pytest.raises(ProviderResponseError, match="not an object"):
        await model(fake, "openai").generate(ask())

    assert len(fake.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_key_echoed_by_the_server_is_gone_from_the_sdk_exception(
    fake: FakeLLMServer, provider: str
) -> None:
    fake.enqueue(Reply(status=401, echo_key=True))
    subject = model(fake, provider)
    key = subject.settings.api_key

    with pytest.raises(ProviderAuthError) as caught:
        await subject.generate(ask())

    cause = caught.value.__cause__
    assert cause is not None
    texts = [str(cause), repr(cause), cause.response.text, str(cause.body)]
    texts.append(str(getattr(cause, "api_message", "")))
    assert [text for text in texts if key in text] == []
    assert fake.requests[0].api_key == key  # the fake did echo it


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stall_after_the_first_token_ends_at_the_total_deadline(
    fake: FakeLLMServer, provider: str
) -> None:
    # The read timeout (120 s by default) is far longer than the whole call's.
    fake.enqueue(Reply(chunks=["a", "b"], stall_after=1, stall=5.0))
    subject = model(fake, provider, timeout=0.5, first_token_timeout=None)
    seen: list[str] = []

    async def read() -> None:
        async for item in subject.stream(ask()):
            seen.append(getattr(item, "text", ""))

    with pytest.raises(ProviderTimeoutError, match=r"longer than 0\.5s for the whole"):
        await read()

    assert seen == ["a"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_4xx_is_not_retried_whatever_type_its_body_names(
    fake: FakeLLMServer, provider: str
) -> None:
    fake.default_reply = Reply(status=400, error_type="api_error")

    with pytest.raises(ProviderResponseError, match="HTTP 400"):
        await model(fake, provider).generate(ask())

    assert len(fake.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_stream_cut_every_time_says_it_was_cut_not_unreachable(
    fake: FakeLLMServer, provider: str
) -> None:
    fake.default_reply = Reply(chunks=["a", "b", "c"], truncate_after=2)

    with pytest.raises(ProviderResponseError, match="connection was cut") as caught:
        await answer(model(fake, provider, max_attempts=2), stream=True)

    assert "Could not reach" not in str(caught.value)
    assert str(caught.value).endswith("(failed 2 times).")
    assert len(fake.requests) == 2


async def test_a_scripted_error_event_reaches_the_sdk_as_given(
    fake: FakeLLMServer,
) -> None:
    overloaded = {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    fake.enqueue(
        Reply(
            events=[
                {"type": "message_start", "message": {"model": "m", "usage": {}}},
                {
                    "type": "content_block_delta",
                    "delta": {"type": "text_delta", "text": "half"},
                },
                ("error", overloaded),
            ]
        ),
        Reply(text="whole"),
    )
    items = []

    async for item in model(fake, "anthropic").stream(ask()):
        items.append(item)

    texts = [(getattr(i, "text", None), getattr(i, "reset", None)) for i in items]
    assert texts[:3] == [("half", False), ("", True), ("whole", False)]
    assert items[-1].text == "whole"
