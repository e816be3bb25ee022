"""Responses are stored as they finish: SIGKILL loses only what was in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from maquina_nb.db import Repository

_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from maquina_nb.orchestrator import orchestrate
    from maquina_nb.providers.base import BaseAIModel, Completion

    class Fast(BaseAIModel):
        provider = "custom"
        async def generate(self, request):
            return Completion(text="ok", finish_reason="stop", cost_usd=0.0)

    class Hangs(BaseAIModel):
        provider = "custom"
        async def generate(self, request):
            await asyncio.sleep(3600)

    orchestrate([f"q{i}" for i in range(20)], [Fast("fast"), Hangs("hangs")], db=sys.argv[1])
    """
)


def test_sigkill_loses_only_the_responses_in_flight(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'kill.db'}"
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, MAQUINA_NB_PROGRESS="0")
    process = subprocess.Popen([sys.executable, str(script), db], env=env, cwd=tmp_path)
    try:
        # Wait (bounded) until the fast model's 20 answers are in the database.
        deadline = time.monotonic() + 60
        stored = 0
        while stored < 20:
            assert time.monotonic() < deadline, f"only {stored} rows stored"
            assert process.poll() is None, "the script ended early"
            time.sleep(0.1)
            if (tmp_path / "kill.db").exists():
                try:
                    frame = Repository.from_url(db).responses_frame()
                except Exception:  # the schema may still be being created
                    continue
                stored = int((frame["status"].astype(str) == "done").sum())
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=10)

    engine = sa.create_engine(db)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    repository = Repository.from_url(db)
    (run,) = repository.list_runs().runs
    assert run.status == "running"
    frame = repository.responses_frame(run.id)
    assert frame["status"].astype(str).tolist() == ["done"] * 20
    assert set(frame["model_spec"].astype(str)) == {"custom:fast"}
