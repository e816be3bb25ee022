"""A real IPython kernel driven like a front end (jupyter_client).

``kernel`` starts ``python3`` (this venv) with a clean environment and a
private ``IPYTHONDIR``, in ``tmp_path``, with ``MAQUINA_DB_URL`` pointing at a
SQLite file there. :meth:`KernelSession.run` executes one cell and records
*every* iopub message (any parent), so tests can check where outputs and comm
messages landed, as JupyterLab would see them.
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.kernel


@dataclass
class CellResult:
    msg_id: str
    outputs: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def stdout(self) -> str:
        return "".join(o["text"] for o in self.outputs if o.get("name") == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(o["text"] for o in self.outputs if o.get("name") == "stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        errors = [o for o in self.outputs if o["output_type"] == "error"]
        return errors[0] if errors else None

    def text(self) -> str:
        parts = []
        for output in self.outputs:
            if "text" in output:
                parts.append(output["text"])
            parts.extend(str(v) for v in output.get("data", {}).values())
            if output["output_type"] == "error":
                parts.append("\n".join(output["traceback"]))
        return "\n".join(parts)


class KernelSession:
    """One running kernel and a client connected to it."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.iopub: list[dict[str, Any]] = []

    def _record(self, msg: dict[str, Any], results: dict[str, CellResult]) -> None:
        self.iopub.append(msg)
        parent = msg.get("parent_header", {}).get("msg_id")
        result = results.get(parent)
        if result is None:
            return
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            result.outputs.append({"output_type": "stream", **content})
        elif kind in ("display_data", "execute_result", "update_display_data"):
            result.outputs.append(
                {"output_type": kind, "data": content.get("data", {})}
            )
        elif kind == "error":
            result.outputs.append({"output_type": "error", **content})

    def run(
        self, code: str, *, timeout: float = 90, interrupt_after: float | None = None
    ) -> CellResult:
        """Execute ``code`` and wait (bounded) until the kernel is idle again."""
        msg_id = self.client.execute(code, allow_stdin=False)
        result = CellResult(msg_id)
        results = {msg_id: result}
        started = time.monotonic()
        deadline = started + timeout
        interrupted = False
        while True:
            if (
                interrupt_after is not None
                and not interrupted
                and time.monotonic() - started > interrupt_after
            ):
                self.manager.interrupt_kernel()
                interrupted = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"cell did not finish within {timeout}s:\n{code}")
            try:
                msg = self.client.get_iopub_msg(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            self._record(msg, results)
            if (
                msg["msg_type"] == "status"
                and msg["parent_header"].get("msg_id") == msg_id
                and msg["content"]["execution_state"] == "idle"
            ):
                break
        # Skip replies to earlier requests (a kernel_info reply left over from
        # wait_for_ready would otherwise shift every later reply by one).
        reply_deadline = time.monotonic() + 30
        while True:
            shell = self.client.get_shell_msg(
                timeout=max(0.1, reply_deadline - time.monotonic())
            )
            if shell["parent_header"].get("msg_id") == msg_id:
                break
        result.reply = shell["content"]
        return result

    def drain(self, quiet: float = 1.0, limit: float = 15.0) -> None:
        """Collect trailing iopub messages until none came for ``quiet`` seconds."""
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < quiet:
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            self.iopub.append(msg)
            last = time.monotonic()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    ipython_dir = tmp_path / "ipython"
    ipython_dir.mkdir(exist_ok=True)
    env.update(
        IPYTHONDIR=str(ipython_dir),
        MAQUINA_DB_URL=f"sqlite:///{tmp_path / 'kernel.db'}",
        MAQUINA_NB_PROGRESS="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def start_kernel(tmp_path: Path) -> Iterator[Any]:
    sessions: list[KernelSession] = []

    def _start(**extra: str) -> KernelSession:
        session = KernelSession(kernel_env(tmp_path, **extra), tmp_path)
        sessions.append(session)
        return session

    yield _start
    for session in sessions:
        session.shutdown()


def fake_env(fake: Any) -> dict[str, str]:
    """Environment pointing both SDKs at ``fake`` with placeholder keys."""
    return {
        "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        "OPENAI_API_KEY": "sk-fake-openai-key",
        "ANTHROPIC_API_KEY": "sk-ant-fake-anthropic-key",
    }
