"""Speed of the model layer against bare SDK calls, and the fake server's capacity.

Targets (issue 3):

- the model layer's own cost per call is at most 1.05x a bare SDK call against
  the same fake server at the same concurrency (plain and streamed, OpenAI and
  Anthropic). The bare call is ``AsyncOpenAI``/``AsyncAnthropic`` with
  ``max_retries=0``; ours adds limits, retries, error mapping, usage and cost,
  but reads the responses as JSON rather than building the SDK's typed objects.
  Two more rows, for information, compare the streamed layer with bare calls
  through the layer's own client class, so the rest of the layer shows alone;
- the fake server holds 500 requests in flight with latency within 20% of the
  configured delay.

The fake server runs in a separate process so that its work does not share the
benchmark's interpreter lock. Each round runs bare and layer back to back (order
alternating); the median per-round ratio is reported, both for this process's
CPU time (the layer's own cost, robust to other load on the machine) and for
wall time.

Run with ``python -m benchmarks.bench_providers`` (or ``python -m benchmarks``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

CONCURRENCY = 32
CALLS = 400
ROUNDS = 9
LATENCY = 0.02
CAPACITY_IN_FLIGHT = 500
CAPACITY_DELAY = 0.5

_SERVER = """
import sys, time
from maquina_nb.testing import FakeLLMServer, Reply
fake = FakeLLMServer().start()
fake.default_reply = Reply(text="The quick brown fox jumps over the lazy dog " * 4, latency=float(sys.argv[1]))
print(fake.port, flush=True)
sys.stdin.read()
"""


def start_server(latency: float) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, port


def stop_server(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


async def timed(
    call: Callable[[], Awaitable[Any]], calls: int, concurrency: int
) -> tuple[float, float]:
    """Return (wall seconds, this process's CPU seconds) for ``calls`` calls."""
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await call()

    gc.collect()  # start each side with the same heap, not the other side's garbage
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(calls)))
    return time.perf_counter() - started, time.process_time() - cpu


async def compare(port: int) -> dict[str, float]:
    import anthropic
    import openai

    from maquina_nb.providers import Message, ModelRequest, resolve_model

    base = f"http://127.0.0.1:{port}"
    messages = [{"role": "user", "content": "Say something"}]
    request = ModelRequest((Message("user", "Say something"),), max_tokens=64)
    bare_openai = openai.AsyncOpenAI(
        base_url=f"{base}/v1", api_key="sk-bench-key", max_retries=0
    )
    bare_claude = anthropic.AsyncAnthropic(
        base_url=base, api_key="sk-ant-bench-key", max_retries=0
    )
    gpt = resolve_model("openai:gpt-4o", base_url=f"{base}/v1", api_key="sk-bench-key")
    claude = resolve_model(
        "anthropic:claude-sonnet-4-5", base_url=base, api_key="sk-ant-bench-key"
    )

    async def bare_openai_plain() -> None:
        await bare_openai.chat.completions.create(
            model="gpt-4o", messages=messages, max_tokens=64
        )

    def openai_stream(client: Any) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            stream = await client.chat.completions.create(
                model="gpt-4o",
                messages=messages,
                max_tokens=64,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in stream:
                pass

        return call

    def claude_stream(client: Any) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            stream = await client.messages.create(
                model="claude-sonnet-4-5", messages=messages, max_tokens=64, stream=True
            )
            async for _ in stream:
                pass

        return call

    async def bare_claude_plain() -> None:
        await bare_claude.messages.create(
            model="claude-sonnet-4-5", messages=messages, max_tokens=64
        )

    async def drain(model: Any) -> None:
        # Read to the end, as the bare side does (the completion is the last item).
        async for _ in model.stream(request):
            pass

    # The layer reads the SDKs' JSON instead of their typed objects (see
    # maquina_nb/providers/_sdk_client.py), which is why it can cost less than
    # the bare SDK. Bare calls through that same client class show what the
    # rest of the layer (limits, retries, timeouts, readers, cost) costs alone.
    from maquina_nb.providers import (
        anthropic as anthropic_provider,
        openai as openai_provider,
    )

    lean_openai = openai_provider._client_class()(
        base_url=f"{base}/v1", api_key="sk-bench-key", max_retries=0
    )
    lean_claude = anthropic_provider._client_class()(
        base_url=base, api_key="sk-ant-bench-key", max_retries=0
    )

    pairs = {
        "openai plain": (bare_openai_plain, lambda: gpt.generate(request)),
        "openai stream": (openai_stream(bare_openai), lambda: drain(gpt)),
        "anthropic plain": (bare_claude_plain, lambda: claude.generate(request)),
        "anthropic stream": (claude_stream(bare_claude), lambda: drain(claude)),
        "openai stream, same client": (openai_stream(lean_openai), lambda: drain(gpt)),
        "anthropic stream, same client": (
            claude_stream(lean_claude),
            lambda: drain(claude),
        ),
    }
    targets = {name: "(target <= 1.05)" for name in list(pairs)[:4]}

    # Warm up both paths (imports, connections, genai-prices data).
    for bare, ours in pairs.values():
        await timed(bare, CONCURRENCY, CONCURRENCY)
        await timed(ours, CONCURRENCY, CONCURRENCY)

    ratios: dict[str, float] = {}
    for name, (bare, ours) in pairs.items():
        wall_ratios, cpu_ratios, bare_cpu = [], [], []
        for index in range(ROUNDS):
            # Back-to-back pairs, order alternating, so drifting machine load
            # hits both sides alike.
            if index % 2:
                ours_t = await timed(ours, CALLS, CONCURRENCY)
                bare_t = await timed(bare, CALLS, CONCURRENCY)
            else:
                bare_t = await timed(bare, CALLS, CONCURRENCY)
                ours_t = await timed(ours, CALLS, CONCURRENCY)
            wall_ratios.append(ours_t[0] / bare_t[0])
            cpu_ratios.append(ours_t[1] / bare_t[1])
            bare_cpu.append(bare_t[1])
        wall, cpu = statistics.median(wall_ratios), statistics.median(cpu_ratios)
        if name in targets:
            ratios[name] = cpu
        per_call = statistics.median(bare_cpu) * 1e3 / CALLS
        print(
            f"  {name:29s} bare {per_call:6.3f} ms CPU/call   layer/bare: "
            f"CPU {cpu:5.3f}  wall {wall:5.3f}  {targets.get(name, '(information)')}"
        )
    await bare_openai.close()
    await bare_claude.close()
    await lean_openai.close()
    await lean_claude.close()
    await gpt.aclose()
    await claude.aclose()
    return ratios


async def capacity(port: int, in_flight: int, delay: float) -> list[float]:
    payload = json.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    ).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n" % len(payload)
    )
    start_line = asyncio.Event()

    async def one() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await start_line.wait()
        started = time.perf_counter()
        writer.write(head + payload)
        await writer.drain()
        await reader.read()
        elapsed = time.perf_counter() - started
        writer.close()
        return elapsed

    tasks = [asyncio.create_task(one()) for _ in range(in_flight)]
    await asyncio.sleep(0.5)  # let every connection open first
    start_line.set()
    return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=120))


async def layer_only_cpu(calls: int = 5000) -> float:
    """CPU seconds per call of the layer's own code, with the SDK call left out.

    A subclass answers ``_generate_once`` at once, so what remains is what the
    layer adds around a call: key check, limiter slot, timeout, error mapping,
    retry bookkeeping and pricing.
    """
    from maquina_nb.providers import Completion, Message, ModelRequest
    from maquina_nb.providers.openai import OpenAIModel

    class _NoNetwork(OpenAIModel):
        def _make_client(self, api_key: str | None) -> Any:
            return None

        async def _generate_once(
            self, client: Any, request: ModelRequest
        ) -> Completion:
            return Completion(
                text="x" * 200,
                finish_reason="stop",
                model_id="gpt-4o",
                input_tokens=12,
                output_tokens=40,
                cached_tokens=0,
            )

    model = _NoNetwork("gpt-4o", api_key="sk-bench-key")
    request = ModelRequest((Message("user", "Say something"),), max_tokens=64)
    for _ in range(200):
        await model.generate(request)
    started = time.process_time()
    for _ in range(calls):
        await model.generate(request)
    return (time.process_time() - started) / calls


def main() -> None:
    print(
        f"model layer vs bare SDK ({CALLS} calls, {CONCURRENCY} in flight, fake latency {LATENCY * 1e3:.0f} ms):"
    )
    process, port = start_server(LATENCY)
    try:
        ratios = asyncio.run(compare(port))
    finally:
        stop_server(process)
    own = asyncio.run(layer_only_cpu())
    print(
        f"  layer code alone (SDK call left out): {own * 1e6:.1f} us CPU/call "
        "(compare with the bare SDK's CPU per call above)"
    )

    print(
        f"fake server capacity ({CAPACITY_IN_FLIGHT} in flight, configured delay {CAPACITY_DELAY}s):"
    )
    process, port = start_server(CAPACITY_DELAY)
    try:
        latencies = sorted(
            asyncio.run(capacity(port, CAPACITY_IN_FLIGHT, CAPACITY_DELAY))
        )
    finally:
        stop_server(process)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * len(latencies)) - 1]
    worst = latencies[-1]
    print(
        f"  latency / delay: p50 {p50 / CAPACITY_DELAY:5.3f}  p95 {p95 / CAPACITY_DELAY:5.3f}  "
        f"max {worst / CAPACITY_DELAY:5.3f}  (target max <= 1.20)"
    )
    worst_ratio = max(ratios.values())
    print(  # the CPU ratio is the layer's own cost; wall time also carries machine load
        f"worst layer/bare CPU ratio {worst_ratio:.3f}; capacity max/delay {worst / CAPACITY_DELAY:.3f}"
    )


if __name__ == "__main__":
    os.environ.setdefault("MAQUINA_NB_LOG", "")
    main()
