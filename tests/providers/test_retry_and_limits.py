"""Retry-After (C14), sliding-window limits (C36), in-flight caps, adaptive back-off."""

from __future__ import annotations

import asyncio
import email.utils

import pytest

from maquina_nb.errors import ProviderRateLimitError
from maquina_nb.providers import resolve_model
from maquina_nb.providers.ratelimit import RateLimiter
from maquina_nb.providers.retry import RetryPolicy, parse_retry_after
from maquina_nb.testing import FakeLLMServer, Reply

from .helpers import FakeClock, ask, wait_until

KEY = "sk-test-0123456789abcdef"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after": "3"}, 3.0, id="seconds"),
        pytest.param({"Retry-After": "0.5"}, 0.5, id="fraction"),
        pytest.param(
            {"retry-after": "Wed, 15 Nov 2023 22:13:23 GMT"}, 3.0, id="http-date"
        ),
        pytest.param(
            {"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="milliseconds-first"
        ),
        pytest.param(
            {"x-ratelimit-reset-requests": "6m0s"}, 360.0, id="openai-duration"
        ),
        pytest.param({"x-ratelimit-reset-tokens": "20ms"}, 0.02, id="openai-ms"),
        pytest.param(
            {"anthropic-ratelimit-requests-reset": "2023-11-15T22:13:30Z"},
            10.0,
            id="rfc3339",
        ),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = 1700086400.0  # 2023-11-15T22:13:20Z
    assert parse_retry_after(headers, now=now) == (
        pytest.approx(expected) if expected is not None else None
    )


def test_retry_policy_prefers_the_server_hint_and_caps_backoff() -> None:
    policy = RetryPolicy(
        max_attempts=5, initial_backoff=1.0, max_backoff=4.0, jitter=0.0
    )

    assert [policy.delay(n, None) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]
    assert policy.delay(1, 7.5) == 7.5
    assert policy.delay(5, 1.0) is None
    assert policy.delay(1, 10_000.0) is None


def _settle_for(fake: FakeLLMServer, *models) -> callable:
    async def settle() -> None:
        await wait_until(
            lambda: len(fake.requests) >= sum(m.limiter.granted for m in models)
        )

    return settle


@pytest.mark.parametrize("header", ["seconds", "http-date"])
async def test_c14_retry_after_pauses_the_model_queue_but_not_other_models(
    header: str,
) -> None:
    clock = FakeClock()
    with FakeLLMServer(clock=clock.monotonic) as fake:
        if header == "seconds":
            waits = ["3", "3"]
        else:  # absolute dates: the second 429 comes 3 s later and asks for 3 more
            waits = [
                email.utils.formatdate(clock.time() + t, usegmt=True) for t in (3, 6)
            ]
        fake.enqueue(*(Reply.rate_limited(w) for w in waits), model="m1")
        m1 = resolve_model(
            "openai:m1",
            base_url=fake.openai_base_url,
            api_key=KEY,
            max_in_flight=1,
            clock=clock,
        )
        m2 = resolve_model(
            "openai:m2", base_url=fake.openai_base_url, api_key=KEY, clock=clock
        )
        clock.settle = _settle_for(fake, m1, m2)

        answers = await asyncio.gather(
            *(m1.generate(ask(f"row {i}")) for i in range(10)),
            *(m2.generate(ask(f"other {i}")) for i in range(3)),
        )

        assert len(answers) == 13
        m1_log = [(r.time - 1000.0, r.status) for r in fake.requests_for(model="m1")]
        assert m1_log[:3] == [(0.0, 429), (3.0, 429), (6.0, 200)]
        assert all(t >= 6.0 and status == 200 for t, status in m1_log[3:])
        assert len(m1_log) == 12
        assert [r.time - 1000.0 for r in fake.requests_for(model="m2")] == [
            0.0,
            0.0,
            0.0,
        ]


async def test_c14_attempts_are_bounded_and_the_error_says_rate_limit(
    fake: FakeLLMServer,
) -> None:
    clock = FakeClock()
    fake.default_reply = Reply.rate_limited(2)
    model = resolve_model(
        "openai:m1",
        base_url=fake.openai_base_url,
        api_key=KEY,
        max_attempts=3,
        clock=clock,
    )

    with pytest.raises(ProviderRateLimitError) as caught:
        await model.generate(ask())

    assert str(caught.value) == (
        "The openai model 'm1' was still rate limited after 3 attempts; lower "
        "requests_per_minute in its settings or try again later."
    )
    assert caught.value.retry_after == 2.0
    assert len(fake.requests) == 3
    assert clock.sleeps[:2] == [2.0, 2.0]


async def test_c14_anthropic_429_honours_retry_after(fake: FakeLLMServer) -> None:
    clock = FakeClock()
    fake.enqueue(Reply.rate_limited(5), Reply(text="ok"))
    model = resolve_model(
        "anthropic:claude-haiku-4-5",
        base_url=fake.anthropic_base_url,
        api_key="sk-ant-abcdefgh",
        clock=clock,
    )

    completion = await model.generate(ask())

    assert completion.text == "ok"
    assert clock.sleeps[0] == 5.0


async def test_too_long_retry_after_fails_at_once(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply.rate_limited(3600))
    model = resolve_model(
        "openai:m1", base_url=fake.openai_base_url, api_key=KEY, max_retry_after=60
    )

    with pytest.raises(ProviderRateLimitError, match="asked to wait 3600s"):
        await model.generate(ask())

    assert len(fake.requests) == 1


async def test_c36_sliding_window_never_exceeds_the_rpm() -> None:
    clock = FakeClock()
    with FakeLLMServer(rpm_limit=10, clock=clock.monotonic) as fake:
        model = resolve_model(
            "openai:fake-openai",
            base_url=fake.openai_base_url,
            api_key=KEY,
            requests_per_minute=10,
            max_in_flight=4,
            clock=clock,
        )
        clock.settle = _settle_for(fake, model)

        await asyncio.gather(*(model.generate(ask(f"row {i}")) for i in range(25)))

        times = [r.time for r in fake.requests]
        assert len(times) == 25
        assert {r.status for r in fake.requests} == {200}
        assert max(sum(t <= u < t + 60 for u in times) for t in times) == 10
        assert clock.now - 1000.0 == 120.0  # 10 + 10 + 5: two windows and a bit
        assert fake.peak_in_flight <= 4


async def test_max_in_flight_is_enforced_separately(fake: FakeLLMServer) -> None:
    fake.default_reply = Reply(latency=0.3)
    model = resolve_model(
        "openai:m1", base_url=fake.openai_base_url, api_key=KEY, max_in_flight=3
    )

    await asyncio.gather(*(model.generate(ask()) for _ in range(9)))

    assert fake.peak_in_flight == 3


async def test_tokens_per_minute_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=100, clock=clock)

    for _ in range(3):
        async with limiter.slot(40):
            pass

    assert clock.now == 1060.0
    assert clock.sleeps == [60.0]


async def test_settled_usage_replaces_the_estimate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=100, clock=clock)

    async with limiter.slot(90) as grant:
        limiter.settle(grant, 10)
    async with limiter.slot(80):
        pass

    assert clock.now == 1000.0


async def test_adaptive_backoff_halves_in_flight_and_recovers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(max_in_flight=8, clock=clock)

    limiter.record_rate_limited(None)
    assert limiter._cap() == 4
    limiter.record_rate_limited(2.0)
    assert limiter._cap() == 2

    for _ in range(6):
        limiter.record_success()
    assert limiter._cap() == 8

    async with limiter.slot():
        pass
    assert clock.sleeps == [2.0]  # the Retry-After pause holds every caller


async def test_limits_are_shared_by_every_object_for_one_model(
    fake: FakeLLMServer,
) -> None:
    first = resolve_model(
        "openai:m1", base_url=fake.openai_base_url, api_key=KEY, requests_per_minute=5
    )
    second = resolve_model(
        "openai:m1",
        base_url=fake.openai_base_url,
        api_key=KEY,
        requests_per_minute=5,
        timeout=30,
    )
    other_server = resolve_model(
        "openai:m1", base_url=fake.base_url + "/other/v1", api_key=KEY
    )

    assert first is not second
    assert first.limiter is second.limiter
    assert first.limiter is not other_server.limiter
