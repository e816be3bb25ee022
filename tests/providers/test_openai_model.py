"""OpenAIModel and OpenAI-compatible servers through the real openai SDK."""

from __future__ import annotations

import pytest

from maquina_nb.errors import ProviderResponseError
from maquina_nb.providers import Completion, TextDelta, resolve_model
from maquina_nb.testing import FakeLLMServer, Reply

from .helpers import ask

KEY = "sk-test-0123456789abcdef"


def gpt(fake: FakeLLMServer, name: str = "gpt-4o", **overrides: object):
    return resolve_model(
        f"openai:{name}", base_url=fake.openai_base_url, api_key=KEY, **overrides
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


async def test_generate_sends_the_request_and_reads_the_answer(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(
        Reply(text="Hello there.", input_tokens=9, output_tokens=3, cached_tokens=4)
    )
    request = ask(
        "Say hi",
        system="Be brief.",
        temperature=0.0,
        max_tokens=16,
        top_p=0.9,
        stop=("\n",),
        seed=7,
        extra={"logit_bias": {"50256": -100}},
    )

    completion = await gpt(fake).generate(request)

    assert fake.requests[0].body == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ],
        "temperature": 0.0,
        "top_p": 0.9,
        "max_tokens": 16,
        "stop": ["\n"],
        "seed": 7,
        "logit_bias": {"50256": -100},
    }
    assert fake.requests[0].api_key == KEY
    assert (
        completion.text,
        completion.finish_reason,
        completion.raw_finish_reason,
    ) == ("Hello there.", "stop", "stop")
    assert (
        completion.input_tokens,
        completion.output_tokens,
        completion.cached_tokens,
    ) == (9, 3, 4)
    assert completion.model_id == "gpt-4o"
    assert completion.raw["id"].startswith("chatcmpl-")
    assert completion.latency_s is not None
    assert completion.latency_s > 0
    # gpt-4o: $2.50 per M input ($1.25 cached), $10 per M output.
    assert completion.cost_usd == pytest.approx((5 * 2.5 + 4 * 1.25 + 3 * 10) / 1e6)


async def test_reasoning_models_get_max_completion_tokens(fake: FakeLLMServer) -> None:
    await gpt(fake, "o3-mini").generate(ask(max_tokens=32))

    body = fake.requests[0].body
    assert body["max_completion_tokens"] == 32
    assert "max_tokens" not in body


async def test_stream_yields_deltas_then_usage_from_the_last_chunk(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(
        Reply(chunks=["One", " two", " three"], input_tokens=5, output_tokens=3)
    )

    deltas, completion = await collect(gpt(fake), ask())

    assert [d.text for d in deltas] == ["One", " two", " three"]
    assert completion.text == "One two three"
    assert (completion.input_tokens, completion.output_tokens) == (5, 3)
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}
    assert completion.ttft_s is not None
    assert completion.ttft_s <= completion.latency_s


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_c09_empty_choices_chunks_and_usage_only_chunk(
    fake: FakeLLMServer, stream: bool
) -> None:
    fake.enqueue(
        Reply(
            chunks=["Alpha ", "beta ", "gamma"],
            empty_choices=True,
            input_tokens=12,
            output_tokens=3,
        )
    )
    model = gpt(fake)

    if stream:
        _, completion = await collect(model, ask())
    else:
        completion = await model.generate(ask())

    assert completion.text == "Alpha beta gamma"
    assert (completion.input_tokens, completion.output_tokens) == (12, 3)


async def test_c09_malformed_chunk_is_skipped_not_fatal(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(chunks=["a", "b", "c"], malformed_after=1))

    _, completion = await collect(gpt(fake), ask())

    assert completion.text == "abc"
    assert len(completion.raw["skipped_chunks"]) == 1
    assert len(fake.requests) == 1


async def test_chunk_boundaries_inside_utf8_characters(fake: FakeLLMServer) -> None:
    text = "Grüße, 東京 🎉 ñandú"
    fake.enqueue(Reply(text=text, split_utf8=True))

    deltas, completion = await collect(gpt(fake), ask())

    assert completion.text == text
    assert "".join(d.text for d in deltas) == text


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_c16_length_finish_is_marked_truncated(
    fake: FakeLLMServer, stream: bool
) -> None:
    fake.enqueue(Reply(text="The answer is", finish="length"))
    model = gpt(fake)

    if stream:
        _, completion = await collect(model, ask(max_tokens=5))
    else:
        completion = await model.generate(ask(max_tokens=5))

    assert (completion.finish_reason, completion.raw_finish_reason) == (
        "length",
        "length",
    )
    assert completion.truncated
    assert completion.text == "The answer is"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("reply", "finish", "tool_calls"),
    [
        pytest.param(
            Reply(
                text="",
                finish="tool_calls",
                tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}],
            ),
            "tool_calls",
            [
                {
                    "id": "call_0",
                    "type": "function",
                    "name": "lookup",
                    "arguments": '{"q": "x"}',
                }
            ],
            id="tool-call-only",
        ),
        pytest.param(
            Reply(text="", finish="content_filter"),
            "content_filter",
            None,
            id="content-filter",
        ),
        pytest.param(Reply(text=""), "empty", None, id="empty"),
    ],
)
async def test_c17_empty_tool_call_and_filtered_answers(
    fake: FakeLLMServer,
    stream: bool,
    reply: Reply,
    finish: str,
    tool_calls: list | None,
) -> None:
    fake.enqueue(reply)
    model = gpt(fake)

    if stream:
        deltas, completion = await collect(model, ask())
        assert deltas == []
    else:
        completion = await model.generate(ask())

    assert completion.text == ""
    assert completion.finish_reason == finish
    assert completion.tool_calls == tool_calls
    assert completion.cost_usd is not None


async def test_c10_local_server_without_usage_records_unknown_tokens(
    fake: FakeLLMServer,
) -> None:
    fake.default_reply = Reply(text="Llama says hi", usage=False)
    model = resolve_model("ollama:llama3.1", base_url=fake.openai_base_url)

    _, completion = await collect(model, ask())

    assert completion.text == "Llama says hi"
    assert (completion.input_tokens, completion.output_tokens) == (None, None)
    assert completion.cost_is_estimate
    assert completion.cost_usd == 0.0


async def test_c10_unpriced_remote_without_usage_prices_an_estimate(
    fake: FakeLLMServer,
) -> None:
    fake.default_reply = Reply(text="four words right here", usage=False)

    _, completion = await collect(gpt(fake), ask("x" * 400))

    assert completion.input_tokens is None
    assert completion.cost_is_estimate
    assert completion.cost_usd == pytest.approx((100 * 2.5 + 6 * 10) / 1e6)


async def test_c10_strict_server_is_asked_again_without_stream_options_and_remembered() -> (
    None
):
    with FakeLLMServer(strict_stream_options=True) as strict:
        model = resolve_model(
            "openai-compatible:mistral", base_url=strict.openai_base_url
        )

        _, first = await collect(model, ask("one"))
        _, second = await collect(model, ask("two"))

        assert (first.text, second.text) == ("Fake answer: one", "Fake answer: two")
        assert [r.status for r in strict.requests] == [400, 200, 200]
        assert ["stream_options" in r.body for r in strict.requests] == [
            True,
            False,
            False,
        ]
        assert first.input_tokens is None


async def test_openai_compatible_needs_no_key_and_local_is_free(
    fake: FakeLLMServer,
) -> None:
    model = resolve_model("openai-compatible:qwen", base_url=fake.openai_base_url)

    completion = await model.generate(ask())

    assert fake.requests[0].api_key == "not-needed"
    assert completion.cost_usd == 0.0
    assert model.identity == {
        "provider": "openai-compatible",
        "model": "qwen",
        "base_url": fake.openai_base_url,
    }


async def test_ollama_spec_defaults_to_ollama_host(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{fake.port}")
    model = resolve_model("ollama:llama3.1")

    completion = await model.generate(ask("hello"))

    assert model.base_url == fake.openai_base_url
    assert completion.text == "Fake answer: hello"
    assert fake.requests[0].model == "llama3.1"


async def test_openai_base_url_variable_is_honoured(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    completion = await resolve_model("gpt-4o").generate(ask())

    assert completion.text == "Fake answer: Say hi"
    assert fake.requests[0].api_key == KEY


async def test_error_inside_a_200_stream_is_retried_with_a_reset(
    fake: FakeLLMServer,
) -> None:
    fake.enqueue(
        Reply(chunks=["par", "tial"], error_after=1, error_type="server_error"),
        Reply(text="whole"),
    )

    deltas, completion = await collect(gpt(fake, initial_backoff=0.01), ask())

    assert deltas == [TextDelta("par"), TextDelta("", reset=True), TextDelta("whole")]
    assert completion.text == "whole"
    assert len(fake.requests) == 2


async def test_truncated_stream_is_retried_then_reported(fake: FakeLLMServer) -> None:
    fake.default_reply = Reply(chunks=["a", "b"], truncate_after=1, clean_truncate=True)

    with pytest.raises(
        ProviderResponseError, match="stream ended before a finish reason"
    ):
        await collect(gpt(fake, max_attempts=2, initial_backoff=0.01), ask())

    assert len(fake.requests) == 2


async def test_dropped_connection_mid_stream_is_retried(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(chunks=["a", "b"], truncate_after=1), Reply(text="ok"))

    _, completion = await collect(gpt(fake, initial_backoff=0.01), ask())

    assert completion.text == "ok"
    assert len(fake.requests) == 2


async def test_bad_request_is_not_retried(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(status=400, error_type="invalid_request_error"))

    with pytest.raises(ProviderResponseError) as caught:
        await gpt(fake).generate(ask())

    assert caught.value.status_code == 400
    assert "invalid_request_error" in caught.value.body
    assert len(fake.requests) == 1
    assert caught.value.__cause__ is not None


def test_sync_callers_reuse_one_client_on_the_background_loop(
    fake: FakeLLMServer,
) -> None:
    from maquina_nb._loop import get_loop, run_sync

    model = gpt(fake)

    first = run_sync(model.generate(ask("one")), timeout=30)
    client = model._clients[get_loop()]
    second = run_sync(model.generate(ask("two")), timeout=30)

    assert (first.text, second.text) == ("Fake answer: one", "Fake answer: two")
    assert model._clients[get_loop()] is client
    run_sync(model.aclose(), timeout=30)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_cancelled_stream_closes_its_connection_and_frees_its_slot(
    fake: FakeLLMServer, provider: str
) -> None:
    import asyncio

    from .helpers import wait_until

    fake.default_reply = Reply(chunks=["tick "] * 50, chunk_delay=0.05)
    if provider == "openai":
        model = gpt(fake, max_in_flight=1)
    else:
        model = resolve_model(
            "anthropic:claude-haiku-4-5",
            base_url=fake.anthropic_base_url,
            api_key=KEY,
            max_in_flight=1,
        )
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in model.stream(ask()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await wait_until(lambda: fake.in_flight == 0)
    assert model.limiter._in_flight == 0
    fake.default_reply = Reply(text="done")
    follow_up = await model.generate(ask("again"))
    assert follow_up.text == "done"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "http://127.0.0.1:11434/v1"),
        ("127.0.0.1", "http://127.0.0.1:11434/v1"),
        ("127.0.0.1:9999", "http://127.0.0.1:9999/v1"),
        ("0.0.0.0:11434", "http://127.0.0.1:11434/v1"),
        ("http://localhost:8080", "http://localhost:8080/v1"),
        ("https://ollama.internal", "https://ollama.internal:11434/v1"),
    ],
)
def test_ollama_host_forms(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    from maquina_nb.providers.openai import ollama_base_url

    monkeypatch.setenv("OLLAMA_HOST", value)

    assert ollama_base_url() == expected


async def test_openai_compatible_sends_an_optional_key(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_KEY", "sk-vllm-0123456789")
    model = resolve_model(
        "openai-compatible:qwen", base_url=fake.openai_base_url, key_env="VLLM_KEY"
    )

    await model.generate(ask())

    assert fake.requests[0].api_key == "sk-vllm-0123456789"


def test_openai_compatible_without_base_url_says_what_to_set() -> None:
    from maquina_nb._loop import run_sync
    from maquina_nb.errors import ConfigurationError

    model = resolve_model("openai-compatible:qwen")

    with pytest.raises(ConfigurationError, match="needs a base URL; pass base_url="):
        run_sync(model.generate(ask()), timeout=30)


async def test_a_new_base_url_in_the_environment_gets_a_new_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as first, FakeLLMServer() as second:
        monkeypatch.setenv("OPENAI_BASE_URL", first.openai_base_url)
        model = resolve_model("gpt-4o")
        await model.generate(ask("one"))
        monkeypatch.setenv("OPENAI_BASE_URL", second.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY + "-rotated")
        await resolve_model("gpt-4o").generate(ask("two"))

        assert resolve_model("gpt-4o") is model
        assert [r.prompt for r in first.requests] == ["one"]
        assert [(r.prompt, r.api_key) for r in second.requests] == [
            ("two", KEY + "-rotated")
        ]
        assert model.identity["base_url"] == second.openai_base_url


async def test_c09_odd_but_valid_json_chunks_do_not_crash(fake: FakeLLMServer) -> None:
    # Valid JSON in shapes a proxy or a small local server may send: a null
    # choice, a delta that is not an object, content parts as a list, a second
    # choice, counts as strings. Only the text of choice 0 counts.
    fake.enqueue(
        Reply(
            events=[
                {"model": "local-7b", "choices": [None, "x"]},
                {"choices": [{"index": 0, "delta": "oops"}]},
                {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
                {"choices": [{"index": 1, "delta": {"content": "IGNORED"}}]},
                {"choices": [{"index": 0, "delta": {"content": ["not", "text"]}}]},
                {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
                {
                    "choices": [],
                    "usage": {"prompt_tokens": "7", "completion_tokens": 2},
                },
            ]
        )
    )

    deltas, completion = await collect(gpt(fake), ask())

    assert [d.text for d in deltas] == ["Hel", "lo"]
    assert completion.text == "Hello"
    assert completion.finish_reason == "stop"
    assert completion.model_id == "local-7b"
    assert (completion.input_tokens, completion.output_tokens) == (None, 2)


async def test_odd_but_valid_plain_body_reads_what_it_can(fake: FakeLLMServer) -> None:
    fake.enqueue(
        Reply(
            body={
                "model": "local-7b",
                "choices": [
                    {
                        "message": {
                            "content": [
                                {"type": "text", "text": "Hi "},
                                {"text": "there"},
                            ],
                            "tool_calls": [None, {"function": {"name": "f"}}],
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": None,
            }
        )
    )

    completion = await gpt(fake).generate(ask())

    assert completion.text == "Hi there"
    assert [call["name"] for call in completion.tool_calls] == [None, "f"]
    assert completion.input_tokens is None
    assert completion.raw["model"] == "local-7b"


async def test_a_body_with_no_choices_is_an_empty_answer(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(body={"choices": None, "model": "m"}))

    completion = await gpt(fake).generate(ask())

    assert (completion.text, completion.finish_reason) == ("", "empty")
