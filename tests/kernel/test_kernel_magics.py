"""``%%orchestrate`` in a real IPython kernel against FakeLLMServer (C01, C05, C29, C30, C33)."""

from __future__ import annotations

import html
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from maquina_nb.testing import FakeLLMServer, Reply
from tests.kernel.conftest import fake_env, kernel_env

pytestmark = pytest.mark.kernel

MODELS = "openai:gpt-4o,anthropic:claude-sonnet-4-5"


@pytest.fixture
def fake() -> Any:
    with FakeLLMServer() as server:
        yield server


def _assert_clean(result: Any) -> None:
    assert result.error is None, result.text()
    assert "running event loop" not in result.text()
    assert "Traceback" not in result.stderr


# --- C01: the three call forms inside a running kernel, and a plain script ---


def test_c01_magic_sync_and_await_forms_all_work(start_kernel: Any, fake: Any) -> None:
    kernel = start_kernel(**fake_env(fake))
    _assert_clean(kernel.run("%load_ext maquina_nb"))

    magic = kernel.run(f"%%orchestrate --models {MODELS} -o first\nSay hi")
    _assert_clean(magic)
    sync = kernel.run(
        "import maquina_nb\n"
        f"run = maquina_nb.orchestrate('Say hi', {MODELS.split(',')!r}, cache=False)\n"
        "print(len(first), len(run.to_pandas()))"
    )
    _assert_clean(sync)
    awaited = kernel.run(
        f"run2 = await maquina_nb.aorchestrate('Say hi', {MODELS.split(',')!r}, cache=False)\n"
        "print(len(run2.to_pandas()), sorted(run2.to_pandas()['status']))"
    )
    _assert_clean(awaited)

    assert sync.stdout.split() == ["2", "2"]
    assert awaited.stdout.strip() == "2 ['done', 'done']"
    assert len(fake.requests_for()) == 6
    stderr = "".join(
        m["content"].get("text", "") for m in kernel.iopub if m["msg_type"] == "stream"
    )
    assert "running event loop" not in stderr


def test_c01_sync_api_in_a_plain_script(tmp_path: Path, fake: Any) -> None:
    script = (
        "import maquina_nb\n"
        f"run = maquina_nb.orchestrate('Say hi', {MODELS.split(',')!r})\n"
        "print(len(run.to_pandas()))\n"
    )
    env = kernel_env(tmp_path, **fake_env(fake))
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
    assert "running event loop" not in done.stderr


# --- C05: two consecutive cells; widget values equal the full text ----------


def _visible(value: str) -> str:
    """The text a cell shows: rendered HTML without its tags, or the raw stream."""
    return html.unescape(re.sub(r"<[^>]+>", "", value)).strip()


def _front_end_texts(
    iopub: list[dict[str, Any]], comm_id: str
) -> dict[str, tuple[str, str]]:
    """Rebuild each cell's final text, and the first text it showed, from the comm log."""
    cells: dict[str, dict[str, Any]] = {}

    def take_cells(new: dict[str, Any]) -> None:
        for key, cell in new.items():
            known = cells.setdefault(key, {"text": "", "n": 0, "html": "", "first": ""})
            if "text" in cell:
                known.update(text=cell["text"], n=cell.get("n", len(cell["text"])))
                known["first"] = known["first"] or cell["text"]
            if cell.get("html"):
                known["html"] = cell["html"]

    for msg in iopub:
        content = msg["content"]
        if content.get("comm_id") != comm_id:
            continue
        data = content.get("data", {})
        if msg["msg_type"] == "comm_open" or data.get("method") == "update":
            take_cells(data.get("state", {}).get("cells", {}))
        elif data.get("method") == "custom":
            patch = data.get("content", {})
            take_cells(patch.get("cells", {}))
            for key, (start, piece, end) in patch.get("appends", {}).items():
                cell = cells.setdefault(
                    key, {"text": "", "n": 0, "html": "", "first": ""}
                )
                if cell["n"] == start:
                    cell["text"] += piece
                    cell["first"] = cell["first"] or cell["text"]
                    cell["n"] = end
    return {
        key: (_visible(c["html"] or c["text"]), c["first"]) for key, c in cells.items()
    }


def _widget_comm(iopub: list[dict[str, Any]], parent: str) -> str:
    opens = [
        m["content"]["comm_id"]
        for m in iopub
        if m["msg_type"] == "comm_open"
        and m["parent_header"].get("msg_id") == parent
        and m["content"]["data"]["state"].get("_model_name") == "AnyModel"
        and "cells" in m["content"]["data"]["state"]
    ]
    assert len(opens) == 1, opens
    return opens[0]


def test_c05_two_cells_stream_full_text_to_their_own_widget(
    start_kernel: Any, fake: Any
) -> None:
    answers = {
        "gpt-4o": "Alpha " + " ".join(f"a{i}" for i in range(60)) + " END-A",
        "claude-sonnet-4-5": "Beta " + " ".join(f"b{i}" for i in range(60)) + " END-B",
    }
    fake.responder = lambda request: Reply(
        text=answers[request.model], chunk_delay=0.005
    )
    kernel = start_kernel(**fake_env(fake))
    kernel.run("%load_ext maquina_nb")

    cells = []
    for round_ in (1, 2):
        result = kernel.run(
            f"%%orchestrate --models {MODELS} --no-cache -o out{round_}\nRound {round_}: say hi"
        )
        _assert_clean(result)
        cells.append(result)
        check = kernel.run(
            "from maquina_nb.notebook import _runner\n"
            "snap = _runner.last_widget().state.snapshot()\n"
            "import json; print(json.dumps([c['text'] or c['html'] for c in snap['cells'].values()]))"
        )
        assert sorted(map(_visible, json.loads(check.stdout))) == sorted(
            answers.values()
        )
    kernel.drain()

    expected = sorted(answers.values())
    comm_ids = [_widget_comm(kernel.iopub, cell.msg_id) for cell in cells]
    assert comm_ids[0] != comm_ids[1]
    for comm_id in comm_ids:
        seen = _front_end_texts(kernel.iopub, comm_id)
        assert sorted(shown for shown, _ in seen.values()) == expected
        # The first text the page got for each answer starts at its first token.
        for shown, first in seen.values():
            assert first
            assert shown.startswith(first)

    # Each cell's table is displayed in its own cell, never in the other one.
    for cell, comm_id in zip(cells, comm_ids, strict=True):
        views = [
            o
            for o in cell.outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        # One display, refreshed in place (update_display_data) when the run ends.
        assert [v["output_type"] for v in views] == [
            "display_data",
            "update_display_data",
        ]
        assert {
            v["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
            for v in views
        } == {comm_id}
    tracebacks = [
        m
        for m in kernel.iopub
        if m["msg_type"] == "stream" and "Traceback" in m["content"].get("text", "")
    ]
    assert tracebacks == []


# --- C29: braces in rows and in the template stay verbatim ------------------


def test_c29_braces_reach_the_model_verbatim(start_kernel: Any, fake: Any) -> None:
    kernel = start_kernel(**fake_env(fake))
    kernel.run(
        "%load_ext maquina_nb\nimport pandas as pd\n"
        "df = pd.DataFrame({'code': ['{x: x**2 for x in nums}', '{\"a\": 1}']})"
    )
    result = kernel.run(
        "%%orchestrate --over df --models openai:gpt-4o\n"
        'Explain this code: {{ code }}\nAnswer as {"verdict": "..."}'
    )
    _assert_clean(result)

    prompts = sorted(request.prompt for request in fake.requests_for(api="openai"))
    if len(prompts) != 2:  # say why, for a failure report
        rows = kernel.run(
            "print(_orchestrate_df[['status', 'error_kind', 'error_message']].to_string())"
        )
        print(rows.stdout, fake.requests)
    assert prompts == sorted(
        [
            'Explain this code: {x: x**2 for x in nums}\nAnswer as {"verdict": "..."}',
            'Explain this code: {"a": 1}\nAnswer as {"verdict": "..."}',
        ]
    )

    unknown = kernel.run(
        "%%orchestrate --over df --models openai:gpt-4o\nExplain {{ nothing }}"
    )
    # IPython prints a UsageError as one line on stderr, without a traceback.
    assert unknown.error is None
    assert unknown.stderr.startswith("UsageError: The prompt template uses undefined")
    assert "'nothing'" in unknown.stderr
    assert "the available columns are 'code'" in unknown.stderr
    assert "get_ipython" not in unknown.stderr
    assert len(fake.requests_for()) == 2


# --- C30: the magic line reaches the parser literally ------------------------


def test_c30_line_is_literal_in_the_kernel(start_kernel: Any, tmp_path: Path) -> None:
    kernel = start_kernel()
    kernel.run("%load_ext maquina_nb\nlang = 'French'\nbudget = 3")
    result = kernel.run(
        '%%orchestrate --models echo --system "Reply in {lang} and keep $budget under 5 words" '
        '--tag "my run" --tag plain -o out\nSay hi'
    )
    _assert_clean(result)

    with sqlite3.connect(tmp_path / "kernel.db") as connection:
        (messages,) = connection.execute(
            "SELECT messages FROM model_responses"
        ).fetchone()
        (tags,) = connection.execute(
            "SELECT tags FROM orchestration_contexts"
        ).fetchone()
    assert json.loads(messages)[0] == {
        "role": "system",
        "content": "Reply in {lang} and keep $budget under 5 words",
    }
    assert json.loads(tags) == ["my run", "plain"]

    # A run refused before sending anything leaves a table that says why, no rows.
    refused = kernel.run(
        "%%orchestrate --models echo --replay-only\nNever asked before"
    )
    assert refused.stderr.startswith("UsageError: replay_only is set")
    kinds = [o["output_type"] for o in refused.outputs if o["output_type"] != "stream"]
    assert kinds == ["display_data", "update_display_data"]
    updates = [o for o in refused.outputs if o["output_type"] == "update_display_data"]
    saved = updates[-1]["data"]["text/plain"]
    assert saved.startswith("Comparison: refused: replay_only is set")
    assert "[queued]" not in saved


# --- C33: a canary key never reaches the saved notebook ---------------------


def test_c33_canary_key_is_in_no_saved_output(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "%load_ext maquina_nb",
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, force=True)",
        f"%%orchestrate --models {MODELS} -o out\nSay hi",
        "print(out[['model_spec', 'status', 'error_kind', 'error_message']].to_string())",
        "%maquina config",
        "import maquina_nb\nprint(repr(maquina_nb.resolve_model('openai:gpt-4o')))",
        "%maquina check openai:gpt-4o anthropic:claude-sonnet-4-5 --live",
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]

    with FakeLLMServer(
        accepted_keys={"sk-the-right-one"}, echo_key_on_401=True
    ) as fake:
        env = kernel_env(
            tmp_path,
            OPENAI_BASE_URL=fake.openai_base_url,
            ANTHROPIC_BASE_URL=fake.anthropic_base_url,
            OPENAI_API_KEY="sk-test-SECRETSECRET\r\n",
            ANTHROPIC_API_KEY=" sk-ant-test-SECRETSECRET",
            MAQUINA_NB_LOG="debug",
        )
        client = NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute(env=env)

    saved = tmp_path / "canary.ipynb"
    nbformat.write(notebook, saved)
    text = saved.read_text()
    assert "SECRETSECRET" not in text
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert any("failed" in json.dumps(o) for o in outputs), (
        "the run should record failures"
    )
    with sqlite3.connect(tmp_path / "kernel.db") as connection:
        rows = connection.execute(
            "SELECT error_message, text FROM model_responses"
        ).fetchall()
    assert rows
    assert "SECRETSECRET" not in json.dumps(rows)


# --- --background: the cell returns, the table keeps streaming ---------------


def test_background_cell_returns_while_the_table_streams(
    start_kernel: Any, fake: Any
) -> None:
    words = [f"b{i} " for i in range(60)] + ["END"]
    fake.responder = lambda request: Reply(chunks=words, chunk_delay=0.1)
    kernel = start_kernel(**fake_env(fake))
    kernel.run("%load_ext maquina_nb")

    cell = kernel.run("%%orchestrate --models openai:gpt-4o --background -o later\nHi")
    _assert_clean(cell)
    # The kernel is free at once: the next cell runs while the answer streams.
    assert kernel.run("print('later' in globals())").stdout.strip() == "False"

    deadline = time.monotonic() + 60
    while kernel.run("print('later' in globals())").stdout.strip() != "True":
        assert time.monotonic() < deadline, "the background run never finished"
        time.sleep(0.5)
    final = kernel.run("print(later.status.iloc[0], repr(later.text.iloc[0]))")
    assert final.stdout.strip() == f"done {''.join(words)!r}"

    # Updates sent after the cell returned reached the page too.
    kernel.drain()
    comm_id = _widget_comm(kernel.iopub, cell.msg_id)
    seen = _front_end_texts(kernel.iopub, comm_id)
    assert [shown for shown, _ in seen.values()] == ["".join(words).strip()]


def test_stopped_background_run_fills_out_and_costs_nothing(
    start_kernel: Any, fake: Any
) -> None:
    fake.responder = lambda request: Reply(
        chunks=[f"s{i} " for i in range(400)], chunk_delay=0.05
    )
    kernel = start_kernel(**fake_env(fake))
    kernel.run("%load_ext maquina_nb")
    cell = kernel.run("%%orchestrate -m openai:gpt-4o --background -o bg\nHi")
    _assert_clean(cell)
    deadline = time.monotonic() + 30
    while not fake.requests_for():
        assert time.monotonic() < deadline, "the background run sent nothing"
        time.sleep(0.05)

    stop = kernel.run("%maquina stop")
    _assert_clean(stop)
    assert "and in bg." in stop.text()

    # What finished (nothing here) is in bg, as after an interrupted cell.
    result = kernel.run(
        "import maquina_nb\n"
        "print(bg.status.tolist())\n"
        "print(repr(maquina_nb.last_run()))"
    )
    _assert_clean(result)
    statuses, summary = result.stdout.strip().splitlines()
    assert statuses == "['cancelled']"
    assert summary.endswith(", 0/1 answered, 0 failed, cost $0.00>"), summary


def test_extension_loads_from_the_kernel_config(
    start_kernel: Any, tmp_path: Path
) -> None:
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        'c.InteractiveShellApp.extensions = ["maquina_nb"]\n'
    )
    kernel = start_kernel()

    result = kernel.run("%%orchestrate -m echo -o out\nConfigured")
    _assert_clean(result)
    assert kernel.run("print(out.text.iloc[0])").stdout.strip() == "Configured"
