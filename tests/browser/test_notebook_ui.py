"""``%%orchestrate`` driven through a real JupyterLab in headless Chromium.

The fake LLM server runs in this process on 127.0.0.1; the kernel (a child of the
JupyterLab server) reaches it through ``OPENAI_BASE_URL``/``ANTHROPIC_BASE_URL``
set in the notebook's first cell. The database is read from outside the kernel.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maquina_nb.testing import FakeLLMServer, Reply
from tests.browser._lab import (
    ACTIVE,
    Lab,
    cell_output,
    open_notebook,
    run_cell,
    wait_idle,
    wait_until,
    write_notebook,
)

pytestmark = pytest.mark.browser

STREAM_WORDS = [f"w{i}" for i in range(40)] + ["END"]
XSS = {
    "img": '<img src=x onerror="window.__pwned=1"> image payload',
    "link": "[click](javascript:window.__pwned=2) link payload",
    "script": "</td></tr></table><script>window.__pwned=3</script> script payload",
}


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def setup_cell(fake: FakeLLMServer) -> str:
    env = {
        "OPENAI_BASE_URL": fake.openai_base_url,
        "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
        "OPENAI_API_KEY": "sk-fake-browser-key",
        "ANTHROPIC_API_KEY": "sk-ant-fake-browser-key",
    }
    return f"import os\nos.environ.update({env!r})\n%load_ext maquina_nb"


def query(lab: Lab, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(lab.db_path, timeout=10)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def run_id_named(lab: Lab, name: str) -> str:
    rows = query(lab, "SELECT id FROM orchestration_contexts WHERE name = ?", name)
    assert len(rows) == 1, rows
    return str(rows[0][0])


def answer_cell(page: Any, index: int, model: str) -> Any:
    return cell_output(page, index).locator(f'.mq-cell[aria-label^="{model}:"]')


def pwned(page: Any) -> Any:
    return page.evaluate("() => window.__pwned")


# --- the main loop: stream, click, store -------------------------------------


def test_stream_then_feedback_is_stored(
    lab: Lab, page: Any, fake: FakeLLMServer
) -> None:
    fake.responder = lambda request: Reply(
        chunks=[f"{word} " for word in STREAM_WORDS], chunk_delay=0.1
    )
    path = write_notebook(
        lab,
        "feedback.ipynb",
        [
            setup_cell(fake),
            "%%orchestrate -m openai:gpt-4o,anthropic:claude-sonnet-4-5 "
            "--name browser-feedback -o out\nSay hi slowly",
        ],
    )
    open_notebook(page, lab, path)
    run_cell(page, 0)
    wait_idle(lab, path)
    run_cell(page, 1)

    # Streamed text shows up before the answer is complete.
    gpt = answer_cell(page, 1, "openai:gpt-4o")
    partial = wait_until(
        lambda: (
            (text := gpt.locator(".mq-answer").inner_text()) and "w3" in text and text
        ),
        timeout=30,
        interval=0.05,
        what="streamed text",
    )
    assert "END" not in partial

    # Then every answer finishes; clicks are handled once the cell is done.
    wait_until(
        lambda: gpt.get_attribute("aria-label").endswith(": done"),
        timeout=60,
        what="gpt-4o done",
    )
    claude = answer_cell(page, 1, "anthropic:claude-sonnet-4-5")
    wait_until(
        lambda: claude.get_attribute("aria-label").endswith(": done"),
        timeout=60,
        what="claude done",
    )
    wait_idle(lab, path)
    assert "END" in gpt.locator(".mq-answer").inner_text()

    gpt.get_by_label("Thumbs up").click()
    claude.get_by_label("Rate 4 of 5").click()
    gpt.get_by_label("Pick this answer as the best for its item").click()
    for button in (
        gpt.get_by_label("Thumbs up"),
        claude.get_by_label("Rate 4 of 5"),
        gpt.get_by_label("Pick this answer as the best for its item"),
    ):
        wait_until(
            lambda b=button: b.get_attribute("aria-pressed") == "true",
            timeout=20,
            what="click reflected back",
        )

    # The rows are in the database, read from outside the kernel.
    run_id = run_id_named(lab, "browser-feedback")
    responses = dict(
        query(
            lab,
            "SELECT model_spec, id FROM model_responses WHERE run_id = ?",
            run_id,
        )
    )
    feedback = query(
        lab,
        "SELECT response_id, kind, value, rater FROM human_feedback "
        "JOIN model_responses ON model_responses.id = human_feedback.response_id "
        "WHERE run_id = ? ORDER BY kind",
        run_id,
    )
    assert feedback == [
        (responses["anthropic:claude-sonnet-4-5"], "rating", 4, "browser-rater"),
        (responses["openai:gpt-4o"], "thumbs", 1, "browser-rater"),
    ]
    decisions = query(
        lab,
        "SELECT item_index, strategy, winner_response_id, decided_by FROM decisions "
        "WHERE run_id = ?",
        run_id,
    )
    assert decisions == [(0, "human", responses["openai:gpt-4o"], "browser-rater")]
    assert page.page_errors == []


# --- C04: the toolbar's interrupt cancels the run ------------------------------


def test_toolbar_interrupt_cancels_the_run(
    lab: Lab, page: Any, fake: FakeLLMServer
) -> None:
    fake.responder = lambda request: Reply(
        chunks=[f"t{i} " for i in range(120)], chunk_delay=0.5
    )
    path = write_notebook(
        lab,
        "interrupt.ipynb",
        [
            setup_cell(fake)
            + "\nimport pandas as pd\nrows = pd.DataFrame({'q': ['a', 'b', 'c']})",
            "%%orchestrate -m openai:gpt-4o,anthropic:claude-sonnet-4-5 --over rows "
            "--name browser-interrupt -o out\nSlow answer about {{ q }}",
            "%%orchestrate -m echo --name browser-after -o after\nquick",
        ],
    )
    open_notebook(page, lab, path)
    run_cell(page, 0)
    wait_idle(lab, path)
    run_cell(page, 1)

    # Wait until the six streams are under way, then press the toolbar button.
    wait_until(
        lambda: "t2" in cell_output(page, 1).inner_text(),
        timeout=30,
        what="streams started",
    )
    page.locator(f'{ACTIVE} [data-command="notebook:interrupt-kernel"]').first.click()
    wait_idle(lab, path, timeout=20)
    try:
        wait_until(
            lambda: "cancelled after" in cell_output(page, 1).inner_text(),
            timeout=30,
            what="the interrupt reported in the cell",
        )
    except AssertionError as exc:
        shown = cell_output(page, 1).inner_text()[-1500:]
        runs = query(lab, "SELECT name, status FROM orchestration_contexts")
        raise AssertionError(f"{exc}\noutput tail: {shown!r}\nruns: {runs}") from None

    run_id = run_id_named(lab, "browser-interrupt")
    assert query(
        lab, "SELECT status FROM orchestration_contexts WHERE id = ?", run_id
    ) == [("cancelled",)]
    statuses = query(
        lab, "SELECT status, text FROM model_responses WHERE run_id = ?", run_id
    )
    assert len(statuses) == 6
    assert {status for status, _ in statuses} == {"cancelled"}
    assert any(text and text.startswith("t0 t1") for _, text in statuses)

    # No writes after the cancel, and the next cell runs normally.
    before = query(
        lab,
        "SELECT id, status, updated_at FROM model_responses WHERE run_id = ?",
        run_id,
    )
    run_cell(page, 2)
    try:
        wait_until(
            lambda: (
                answer_cell(page, 2, "echo").get_attribute("aria-label") == "echo: done"
            ),
            timeout=60,
            what="follow-up cell done",
        )
    except AssertionError as exc:
        cells = page.locator(f"{ACTIVE} .jp-Cell")
        shown = [cells.nth(i).inner_text()[-600:] for i in range(cells.count())]
        raise AssertionError(f"{exc}\ncells: {shown}") from None
    wait_idle(lab, path)
    after = query(
        lab,
        "SELECT id, status, updated_at FROM model_responses WHERE run_id = ?",
        run_id,
    )
    assert after == before
    assert query(
        lab,
        "SELECT status FROM orchestration_contexts WHERE name = 'browser-after'",
    ) == [("complete",)]


# --- C32: model output never runs script ----------------------------------------


def _export_html(notebook: Path, target: Path, *, keep_widget_state: bool) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    if not keep_widget_state:
        nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")
    return target


def test_xss_payloads_never_run(
    lab: Lab, page: Any, fake: FakeLLMServer, tmp_path: Path
) -> None:
    payloads = list(XSS.values())
    fake.responder = lambda request: Reply(
        text=next(p for key, p in XSS.items() if key in request.prompt)
    )
    path = write_notebook(
        lab,
        "xss.ipynb",
        [
            setup_cell(fake)
            + f"\nimport pandas as pd\nkinds = pd.DataFrame({{'kind': {list(XSS)!r}}})",
            "%%orchestrate -m openai:gpt-4o --over kinds --name browser-xss -o out\n"
            "Send the {{ kind }} payload",
            "from maquina_nb.notebook.widget import ComparisonWidget\n"
            "from maquina_nb.db import Repository\n"
            "w = ComparisonWidget.from_run(Repository.from_url(), out.run_id.iloc[0])\n"
            "from IPython.display import HTML\n"
            "HTML(w._repr_mimebundle_()[0]['text/html'])",
        ],
    )
    open_notebook(page, lab, path)
    for index in range(3):
        run_cell(page, index)
        wait_idle(lab, path)
    table = answer_cell(page, 1, "openai:gpt-4o")
    wait_until(
        lambda: (
            table.count() == 3
            and all(
                table.nth(i).get_attribute("aria-label").endswith(": done")
                for i in range(3)
            )
        ),
        timeout=60,
        what="three answers",
    )
    wait_until(
        lambda: "image payload" in cell_output(page, 2).inner_text(),
        timeout=30,
        what="static fallback shown",
    )

    # In the live widget and in the static fallback: no script ran, and the
    # javascript: link (if any survives as text) goes nowhere when clicked.
    assert pwned(page) is None
    outputs = f"{ACTIVE} .jp-OutputArea"
    assert page.locator(f"{outputs} script").count() == 0
    assert page.locator(f"{outputs} [onerror]").count() == 0
    assert page.locator(f"{outputs} img").count() == 0
    assert page.locator(f'{outputs} a[href^="javascript"]').count() == 0
    # The payloads are shown as text (escaped), not dropped.
    shown = cell_output(page, 1).inner_text()
    assert 'onerror="window.__pwned=1"' in shown
    assert "window.__pwned=3" in shown
    links = page.locator(f"{ACTIVE} .jp-OutputArea a", has_text="click")
    for i in range(links.count()):
        links.nth(i).click(modifiers=["Alt"])
    assert pwned(page) is None

    # Save, reopen the saved notebook: still nothing runs.
    page.keyboard.press("Control+s")
    wait_until(
        lambda: "__pwned" in (lab.root / path).read_text(),
        timeout=20,
        what="notebook saved",
    )
    page.reload()
    open_notebook(page, lab, path)
    page.wait_for_timeout(1500)
    assert pwned(page) is None

    # The nbconvert export, with and without the widget state.
    for keep in (True, False):
        exported = _export_html(
            lab.root / path, tmp_path / f"export-{keep}.html", keep_widget_state=keep
        )
        page.goto(exported.as_uri())
        page.wait_for_timeout(1000)
        assert pwned(page) is None
        text = page.locator("body").inner_text()
        assert "image payload" in text
        assert "script payload" in text
    assert len(payloads) == 3


# --- the dark theme --------------------------------------------------------------


def test_dark_theme_screenshot(lab: Lab, page: Any, tmp_path: Path) -> None:
    themes = "/lab/api/settings/@jupyterlab/apputils-extension:themes"
    lab.api("PUT", themes, {"raw": json.dumps({"theme": "JupyterLab Dark"})})
    try:
        path = write_notebook(
            lab,
            "dark.ipynb",
            [
                "%load_ext maquina_nb",
                "%%orchestrate -m echo,echo:second --name browser-dark -o out\n"
                "Show me **bold** and `code` in the dark",
            ],
        )
        open_notebook(page, lab, path)
        run_cell(page, 0)
        wait_idle(lab, path)
        run_cell(page, 1)
        wait_until(
            lambda: (
                answer_cell(page, 1, "echo:second").get_attribute("aria-label")
                == "echo:second: done"
            ),
            timeout=30,
            what="answers",
        )
        wait_idle(lab, path)
        page.wait_for_timeout(500)

        background = page.evaluate(
            "() => getComputedStyle(document.querySelector('.mq-cell'))"
            ".getPropertyValue('--jp-layout-color1').trim()"
        )
        shot = tmp_path / "dark-theme.png"
        cell_output(page, 1).screenshot(path=str(shot))
        page.screenshot(path=str(tmp_path / "dark-theme-page.png"))
        assert shot.stat().st_size > 0
        assert background.lower() in (
            "#111111",
            "var(--md-grey-900, #212121)",
            "#212121",
        )
        sys.stdout.write(f"dark-theme screenshot: {shot}\n")
    finally:
        lab.api("PUT", themes, {"raw": json.dumps({"theme": "JupyterLab Light"})})


def test_jupyter_server_is_loopback_only(lab: Lab) -> None:
    assert lab.url.startswith("http://127.0.0.1:")
    if shutil.which("ss") is None:
        pytest.skip("needs the ss tool (iproute2) to list listening sockets")
    listening = subprocess.run(
        ["ss", "-ltnp"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    port = lab.url.rsplit(":", 1)[1]
    lines = [line for line in listening.splitlines() if f":{port} " in line]
    assert lines
    assert all("127.0.0.1:" in line for line in lines)
