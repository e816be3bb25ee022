"""The load benchmark runs end to end (briefly); its figures are not checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_server_runs_briefly_without_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_server.py"
    spec = importlib.util.spec_from_file_location("bench_server", path)
    assert spec is not None
    assert spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    status = bench.main(
        ["--duration", "2", "--readers", "5", "--seed-runs", "5", "--items", "2"]
    )

    out = capsys.readouterr().out
    assert status == 0, out
    assert "errors: 0" in out
    assert "p99=" in out
    assert "failures=0" in out
