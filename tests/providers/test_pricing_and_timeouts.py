"""Cost from genai-prices with overrides; timeouts; parallel and failing providers."""

from __future__ import annotations

import asyncio
import logging
import socket

import pandas as pd
import pytest

from maquina_nb.errors import ProviderConnectionError, ProviderTimeoutError
from maquina_nb.providers import estimate_cost, resolve_model
from maquina_nb.providers.pricing import price_usage
from maquina_nb.providers.settings import ModelSettings
from maquina_nb.testing import FakeLLMServer, Reply

from .helpers import ask

KEY = "sk-test-0123456789abcdef"


def test_price_from_genai_prices() -> None:
    cost = price_usage(
        "openai", "gpt-4o", input_tokens=1000, output_tokens=100, cached_tokens=500
    )

    assert cost == pytest.approx((500 * 2.5 + 500 * 1.25 + 100 * 10) / 1e6)


def test_price_override_wins() -> None:
    settings = ModelSettings(
        input_price_per_mtok=1.0, output_price_per_mtok=2.0, cached_price_per_mtok=0.5
    )

    cost = price_usage(
        "openai",
        "gpt-4o",
        input_tokens=1000,
        output_tokens=100,
        cached_tokens=200,
        settings=settings,
    )

    assert cost == pytest.approx((800 * 1.0 + 200 * 0.5 + 100 * 2.0) / 1e6)


def test_unknown_model_costs_none_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    first = price_usage(
        "openai", "gpt-nonexistent-9", input_tokens=10, output_tokens=10
    )
    second = price_usage(
        "openai", "gpt-nonexistent-9", input_tokens=10, output_tokens=10
    )

    assert (first, second) == (None, None)
    warnings = [r for r in caplog.records if "gpt-nonexistent-9" in r.getMessage()]
    assert len(warnings) == 1


def test_local_models_are_free_unless_priced() -> None:
    assert resolve_model("ollama:llama3.1").price(100, 100, 0) == 0.0
    priced = resolve_model(
        "ollama:llama3.1", input_price_per_mtok=1.0, output_price_per_mtok=1.0
    )
    assert priced.price(1_000_000, 0, 0) == pytest.approx(1.0)
    assert (
        resolve_model(
            "openai-compatible:x", base_url="https://api.example.com/v1"
        ).price(10, 10, 0)
        is None
    )


def test_estimate_cost_uses_max_tokens_as_the_output_bound() -> None:
    model = resolve_model("gpt-4o")

    estimate = estimate_cost(model, ask("x" * 400, max_tokens=1000))

    assert estimate == pytest.approx((100 * 2.5 + 1000 * 10) / 1e6)
    assert estimate_cost(resolve_model("echo"), ask("hi")) == 0.0


async def test_first_token_timeout_is_not_retried(fake: FakeLLMServer) -> None:
    fake.default_reply = Reply(latency=1.0)
    model = resolve_model(
        "openai:gpt-4o",
        base_url=fake.openai_base_url,
        api_key=KEY,
        first_token_timeout=0.1,
    )

    with pytest.raises(
        ProviderTimeoutError, match=r"took longer than 0\.1s for the first token"
    ):
        async for _ in model.stream(ask()):
            pass

    assert len(fake.requests) == 1


@pytest.mark.parametrize("spec", ["openai:gpt-4o", "anthropic:claude-haiku-4-5"])
async def test_first_token_bound_covers_events_before_the_first_text(
    fake: FakeLLMServer, spec: str
) -> None:
    # Headers, the role chunk or message_start come at once; the text does not.
    fake.default_reply = Reply(chunks=["late", "text"], chunk_delay=1.0, pings=0)
    base_url = (
        fake.openai_base_url if spec.startswith("openai") else fake.anthropic_base_url
    )
    model = resolve_model(spec, base_url=base_url, api_key=KEY, first_token_timeout=0.2)

    with pytest.raises(ProviderTimeoutError, match=r"0\.2s for the first token"):
        async for _ in model.stream(ask()):
            pass

    assert len(fake.requests) == 1
    for _ in range(100):  # the response was closed, so the fake sees the hang-up
        if fake.open_connections == 0:
            break
        await asyncio.sleep(0.02)
    assert fake.open_connections == 0
    await model.aclose()


async def test_total_timeout_for_a_plain_call(fake: FakeLLMServer) -> None:
    fake.default_reply = Reply(latency=1.0)
    model = resolve_model(
        "anthropic:claude-haiku-4-5",
        base_url=fake.anthropic_base_url,
        api_key=KEY,
        timeout=0.1,
    )

    with pytest.raises(
        ProviderTimeoutError, match=r"took longer than 0\.1s for the whole call"
    ):
        await model.generate(ask())


async def test_slow_stream_hits_the_total_deadline(fake: FakeLLMServer) -> None:
    fake.default_reply = Reply(chunks=["a", "b", "c", "d"], chunk_delay=0.1)
    model = resolve_model(
        "openai:gpt-4o", base_url=fake.openai_base_url, api_key=KEY, timeout=0.15
    )

    with pytest.raises(ProviderTimeoutError, match="for the whole call"):
        async for _ in model.stream(ask()):
            pass


async def test_read_timeout_maps_to_timeout_error(fake: FakeLLMServer) -> None:
    fake.default_reply = Reply(latency=1.0)
    model = resolve_model(
        "openai:gpt-4o", base_url=fake.openai_base_url, api_key=KEY, read_timeout=0.1
    )

    with pytest.raises(ProviderTimeoutError, match="did not answer in time"):
        await model.generate(ask())

    assert len(fake.requests) == 1


async def test_parallel_calls_to_two_providers_while_a_third_is_down(
    fake: FakeLLMServer,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    fake.default_reply = Reply(latency=0.05)
    gpt = resolve_model("openai:gpt-4o", base_url=fake.openai_base_url, api_key=KEY)
    claude = resolve_model(
        "anthropic:claude-haiku-4-5", base_url=fake.anthropic_base_url, api_key=KEY
    )
    down = resolve_model(
        "ollama:llama3.1",
        base_url=f"http://127.0.0.1:{dead_port}/v1",
        max_attempts=2,
        initial_backoff=0.01,
    )

    results = await asyncio.gather(
        *(gpt.generate(ask(f"g{i}")) for i in range(5)),
        *(claude.generate(ask(f"c{i}")) for i in range(5)),
        down.generate(ask("d")),
        return_exceptions=True,
    )

    assert [r.text for r in results[:10]] == [
        f"Fake answer: g{i}" for i in range(5)
    ] + [f"Fake answer: c{i}" for i in range(5)]
    assert isinstance(results[10], ProviderConnectionError)
    assert f"127.0.0.1:{dead_port}" in str(results[10])
    assert fake.peak_in_flight >= 2


def test_list_models_shows_limits_key_status_and_unit_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from maquina_nb.providers import configure_model, list_models

    monkeypatch.setenv("OPENAI_API_KEY", "sk-listing-0123456789")
    configure_model(
        "house",
        spec="openai-compatible:x",
        base_url="https://api.example.com/v1",
        requests_per_minute=7,
    )

    frame = list_models(["gpt-4o", "claude", "llama", "echo", "house"]).set_index(
        "name"
    )

    assert frame.loc[
        "gpt-4o",
        ["key_source", "key_status", "input_usd_per_mtok", "output_usd_per_mtok"],
    ].tolist() == ["OPENAI_API_KEY", "ok", 2.5, 10.0]
    assert frame.loc["claude", ["key_status", "input_usd_per_mtok"]].tolist() == [
        "missing",
        3.0,
    ]
    assert frame.loc["llama", "input_usd_per_mtok"] == 0.0
    assert frame.loc["house", "requests_per_minute"] == 7
    assert pd.isna(frame.loc["house", "input_usd_per_mtok"])
    assert "0123456789" not in frame.to_string()


_PRICED = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-3.5-turbo"),
    ("openai", "gpt-4"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
]
_USAGES = [
    (10, 5, 0, 0),
    (1000, 100, 600, 0),
    (1000, 100, 0, 300),
    (250_000, 1000, 50_000, 10_000),
]


@pytest.mark.parametrize(
    ("provider", "model", "tokens_in", "tokens_out", "read", "written"),
    [
        (provider, model, *usage)
        for provider, model in _PRICED
        for usage in _USAGES
        # OpenAI reports no cache writes.
        if not (provider == "openai" and usage[3])
    ],
)
def test_fast_pricing_matches_genai_prices(
    provider: str, model: str, tokens_in: int, tokens_out: int, read: int, written: int
) -> None:
    from genai_prices import Usage, calc_price

    usage = Usage(
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cache_read_tokens=read or None,
        cache_write_tokens=written or None,
    )
    expected = float(calc_price(usage, model, provider_id=provider).total_price)

    ours = price_usage(
        provider,
        model,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cached_tokens=read,
        cache_write_tokens=written,
    )

    assert ours == pytest.approx(expected, rel=1e-9)
