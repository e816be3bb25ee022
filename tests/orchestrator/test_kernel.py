"""C01 and C04 in a real IPython kernel (jupyter_client) and a plain script.

The kernel and the script talk to a ``FakeLLMServer`` that runs in the test
process on 127.0.0.1, through the real openai and anthropic SDKs.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maquina_nb.db import Repository
from maquina_nb.testing import FakeLLMServer, Reply

pytestmark = pytest.mark.kernel

_LOOP_ERROR = "cannot be called from a running event loop"


class Kernel:
    """A running kernel with a blocking client; ``run`` executes one cell."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def send(self, code: str) -> str:
        return self.client.execute(code, allow_stdin=False)

    def collect(
        self, msg_id: str, timeout: float
    ) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
        """Wait (bounded) for the cell's idle status; return reply, output text, errors."""
        deadline = time.monotonic() + timeout
        text: list[str] = []
        errors: list[dict[str, Any]] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the cell did not finish within {timeout}s")
            try:
                msg = self.client.get_iopub_msg(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                text.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                errors.append(content)
                text.append("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        # Skip replies to earlier requests (a kernel_info reply left over
        # from wait_for_ready shifts every later reply by one otherwise).
        while True:
            shell = self.client.get_shell_msg(timeout=30)
            if shell["parent_header"].get("msg_id") == msg_id:
                break
        return shell["content"], "".join(text), errors

    def run(self, code: str, timeout: float = 60) -> str:
        reply, text, _errors = self.collect(self.send(code), timeout)
        assert reply["status"] == "ok", text
        return text

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    env = dict(os.environ)
    env.update(
        IPYTHONDIR=str(tmp_path / "ipython"),
        MAQUINA_NB_PROGRESS="0",
        PYTHONUNBUFFERED="1",
    )
    session = Kernel(env, tmp_path)
    yield session
    session.shutdown()


def _models_cell(fake: FakeLLMServer) -> str:
    return textwrap.dedent(
        f"""
        import pandas as pd
        from maquina_nb.orchestrator import aorchestrate, last_run, orchestrate
        from maquina_nb.providers import resolve_model
        gpt = resolve_model("openai:gpt-4o", base_url={fake.openai_base_url!r}, api_key="sk-test-kernel")
        claude = resolve_model("anthropic:claude-sonnet-4-5", base_url={fake.anthropic_base_url!r},
                               api_key="sk-ant-test-kernel")
        """
    )


def test_c01_sync_and_await_forms_in_a_kernel(
    kernel: Kernel, fake: FakeLLMServer, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'c01.db'}"
    kernel.run(_models_cell(fake))

    sync_out = kernel.run(
        f"run = orchestrate('Say hi', [gpt, claude], db={db!r}, cache=False)\n"
        "print(len(run.to_pandas()), run.status, sorted(r.text for r in run.responses))"
    )
    await_out = kernel.run(
        f"run2 = await aorchestrate('Say hi', [gpt, claude], db={db!r}, cache=False)\n"
        "print(len(run2.to_pandas()), run2.status)"
    )

    assert (
        sync_out.strip() == "2 complete ['Fake answer: Say hi', 'Fake answer: Say hi']"
    )
    assert await_out.strip() == "2 complete"
    assert _LOOP_ERROR not in sync_out + await_out
    assert len(fake.requests_for()) == 4


def test_c01_plain_python_script(fake: FakeLLMServer, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        _models_cell(fake)
        + textwrap.dedent(
            f"""
            run = orchestrate("Say hi", [gpt, claude], db={f"sqlite:///{tmp_path / 's.db'}"!r})
            print(len(run.to_pandas()), run.status)
            """
        )
    )
    env = dict(os.environ, MAQUINA_NB_PROGRESS="1")

    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 complete"
    assert _LOOP_ERROR not in done.stderr
    # The progress bar went to stderr.
    assert "2/2" in done.stderr


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_c04_interrupt_cancels_in_flight_streams(
    kernel: Kernel, fake: FakeLLMServer, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'c04.db'}"
    # One token every 2 s for 60 s, on every stream.
    fake.default_reply = Reply(chunks=[f"tok{i} " for i in range(30)], chunk_delay=2.0)
    kernel.run(_models_cell(fake))

    msg_id = kernel.send(
        "df = pd.DataFrame({'q': ['a', 'b', 'c']})\n"
        f"orchestrate('Q {{{{ q }}}}', [gpt, claude], over=df, db={db!r})"
    )
    _wait_for(lambda: len(fake.requests_for()) == 6, 60, "six streams to start")
    time.sleep(3)
    interrupted_at = time.monotonic()
    kernel.manager.interrupt_kernel()
    reply, _text, errors = kernel.collect(msg_id, timeout=15)
    took = time.monotonic() - interrupted_at

    assert reply["status"] == "error"
    assert [e["ename"] for e in errors] == ["KeyboardInterrupt"]
    print(f"cell ended {took:.2f}s after the interrupt")

    # The fake server sees every connection closed.
    _wait_for(lambda: fake._in_flight == 0, 10, "the server to see the streams closed")

    # Partial rows are stored and flagged; the run is cancelled.
    state = json.loads(
        kernel.run(
            "import json\nr = last_run()\n"
            "print(json.dumps({'id': r.id, 'status': r.status, "
            "'rows': sorted((x.model_spec, x.status, (x.text or '')[:4]) for x in r.responses)}))"
        )
    )
    assert state["status"] == "cancelled"
    # OpenAI streams had sent their first token; Anthropic's first text comes
    # after message_start, ping and content_block_start, 2 s apart each.
    assert (
        state["rows"]
        == [["anthropic:claude-sonnet-4-5", "cancelled", ""]] * 3
        + [["openai:gpt-4o", "cancelled", "tok0"]] * 3
    )
    repository = Repository.from_url(db)
    assert repository.get_run(state["id"]).status == "cancelled"
    frame = repository.responses_frame(state["id"])
    assert sorted(frame["status"].astype(str)) == ["cancelled"] * 6
    assert frame["error_kind"].astype(str).tolist() == ["cancelled"] * 6

    # Nothing is written after the cancel.
    stamp = frame["updated_at"].max()
    time.sleep(2.5)
    later = repository.responses_frame(state["id"])
    assert (len(later), later["updated_at"].max()) == (6, stamp)

    # The next cell in the same kernel works, with no hang and no stale output.
    fake.default_reply = Reply()
    out = kernel.run(
        f"again = orchestrate('One more', [gpt], db={db!r})\nprint(again.status, again.responses[0].text)",
        timeout=30,
    )
    assert out.strip() == "complete Fake answer: One more"


def test_c04_interrupt_of_an_awaited_run(
    kernel: Kernel, fake: FakeLLMServer, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'c04a.db'}"
    fake.default_reply = Reply(chunks=[f"tok{i} " for i in range(30)], chunk_delay=2.0)
    kernel.run(_models_cell(fake))

    msg_id = kernel.send(f"await aorchestrate('Slow please', [gpt, claude], db={db!r})")
    _wait_for(lambda: len(fake.requests_for()) == 2, 60, "two streams to start")
    time.sleep(1)
    kernel.manager.interrupt_kernel()
    reply, _text, errors = kernel.collect(msg_id, timeout=8)

    # ipykernel reports an interrupted await as CancelledError.
    assert reply["status"] == "error"
    assert [e["ename"] for e in errors] == ["CancelledError"]
    _wait_for(lambda: fake._in_flight == 0, 10, "the server to see the streams closed")
    out = kernel.run(
        "r = last_run(); print(r.status, sorted(x.status for x in r.responses))"
    )
    assert out.strip() == "cancelled ['cancelled', 'cancelled']"

    fake.default_reply = Reply()
    again = kernel.run(
        f"again = await aorchestrate('One more', [gpt], db={db!r})\nprint(again.status)",
        timeout=30,
    )
    assert again.strip() == "complete"


_LOOP_FRAMES = ("_loop.py", "concurrent/futures", "threading.py")


def test_interrupted_orchestrate_has_a_short_traceback(
    kernel: Kernel, fake: FakeLLMServer, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'short.db'}"
    fake.default_reply = Reply(chunks=[f"tok{i} " for i in range(30)], chunk_delay=2.0)
    kernel.run(_models_cell(fake))

    msg_id = kernel.send(f"orchestrate('Slow', [gpt, claude], db={db!r})")
    _wait_for(lambda: len(fake.requests_for()) == 2, 60, "two streams to start")
    time.sleep(1)
    kernel.manager.interrupt_kernel()
    reply, _text, errors = kernel.collect(msg_id, timeout=15)

    assert reply["status"] == "error"
    assert [e["ename"] for e in errors] == ["KeyboardInterrupt"]
    traceback = "\n".join(errors[0]["traceback"])
    assert not [frame for frame in _LOOP_FRAMES if frame in traceback], traceback
    assert "cancelled after 0 of 2 responses" in errors[0]["evalue"]
    _wait_for(lambda: fake._in_flight == 0, 10, "the server to see the streams closed")


def test_interrupted_magic_prints_one_line(
    kernel: Kernel, fake: FakeLLMServer, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'magic.db'}"
    fake.default_reply = Reply(chunks=[f"tok{i} " for i in range(30)], chunk_delay=2.0)
    kernel.run(
        "import os\n"
        f"os.environ.update(OPENAI_BASE_URL={fake.openai_base_url!r}, "
        "OPENAI_API_KEY='sk-test-magic-interrupt', "
        f"MAQUINA_DB_URL={db!r})\n"
        "%load_ext maquina_nb"
    )

    msg_id = kernel.send("%%orchestrate -m openai:gpt-4o -o partial\nSlow please")
    _wait_for(lambda: len(fake.requests_for()) == 1, 60, "the stream to start")
    time.sleep(1)
    kernel.manager.interrupt_kernel()
    reply, _text, errors = kernel.collect(msg_id, timeout=15)

    assert reply["status"] == "error"
    (error,) = errors
    (line,) = error["traceback"]
    assert re.fullmatch(
        r"Run [0-9a-f]{32} cancelled after 0 of 1 responses; the finished ones are "
        r"stored in partial and maquina_nb\.last_run\(\)\.",
        line,
    ), line
    _wait_for(lambda: fake._in_flight == 0, 10, "the server to see the stream closed")
    out = kernel.run("print(len(partial), list(partial['status'].astype(str)))")
    assert out.strip() == "1 ['cancelled']"
