"""Storage speed: bulk insert, DataFrame export, keyset paging (SQLite).

Each figure is set against the raw library doing the same work in the same run:

- insert 100,000 responses through ``Repository.add_responses`` (batches of
  1,000, as the orchestrator writes them) against ``sqlite3`` ``executemany``
  of the same rows already in storage form; target >= 50,000 rows/s;
- export 1,000,000 responses with ``responses_frame()`` against
  ``pandas.read_sql`` of the same SELECT; target <= 1.3x its time, with the
  peak memory of each measured in its own child process;
- one keyset page of 50 runs, from a database holding 100,000 runs, through
  ``Repository.list_runs`` against ``sqlite3`` running the same query; target
  a median under 5 ms.

    python -m benchmarks.bench_db
    python -m benchmarks.bench_db --export-rows 200000   # quicker
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

_SPECS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5", "ollama:llama3.1", "echo")


def _response_rows(run_id: str, start: int, count: int) -> list[dict[str, Any]]:
    rows = []
    for number in range(start, start + count):
        item = number // len(_SPECS)
        spec = _SPECS[number % len(_SPECS)]
        rows.append(
            {
                "run_id": run_id,
                "item_index": item,
                "model_spec": spec,
                "provider": spec.split(":")[0],
                "model_id": f"{spec}-2026-01-01",
                "request_parameters": {"temperature": 0.2, "max_tokens": 256},
                "messages": [{"role": "user", "content": f"Question {item}?"}],
                "variables": {"q": item, "topic": ("math", "law", "poetry")[item % 3]},
                "text": f"Answer {number}: " + "lorem ipsum " * 8,
                "status": "done",
                "finish_reason": "stop",
                "raw_finish_reason": "stop",
                "input_tokens": 12,
                "output_tokens": 40 + number % 17,
                "cost_usd": 0.0012,
                "latency_s": 0.8,
                "ttft_s": 0.2,
                "cache_key": f"key-{number:09d}",
            }
        )
    return rows


def _new_run(repo: Any, name: str) -> str:
    return str(
        repo.add_run(
            name=name, template="Question {{ q }}?", system_prompt=None, models=list(_SPECS),
            parameters={"temperature": 0.2}, tags=["bench"], item_count=0, samples=1,
        )
    )  # fmt: skip


# --- insert ---------------------------------------------------------------------


def bench_insert(
    folder: Path, rows: int = 100_000, batch: int = 1_000
) -> dict[str, float]:
    from maquina_nb.db import Repository
    from maquina_nb.db._bulk import _JSON_ENCODER, RESPONSE_COLUMNS

    repo = Repository.from_url(f"sqlite:///{folder / 'insert.db'}")
    run_id = _new_run(repo, "insert")
    batches = [_response_rows(run_id, start, batch) for start in range(0, rows, batch)]

    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for chunk in batches:
        repo.add_responses(chunk)
    ours, ours_cpu = time.perf_counter() - started, time.process_time() - cpu

    # The raw floor: the same rows, already converted, one executemany per batch.
    raw_db = folder / "insert-raw.db"
    Repository.from_url(f"sqlite:///{raw_db}")
    stamp = "2026-12-04 12:00:00.000000"
    json_columns = {"request_parameters", "messages", "variables", "tool_calls"}
    prepared = []
    for chunk in batches:
        rows_out = []
        for number, row in enumerate(chunk):
            full = dict.fromkeys(RESPONSE_COLUMNS)
            full.update(row, id=f"{len(prepared):08x}{number:024x}", sample_index=0,
                        cost_is_estimate=0, created_at=stamp, updated_at=stamp,
                        run_id="r" * 32)  # fmt: skip
            for name in json_columns:
                if full[name] is not None:
                    full[name] = _JSON_ENCODER.encode(full[name])
            rows_out.append(tuple(full[c] for c in RESPONSE_COLUMNS))
        prepared.append(rows_out)
    connection = sqlite3.connect(raw_db, isolation_level=None)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = OFF")
    sql = (
        f"INSERT INTO model_responses ({', '.join(RESPONSE_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(RESPONSE_COLUMNS))})"
    )
    gc.collect()
    started, cpu = time.perf_counter(), time.process_time()
    for rows_out in prepared:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(sql, rows_out)
        connection.execute("COMMIT")
    raw, raw_cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.close()
    return {
        "rows": rows,
        "ours_s": ours,
        "ours_cpu": ours_cpu,
        "raw_s": raw,
        "raw_cpu": raw_cpu,
    }


# --- export ---------------------------------------------------------------------


def _fill_for_export(path: Path, rows: int) -> None:
    from maquina_nb.db import Repository

    repo = Repository.from_url(f"sqlite:///{path}")
    run_id = _new_run(repo, "export")
    for start in range(0, rows, 10_000):
        repo.add_responses(_response_rows(run_id, start, min(10_000, rows - start)))


def _export_sql(engine: Any) -> str:
    from maquina_nb.db import export

    columns = export._responses_columns(audit=False)
    r = export._RESPONSES.c
    stmt = export._statement(columns).order_by(
        r.run_id, r.item_index, r.sample_index, r.id
    )
    return str(stmt.compile(dialect=engine.dialect))


def _export_once(url: str, method: str) -> tuple[float, float, int]:
    import pandas as pd
    from sqlalchemy import text

    from maquina_nb.db import create_db_engine, export

    engine = create_db_engine(url)
    sql = _export_sql(engine)
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    if method == "ours":
        frame = export.responses_frame(engine)
    else:
        with engine.connect() as connection:
            frame = pd.read_sql(text(sql), connection)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, len(frame)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _export_child(url: str, method: str) -> tuple[float, int]:
    """In a fresh process: export once, return (peak RSS growth in MB, rows).

    The peak is VmHWM after resetting it (``/proc/self/clear_refs``) once the
    imports are done, so it measures the export alone.
    """
    from maquina_nb.db import create_db_engine

    create_db_engine(url)
    import pandas  # noqa: F401 - loaded before the baseline is read

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    _, _, count = _export_once(url, method)
    return (_status_kb("VmHWM") - before) / 1024, count


def bench_export(
    folder: Path, rows: int = 1_000_000, repeats: int = 3
) -> dict[str, float]:
    path = folder / "export.db"
    _fill_for_export(path, rows)
    url = f"sqlite:///{path}"

    timings: dict[str, list[tuple[float, float]]] = {"ours": [], "read_sql": []}
    for _ in range(repeats):
        for method in ("read_sql", "ours"):
            wall, cpu, count = _export_once(url, method)
            assert count == rows, (method, count)
            timings[method].append((wall, cpu))

    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        peak_ours, _ = pool.apply(_export_child, (url, "ours"))
    with context.Pool(1, maxtasksperchild=1) as pool:
        peak_raw, _ = pool.apply(_export_child, (url, "read_sql"))

    return {
        "rows": rows,
        "ours_wall": min(w for w, _ in timings["ours"]),
        "ours_cpu": min(c for _, c in timings["ours"]),
        "raw_wall": min(w for w, _ in timings["read_sql"]),
        "raw_cpu": min(c for _, c in timings["read_sql"]),
        "ours_peak_mb": peak_ours,
        "raw_peak_mb": peak_raw,
    }


# --- keyset paging --------------------------------------------------------------


def bench_keyset(
    folder: Path, runs: int = 100_000, samples: int = 300
) -> dict[str, float]:
    import datetime as dt

    from sqlalchemy import insert

    from maquina_nb.db import OrchestrationContext, Repository
    from maquina_nb.db.ids import new_ids

    repo = Repository.from_url(f"sqlite:///{folder / 'keyset.db'}")
    base = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    ids = new_ids(runs)
    rows = [
        {
            "id": run_id, "name": f"run-{n % 500}", "template": "Q {{ q }}",
            "models": [_SPECS[n % 4]], "parameters": {}, "tags": ["t"], "item_count": 10,
            "samples": 1, "status": "complete", "package_version": "0", "sdk_versions": {},
            "metadata_": {}, "created_at": base + dt.timedelta(seconds=n),
            "updated_at": base + dt.timedelta(seconds=n),
        }
        for n, run_id in enumerate(ids)
    ]  # fmt: skip
    with repo.engine.begin() as connection:
        connection.execute(insert(OrchestrationContext), rows)

    # Cursors at random depths, taken from real pages.
    rng = random.Random(7)
    cursors: list[str | None] = [None]
    page = repo.list_runs(limit=50)
    while len(cursors) < 40 and page.next_cursor:
        cursors.append(page.next_cursor)
        for _ in range(rng.randint(1, 40)):
            page = repo.list_runs(limit=50, cursor=page.next_cursor)
            if not page.next_cursor:
                break

    ours, ours_cpu = [], []
    for number in range(samples):
        cursor = cursors[number % len(cursors)]
        started, cpu = time.perf_counter(), time.process_time()
        page = repo.list_runs(limit=50, cursor=cursor)
        ours.append(time.perf_counter() - started)
        ours_cpu.append(time.process_time() - cpu)
        assert len(page.runs) == 50

    # The same query in bare sqlite3, from the same positions.
    connection = sqlite3.connect(folder / "keyset.db")
    positions = [None] + [
        rows[n]["created_at"] for n in rng.sample(range(1000, runs), 39)
    ]
    raw = []
    for number in range(samples):
        stamp = positions[number % len(positions)]
        started = time.perf_counter()
        if stamp is None:
            fetched = connection.execute(
                "SELECT * FROM orchestration_contexts ORDER BY created_at DESC, id DESC LIMIT 51"
            ).fetchall()
        else:
            key = stamp.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            fetched = connection.execute(
                "SELECT * FROM orchestration_contexts WHERE (created_at, id) < (?, ?) "
                "ORDER BY created_at DESC, id DESC LIMIT 51",
                (key, "f" * 32),
            ).fetchall()
        decoded = [json.loads(row[4]) for row in fetched]  # models, as the ORM decodes
        raw.append(time.perf_counter() - started)
        assert len(decoded) == 51
    connection.close()

    return {
        "runs": runs,
        "median_ms": statistics.median(ours) * 1000,
        "median_cpu_ms": statistics.median(ours_cpu) * 1000,
        "p95_ms": statistics.quantiles(ours, n=20)[18] * 1000,
        "raw_median_ms": statistics.median(raw) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--insert-rows", type=int, default=100_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="maquina-bench-db-") as tmp:
        folder = Path(tmp)

        ins = bench_insert(folder, args.insert_rows)
        rate = ins["rows"] / ins["ours_s"]
        print(
            f"insert {ins['rows']:,} responses (batches of 1,000): {ins['ours_s']:.2f} s wall "
            f"({ins['ours_cpu']:.2f} s CPU) = {rate:,.0f} rows/s wall, "
            f"{ins['rows'] / ins['ours_cpu']:,.0f} rows/s CPU (target >= 50,000: "
            f"{'ok' if rate >= 50_000 else 'MISSED'}); raw sqlite3 executemany "
            f"{ins['raw_s']:.2f} s wall ({ins['raw_cpu']:.2f} s CPU) = "
            f"{ins['rows'] / ins['raw_s']:,.0f} rows/s; ratio {ins['ours_s'] / ins['raw_s']:.2f}x wall, "
            f"{ins['ours_cpu'] / ins['raw_cpu']:.2f}x CPU",
            flush=True,
        )

        keyset = bench_keyset(folder, args.runs)
        print(
            f"keyset page of 50 from {keyset['runs']:,} runs: median {keyset['median_ms']:.2f} ms "
            f"wall ({keyset['median_cpu_ms']:.2f} ms CPU), "
            f"p95 {keyset['p95_ms']:.2f} ms (target median < 5 ms: "
            f"{'ok' if keyset['median_ms'] < 5 else 'MISSED'}); raw sqlite3 same query "
            f"{keyset['raw_median_ms']:.2f} ms; ratio {keyset['median_ms'] / keyset['raw_median_ms']:.2f}x",
            flush=True,
        )

        exp = bench_export(folder, args.export_rows)
        ratio = exp["ours_cpu"] / exp["raw_cpu"]
        print(
            f"export {exp['rows']:,} responses to a DataFrame: responses_frame "
            f"{exp['ours_wall']:.2f} s wall / {exp['ours_cpu']:.2f} s CPU, pandas.read_sql "
            f"{exp['raw_wall']:.2f} s wall / {exp['raw_cpu']:.2f} s CPU; ratio {ratio:.2f}x CPU, "
            f"{exp['ours_wall'] / exp['raw_wall']:.2f}x wall (target <= 1.3: "
            f"{'ok' if ratio <= 1.3 else 'MISSED'}); peak memory {exp['ours_peak_mb']:,.0f} MB "
            f"vs {exp['raw_peak_mb']:,.0f} MB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
