"""Orchestrator speed: orchestrate() against the raw SDKs, throughput, cache rerun.

Workload (issue 4): 200 items x 2 models (gpt-4o through ``openai``, Claude
through ``anthropic``) against ``FakeLLMServer`` answering after 200 ms.

1. ``orchestrate()`` with SQLite persistence vs raw ``AsyncOpenAI`` /
   ``AsyncAnthropic`` calls under ``asyncio.gather`` with the same concurrency
   cap, plain and streaming (targets: at most 1.10x and 1.15x). Best of
   ``--repeat`` runs each, interleaved, so both see the same machine load.
   The fake server runs in its own process, as a real server would.
2. 10,000 calls to the instant in-process ``echo`` model, end to end with
   persistence (target: at least 2,000 responses/s).
3. The 400-call run again, fully from the cache (target: under 0.3 s, and no
   request reaches the server).

    python -m benchmarks.bench_orchestrator
    python -m benchmarks.bench_orchestrator --repeat 1 --items 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

_LATENCY_S = 0.2
_OPENAI_KEY = "sk-bench-openai-0000"
_ANTHROPIC_KEY = "sk-ant-bench-0000"


async def _raw_gather(
    fake: Any, prompts: list[str], concurrency: int, stream: bool
) -> float:
    """Time the same calls made directly with the SDKs (clients made inside)."""
    import anthropic
    import openai

    oai = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key=_OPENAI_KEY)
    ant = anthropic.AsyncAnthropic(
        base_url=fake.anthropic_base_url, api_key=_ANTHROPIC_KEY
    )
    gate = asyncio.Semaphore(concurrency)
    messages = [[{"role": "user", "content": p}] for p in prompts]

    async def ask_openai(msgs: list[dict[str, str]]) -> str:
        async with gate:
            if not stream:
                reply = await oai.chat.completions.create(model="gpt-4o", messages=msgs)  # type: ignore[arg-type]
                return reply.choices[0].message.content or ""
            parts = []
            chunks = await oai.chat.completions.create(
                model="gpt-4o",
                messages=msgs,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
            return "".join(parts)

    async def ask_anthropic(msgs: list[dict[str, str]]) -> str:
        async with gate:
            if not stream:
                reply = await ant.messages.create(
                    model="claude-sonnet-4-5",
                    max_tokens=1024,
                    messages=msgs,  # type: ignore[arg-type]
                )
                return "".join(b.text for b in reply.content if b.type == "text")
            # The lighter raw event stream, not the accumulating helper: the
            # stricter baseline.
            parts = []
            events = await ant.messages.create(
                model="claude-sonnet-4-5",
                max_tokens=1024,
                messages=msgs,  # type: ignore[arg-type]
                stream=True,
            )
            async for event in events:
                if (
                    event.type == "content_block_delta"
                    and event.delta.type == "text_delta"
                ):
                    parts.append(event.delta.text)
            return "".join(parts)

    started = time.perf_counter()
    calls = []
    for msgs in messages:
        calls.append(ask_openai(msgs))
        calls.append(ask_anthropic(msgs))
    answers = await asyncio.gather(*calls)
    elapsed = time.perf_counter() - started
    assert all(answers), "a raw call came back empty"
    await oai.close()
    await ant.close()
    return elapsed


def _orchestrated(
    models: list[Any], prompts: list[str], db: str, concurrency: int, stream: bool
) -> float:
    from maquina_nb.orchestrator import orchestrate

    started = time.perf_counter()
    run = orchestrate(
        prompts, models, db=db, cache=False, concurrency=concurrency, stream=stream
    )
    elapsed = time.perf_counter() - started
    assert run.status == "complete", run
    return elapsed


def _throughput(db: str, count: int) -> float:
    from maquina_nb.orchestrator import orchestrate

    prompts = [f"instant {i}" for i in range(count)]
    started = time.perf_counter()
    run = orchestrate(prompts, ["echo"], db=db, cache=False)
    elapsed = time.perf_counter() - started
    assert run.status == "complete"
    assert len(run.responses) == count
    return count / elapsed


_SERVER_SCRIPT = """
import sys
from maquina_nb.testing import FakeLLMServer, Reply
with FakeLLMServer() as fake:
    fake.default_reply = Reply(latency=float(sys.argv[1]))
    print(fake.port, flush=True)
    for line in sys.stdin:
        print(len(fake.requests_for()), flush=True)
"""


class _ServerProcess:
    """A FakeLLMServer in its own process, so it does not share our GIL.

    Writing a line to its stdin makes it print how many chat requests it got.
    """

    def __init__(self, latency: float) -> None:
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER_SCRIPT, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{port}"
        self.openai_base_url = f"{self.base_url}/v1"
        self.anthropic_base_url = self.base_url

    def requests(self) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="default: config.DEFAULT_CONCURRENCY",
    )
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--instant", type=int, default=10_000)
    args = parser.parse_args(argv)

    os.environ["MAQUINA_NB_PROGRESS"] = "0"
    from maquina_nb import config
    from maquina_nb.db import Repository
    from maquina_nb.providers import resolve_model

    concurrency = args.concurrency or config.DEFAULT_CONCURRENCY
    prompts = [f"Question number {i}: what is {i} + {i}?" for i in range(args.items)]
    calls = 2 * len(prompts)
    results: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="bench-orch-"))

    fake = _ServerProcess(_LATENCY_S)
    try:
        models = [
            resolve_model(
                "openai:gpt-4o", base_url=fake.openai_base_url, api_key=_OPENAI_KEY
            ),
            resolve_model(
                "anthropic:claude-sonnet-4-5",
                base_url=fake.anthropic_base_url,
                api_key=_ANTHROPIC_KEY,
            ),
        ]

        # Warm up both paths (SDK imports, connection pools, the schema).
        asyncio.run(_raw_gather(fake, prompts[:4], concurrency, stream=False))
        _orchestrated(
            models,
            prompts[:4],
            f"sqlite:///{workdir / 'warm.db'}",
            concurrency,
            stream=False,
        )

        for stream in (False, True):
            label = "stream" if stream else "plain"
            raw_times, ours = [], []
            for attempt in range(args.repeat):
                raw_times.append(
                    asyncio.run(_raw_gather(fake, prompts, concurrency, stream))
                )
                db = f"sqlite:///{workdir / f'{label}-{attempt}.db'}"
                # Creating the schema is a one-off per database, not per run.
                Repository.from_url(db)
                ours.append(_orchestrated(models, prompts, db, concurrency, stream))
            raw, mine = min(raw_times), min(ours)
            results[f"{label}_raw_s"] = raw
            results[f"{label}_orchestrate_s"] = mine
            results[f"{label}_ratio"] = mine / raw
            # Each attempt pairs one raw and one orchestrated run back to back;
            # the median of those ratios shrugs off load that drifts between runs.
            paired = statistics.median(
                o / r for o, r in zip(ours, raw_times, strict=True)
            )
            results[f"{label}_paired_median_ratio"] = paired
            target = 1.15 if stream else 1.10
            print(
                f"{calls} calls, {label:6s} concurrency {concurrency}: raw gather {raw:.3f} s, "
                f"orchestrate()+SQLite {mine:.3f} s -> {mine / raw:.3f}x best/best, "
                f"{paired:.3f}x median of pairs (target <= {target}x)"
            )

        # The plain run again, answered entirely from the cache.
        from maquina_nb.orchestrator import orchestrate

        db = f"sqlite:///{workdir / 'plain-0.db'}"
        before = fake.requests()
        rerun_times = []
        for _ in range(3):
            started = time.perf_counter()
            rerun = orchestrate(prompts, models, db=db, concurrency=concurrency)
            rerun_times.append(time.perf_counter() - started)
            assert {r.status for r in rerun.responses} == {"cached"}, rerun
        reached = fake.requests() - before
        results["cache_rerun_s"] = min(rerun_times)
        results["cache_rerun_requests"] = reached
        print(
            f"{calls}-call rerun from cache: best {min(rerun_times):.3f} s of "
            f"{', '.join(f'{t:.3f}' for t in rerun_times)}; {reached} requests reached "
            "the server (target < 0.3 s, 0 requests)"
        )
    finally:
        fake.close()

    rate = _throughput(f"sqlite:///{workdir / 'instant.db'}", args.instant)
    results["instant_responses_per_s"] = rate
    print(
        f"{args.instant} calls to the instant echo model: {rate:,.0f} responses/s end to end (target >= 2,000)"
    )
    return results


if __name__ == "__main__":
    main()
