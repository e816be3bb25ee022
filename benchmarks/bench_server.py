"""Load run of `maquina-nb serve`: many concurrent readers while a run streams.

One server process (uvicorn on 127.0.0.1) serves the maquina_nb app and, under
``/bare``, a bare FastAPI app whose endpoints read the same database with plain
SQLAlchemy and return plain dicts: no auth, no Host check, no body limit, no
pydantic response models. A separate load process runs N concurrent readers;
each reader alternates between the two apps, so both are measured under the
same load at the same time. Meanwhile one live run after another is started
through ``POST /api/runs`` (a FakeLLMServer model streaming word by word) and
watched over the WebSocket.

Reported: requests, errors, p50/p99 latency per app and their ratio.

    python -m benchmarks.bench_server               # 30 s, 200 readers
    python -m benchmarks.bench_server --duration 5 --readers 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_FAKE_TEXT = " ".join(f"word{i}" for i in range(40))


# --- the server process ---------------------------------------------------------


def _seed(repo: Any, runs: int) -> list[str]:
    ids = []
    for index in range(runs):
        run_id = repo.add_run(
            name=f"bench-{index}",
            template="Question {{ n }}?",
            system_prompt=None,
            models=["openai:gpt-4o", "anthropic:claude-sonnet-4-5"],
            parameters={},
            tags=["bench"],
            item_count=5,
            samples=1,
            status="complete",
        )
        repo.add_responses(
            [
                {
                    "run_id": run_id,
                    "item_index": item,
                    "sample_index": 0,
                    "model_spec": model,
                    "provider": model.split(":")[0],
                    "model_id": model.split(":")[1],
                    "request_parameters": {},
                    "messages": [{"role": "user", "content": f"Question {item}?"}],
                    "variables": {"n": item},
                    "text": _FAKE_TEXT,
                    "status": "done",
                    "finish_reason": "stop",
                    "input_tokens": 12,
                    "output_tokens": 40,
                    "cost_usd": 0.0004,
                    "latency_s": 0.3,
                }
                for item in range(5)
                for model in ("openai:gpt-4o", "anthropic:claude-sonnet-4-5")
            ]
        )
        ids.append(run_id)
    return ids


def _bare_app(engine: Any) -> Any:
    from fastapi import FastAPI
    from sqlalchemy import select

    from maquina_nb.db import ModelResponse, OrchestrationContext

    bare = FastAPI(openapi_url=None)

    @bare.get("/runs")
    def runs(limit: int = 50) -> dict[str, Any]:
        table = OrchestrationContext.__table__
        query = select(table).order_by(table.c.created_at.desc(), table.c.id.desc())
        with engine.connect() as connection:
            rows = connection.execute(query.limit(limit)).mappings().all()
        return {"runs": [dict(row) for row in rows]}

    @bare.get("/runs/{run_id}/responses")
    def responses(run_id: str, limit: int = 100) -> dict[str, Any]:
        table = ModelResponse.__table__
        query = (
            select(table)
            .where(table.c.run_id == run_id)
            .order_by(table.c.item_index, table.c.id)
            .limit(limit)
        )
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return {"responses": [dict(row) for row in rows]}

    return bare


def _serve(db_url: str, seed_runs: int, max_life_s: float) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from maquina_nb.db import Repository
    from maquina_nb.providers.settings import configure_model
    from maquina_nb.server import create_app
    from maquina_nb.server._uvicorn import serve_in_thread
    from maquina_nb.testing import FakeLLMServer, Reply

    repo = Repository.from_url(db_url)
    run_ids = _seed(repo, seed_runs)

    with FakeLLMServer() as fake:
        # About 4 s per answer, so each run is still streaming when watched.
        fake.default_reply = Reply(text=_FAKE_TEXT, chunk_delay=0.1, latency=0.05)
        configure_model(
            "bench-gpt",
            spec="openai:gpt-4o",
            base_url=fake.openai_base_url,
            api_key="sk-bench-not-a-real-key-00",
        )
        app = create_app(repo)
        both = Starlette(
            routes=[Mount("/bare", app=_bare_app(repo.engine)), Mount("/", app=app)],
            lifespan=lambda _: app.router.lifespan_context(app),
        )
        with serve_in_thread(
            both, log_level="error", backlog=4096, timeout_keep_alive=30
        ) as base:
            sys.stdout.write(json.dumps({"base": base, "run_ids": run_ids}) + "\n")
            sys.stdout.flush()
            # Serve until the load process closes our stdin (or a hard limit).
            deadline = time.monotonic() + max_life_s
            while time.monotonic() < deadline:
                if not sys.stdin.readline():
                    break


# --- the load process -------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _readers(
    base: str, run_ids: list[str], readers: int, duration: float
) -> dict[str, Any]:
    import httpx

    latencies: dict[str, list[float]] = {"maquina": [], "bare": []}
    errors: list[str] = []
    stop = time.monotonic() + duration
    limits = httpx.Limits(max_connections=readers, max_keepalive_connections=readers)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def one_reader(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < stop:
                run_id = rng.choice(run_ids)
                pick = rng.random() < 0.5
                # Both apps, in a random order (the second of a pair waits less
                # for a connection, which would favour whichever always went second).
                order = (
                    ("maquina", "bare") if rng.random() < 0.5 else ("bare", "maquina")
                )
                for kind in order:
                    if pick:
                        path = (
                            "/api/runs?limit=50"
                            if kind == "maquina"
                            else "/bare/runs?limit=50"
                        )
                    else:
                        path = (
                            f"/api/runs/{run_id}/responses?limit=100"
                            if kind == "maquina"
                            else f"/bare/runs/{run_id}/responses?limit=100"
                        )
                    started = time.perf_counter()
                    try:
                        answer = await http.get(path)
                        ok = answer.status_code == 200
                    except httpx.HTTPError as exc:
                        ok, answer = False, exc
                    latencies[kind].append(time.perf_counter() - started)
                    if not ok:
                        errors.append(f"{kind} {path}: {answer!r}")

        await asyncio.gather(*(one_reader(i) for i in range(readers)))
    return {"latencies": latencies, "errors": errors}


async def _live_runs(base: str, duration: float, items: int) -> dict[str, Any]:
    import httpx
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    stop = time.monotonic() + duration
    runs, events, deltas, failures = 0, 0, 0, []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while time.monotonic() < stop:
            started = await http.post(
                "/api/runs",
                json={
                    "template": "Tell me about {{ topic }}",
                    "models": ["bench-gpt", "echo"],
                    "over": [{"topic": f"t{i}"} for i in range(items)],
                    "cache": False,
                },
            )
            if started.status_code != 202:
                failures.append(f"start: {started.status_code} {started.text[:200]}")
                break
            url = base.replace("http://", "ws://") + started.json()["events_url"]
            last: dict[str, Any] = {}
            async with connect(url, open_timeout=30) as ws:
                try:
                    while True:
                        last = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
                        events += 1
                        deltas += last.get("type") == "text_delta"
                except ConnectionClosed:
                    pass
            runs += 1
            if last.get("type") != "run_finished" or last.get("status") != "complete":
                failures.append(f"run ended with {last!r}"[:300])
    return {"runs": runs, "events": events, "deltas": deltas, "failures": failures}


async def _load(
    base: str, run_ids: list[str], readers: int, duration: float, items: int
) -> dict[str, Any]:
    reads, live = await asyncio.gather(
        _readers(base, run_ids, readers, duration), _live_runs(base, duration, items)
    )
    return {**reads, "live": live}


def main(argv: list[str] | None = None) -> int:
    """Run the load test and print its figures; return 1 on any error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--readers", type=int, default=200, help="concurrent readers")
    parser.add_argument(
        "--seed-runs", type=int, default=300, help="runs in the database"
    )
    parser.add_argument("--items", type=int, default=20, help="items per live run")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        _serve(args.db, args.seed_runs, max_life_s=args.duration * 4 + 120)
        return 0

    with tempfile.TemporaryDirectory(prefix="maquina-bench-server-") as tmp:
        db_url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAQUINA_NB_")}
        env["MAQUINA_NB_PROGRESS"] = "0"
        server = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--serve",
                "--db",
                db_url,
                "--seed-runs",
                str(args.seed_runs),
                "--duration",
                str(args.duration),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        try:
            assert server.stdout is not None
            # Seeding takes a while; give up (bounded) if nothing comes.
            ready, _, _ = select.select([server.stdout], [], [], 300)
            info = json.loads(server.stdout.readline() or "{}") if ready else {}
            if "base" not in info:
                sys.stderr.write("the server process did not start\n")
                return 1
            result = asyncio.run(
                _load(
                    info["base"],
                    info["run_ids"],
                    args.readers,
                    args.duration,
                    args.items,
                )
            )
        finally:
            if server.stdin:
                server.stdin.close()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)

    _report(result, args)
    return 1 if result["errors"] or result["live"]["failures"] else 0


def _report(result: dict[str, Any], args: argparse.Namespace) -> None:
    lat = result["latencies"]
    live = result["live"]
    print(
        f"bench_server: {args.readers} readers + live runs for {args.duration:.0f} s "
        f"({'given db' if args.db else 'SQLite'}, {args.seed_runs} seeded runs)"
    )
    for kind in ("maquina", "bare"):
        values = lat[kind]
        print(
            f"  {kind:8s} requests={len(values):6d} "
            f"rps={len(values) / args.duration:7.1f} "
            f"p50={_percentile(values, 0.50) * 1000:7.1f} ms "
            f"p99={_percentile(values, 0.99) * 1000:7.1f} ms "
            f"mean={statistics.fmean(values) * 1000 if values else float('nan'):7.1f} ms"
        )
    ratio_p99 = _percentile(lat["maquina"], 0.99) / _percentile(lat["bare"], 0.99)
    ratio_p50 = _percentile(lat["maquina"], 0.50) / _percentile(lat["bare"], 0.50)
    print(f"  ratio maquina/bare: p50 x{ratio_p50:.2f}, p99 x{ratio_p99:.2f}")
    print(
        f"  live: runs={live['runs']} events={live['events']} deltas={live['deltas']} "
        f"failures={len(live['failures'])}"
    )
    print(f"  errors: {len(result['errors'])}")
    for line in (result["errors"] + live["failures"])[:5]:
        print(f"    {line}")


if __name__ == "__main__":
    raise SystemExit(main())
