"""ClaudeModel through the real anthropic SDK against the fake Messages API."""

from __future__ import annotations

import pytest

from maquina_nb.errors import ProviderResponseError
from maquina_nb.providers import Completion, TextDelta, resolve_model
from maquina_nb.testing import FakeLLMServer, Reply

from .helpers import ask

KEY = "sk-ant-test-0123456789abcdef"


def claude(fake: FakeLLMServer, **overrides: object):
    return resolve_model(
        "anthropic:claude-sonnet-4-5",
        base_url=fake.anthropic_base_url,
        api_key=KEY,
        **overrides,
    )


async def collect(model, request) -> tuple[list[TextDelta], Completion]:
    deltas, final = [], None
    async for item in model.stream(request):
        if isinstance(item, Completion):
            final = item
        else:
            deltas.append(item)
    assert final is not None
    return deltas, final


async def test_generate_sends_system_separately_and_counts_cache_reads(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(
        Reply(text="Hi!", input_tokens=100, output_tokens=2, cached_tokens=900)
    )
    request = ask(
        "Say hi",
        system="Be brief.",
        temperature=0.5,
        stop=("END",),
        seed=3,
        max_tokens=64,
    )

    completion = await claude(fake).generate(request)

    sent = fake.requests[0]
    assert sent.body == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Say hi"}],
        "max_tokens": 64,
        "system": "Be brief.",
        "temperature": 0.5,
        "stop_sequences": ["END"],
    }
    assert sent.api_key == KEY
    assert sent.path == "/v1/messages"
    assert (
        completion.text,
        completion.finish_reason,
        completion.raw_finish_reason,
    ) == ("Hi!", "stop", "end_turn")
    # Whole prompt = uncached input + cache reads; cached = the reads.
    assert (
        completion.input_tokens,
        completion.cached_tokens,
        completion.output_tokens,
    ) == (1000, 900, 2)
    # claude-sonnet-4-5: $3 per M input, $0.30 per M cache read, $15 per M output.
    assert completion.cost_usd == pytest.approx((100 * 3 + 900 * 0.3 + 2 * 15) / 1e6)


async def test_max_tokens_defaults_when_not_given(fake: FakeLLMServer) -> None:
    await claude(fake).generate(ask())

    assert fake.requests[0].body["max_tokens"] == 4096


async def test_stream_reads_the_full_event_sequence(fake: FakeLLMServer) -> None:
    fake.enqueue(
        Reply(chunks=["Hel", "lo", " world"], pings=3, input_tokens=7, output_tokens=3)
    )

    deltas, completion = await collect(claude(fake), ask())

    assert [d.text for d in deltas] == ["Hel", "lo", " world"]
    assert completion.text == "Hello world"
    assert (completion.input_tokens, completion.output_tokens) == (7, 3)
    # The SDK drops the pings; start, block start, 3 deltas, block stop, delta, stop remain.
    assert completion.raw["events"] == 8


async def test_c16_max_tokens_stop_is_truncated_in_a_stream(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(Reply(text="The answer is", finish="length"))

    _, completion = await collect(claude(fake), ask(max_tokens=5))

    assert (completion.finish_reason, completion.raw_finish_reason) == (
        "length",
        "max_tokens",
    )
    assert completion.truncated


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_c17_empty_content_list(fake: FakeLLMServer, stream: bool) -> None:
    fake.enqueue(Reply(text=""))
    model = claude(fake)

    completion = (
        (await collect(model, ask()))[1] if stream else await model.generate(ask())
    )

    assert (
        completion.text,
        completion.finish_reason,
        completion.raw_finish_reason,
    ) == ("", "empty", "end_turn")
    assert completion.cost_usd is not None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_c17_tool_use_only(fake: FakeLLMServer, stream: bool) -> None:
    fake.enqueue(
        Reply(
            text="",
            finish="tool_calls",
            tool_calls=[{"name": "search", "arguments": {"q": "hi"}}],
        )
    )
    model = claude(fake)

    completion = (
        (await collect(model, ask()))[1] if stream else await model.generate(ask())
    )

    assert completion.text == ""
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == [
        {
            "id": "toolu_0",
            "type": "tool_use",
            "name": "search",
            "arguments": '{"q": "hi"}',
        }
    ]


async def test_refusal_is_content_filtered(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(text="", finish="refusal"))

    completion = await claude(fake).generate(ask())

    assert completion.finish_reason == "content_filter"


async def test_overloaded_event_inside_a_200_stream_is_retried(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(Reply(chunks=["half"], error_after=1), Reply(chunks=["full"]))

    deltas, completion = await collect(claude(fake, initial_backoff=0.01), ask())

    assert deltas == [TextDelta("half"), TextDelta("", reset=True), TextDelta("full")]
    assert completion.text == "full"
    assert [r.status for r in fake.requests] == [200, 200]


async def test_overloaded_stream_gives_up_after_max_attempts(
    fake: FakeLLMServer,
) -> None:
    fake.default_reply = Reply(error_after=0)

    with pytest.raises(
        ProviderResponseError, match=r"error inside its stream \(overloaded_error"
    ):
        await collect(claude(fake, max_attempts=3, initial_backoff=0.01), ask())

    assert len(fake.requests) == 3


async def test_529_overloaded_is_retried_then_answers(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply.server_error(529), Reply.server_error(500), Reply(text="fine"))

    completion = await claude(fake, initial_backoff=0.01).generate(ask())

    assert completion.text == "fine"
    assert [r.status for r in fake.requests] == [529, 500, 200]


async def test_malformed_event_is_skipped(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(chunks=["x", "y"], malformed_after=1, split_utf8=True))

    _, completion = await collect(claude(fake), ask())

    assert completion.text == "xy"
    assert len(completion.raw["skipped_chunks"]) == 1


async def test_anthropic_base_url_variable_is_honoured(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    completion = await resolve_model("claude").generate(ask("hey"))

    assert completion.text == "Fake answer: hey"
    assert fake.requests[0].model == "claude-sonnet-4-5"


async def test_cache_writes_are_priced_at_the_write_rate(fake: FakeLLMServer) -> None:
    fake.enqueue(
        Reply(text="ok", input_tokens=10, output_tokens=1, cache_write_tokens=1000)
    )

    completion = await claude(fake).generate(ask())

    assert completion.input_tokens == 1010
    # claude-sonnet-4-5: $3 per M input, $3.75 per M cache write, $15 per M output.
    assert completion.cost_usd == pytest.approx((10 * 3 + 1000 * 3.75 + 1 * 15) / 1e6)


async def test_c09_odd_but_valid_json_events_do_not_crash(fake: FakeLLMServer) -> None:
    fake.enqueue(
        Reply(
            events=[
                {"type": "message_start", "message": None},
                {"type": "content_block_start", "index": 0, "content_block": "x"},
                {"type": "content_block_delta", "index": 0, "delta": "oops"},
                {
                    "type": "content_block_delta",
                    "delta": {"type": "text_delta", "text": "Bon"},
                },
                {
                    "type": "content_block_delta",
                    "delta": {"type": "text_delta", "text": 5},
                },
                {"type": "content_block_delta", "delta": {"type": "input_json_delta"}},
                {
                    "type": "content_block_delta",
                    "delta": {"type": "text_delta", "text": "jour"},
                },
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": "many"},
                },
                {"type": "message_stop"},
            ]
        )
    )

    deltas, completion = await collect(claude(fake), ask())

    assert [d.text for d in deltas] == ["Bon", "jour"]
    assert (completion.text, completion.finish_reason) == ("Bonjour", "stop")
    assert completion.output_tokens is None
    assert completion.model_id == "claude-sonnet-4-5"


async def test_streamed_tool_use_arguments_are_joined(fake: FakeLLMServer) -> None:
    fake.enqueue(
        Reply(
            events=[
                {
                    "type": "message_start",
                    "message": {"model": "claude-x", "usage": {"input_tokens": 4}},
                },
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "t1",
                        "name": "lookup",
                        "input": {},
                    },
                },
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
                },
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '"x"}'},
                },
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use"},
                    "usage": {"output_tokens": 3},
                },
                ("message_stop", {"type": "message_stop"}),
            ]
        )
    )

    _, completion = await collect(claude(fake), ask())

    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == [
        {"id": "t1", "type": "tool_use", "name": "lookup", "arguments": '{"q": "x"}'}
    ]
    assert (completion.model_id, completion.input_tokens, completion.output_tokens) == (
        "claude-x",
        4,
        3,
    )


async def test_odd_but_valid_message_body_reads_what_it_can(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(
        Reply(
            body={
                "type": "message",
                "model": "claude-x",
                "content": [
                    None,
                    {"type": "text", "text": "ok"},
                    {"type": "text", "text": None},
                ],
                "stop_reason": "end_turn",
                "usage": "n/a",
            }
        )
    )

    completion = await claude(fake).generate(ask())

    assert (completion.text, completion.finish_reason) == ("ok", "stop")
    assert completion.input_tokens is None


async def test_a_server_error_says_what_failed_and_how_often(
    fake: FakeLLMServer,
) -> None:
    fake.default_reply = Reply.server_error(500)

    with pytest.raises(ProviderResponseError) as caught:
        await claude(fake, max_attempts=2, initial_backoff=0.01).generate(ask())

    message = str(caught.value)
    assert "HTTP 500 (api_error: Fake error with status 500)" in message
    assert "try again later" in message
    assert message.endswith("(failed 2 times).")
    assert "{" not in message


async def test_an_unknown_model_is_named_as_such(fake: FakeLLMServer) -> None:
    fake.enqueue(
        Reply(status=404, error_type="not_found_error"),
    )

    with pytest.raises(ProviderResponseError, match="check the model name") as caught:
        await claude(fake).generate(ask())

    assert "failed" not in str(caught.value)
    assert len(fake.requests) == 1
