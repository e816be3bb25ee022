"""The blind A/B widget in a real JupyterLab: anywidget loads pairwise.js, clicks vote.

Two prompt variants run on the offline ``echo`` model inside the notebook's
kernel; the votes are read from the database outside the kernel.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from tests.browser._lab import (
    Lab,
    cell_output,
    open_notebook,
    run_cell,
    wait_idle,
    wait_until,
    write_notebook,
)

pytestmark = pytest.mark.browser

SETUP = """\
import os
os.environ["MAQUINA_NB_PROGRESS"] = "0"
import pandas as pd
import maquina_nb
ab = maquina_nb.ab_test(
    {"A": "Briefly: {{ q }}", "B": "At length: {{ q }}"},
    "echo",
    over=pd.DataFrame({"q": ["first question", "second question"]}),
    name="lab-ab",
)"""


def _votes(lab: Lab) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(lab.db_path, timeout=10)
    try:
        return connection.execute(
            "SELECT v.winner, v.rater, l.text, r.text FROM pairwise_votes v "
            "JOIN model_responses l ON l.id = v.left_response_id "
            "JOIN model_responses r ON r.id = v.right_response_id "
            "JOIN orchestration_contexts c ON c.id = v.run_id "
            "WHERE c.name = 'lab-ab:A' ORDER BY v.created_at"
        ).fetchall()
    finally:
        connection.close()


def test_lab_blind_vote_is_stored_and_revealed(lab: Lab, page: Any) -> None:
    path = write_notebook(lab, "pairwise.ipynb", [SETUP, "ab.vote(seed=4)"])
    open_notebook(page, lab, path)
    run_cell(page, 0)
    wait_idle(lab, path)
    run_cell(page, 1)
    wait_idle(lab, path)

    view = cell_output(page, 1).locator(".mqp-root")
    wait_until(lambda: view.count() == 1, timeout=30, what="the pairwise view")
    assert view.locator(".mqp-progress").inner_text() == "Pair 1 of 2"
    assert "Briefly" in view.inner_text() or "At length" in view.inner_text()
    first_left = view.locator(".mqp-answer").nth(0).inner_text()

    # A click on the button, then a key press, each cast one vote.
    view.get_by_role("button", name="Left is better").click()
    wait_until(
        lambda: view.locator(".mqp-progress").inner_text() == "Pair 2 of 2",
        timeout=20,
        what="the second pair",
    )
    view.focus()
    page.keyboard.press("2")
    summary = view.locator("table.mqp-summary")
    wait_until(lambda: summary.count() == 1, timeout=20, what="the reveal")

    rows = summary.locator("tr")
    assert rows.count() == 3
    assert {rows.nth(i).inner_text().split("\t")[3] for i in (1, 2)} == {
        "left better",
        "tie",
    }
    votes = _votes(lab)
    assert [(winner, rater) for winner, rater, _, _ in votes] == [
        ("left", "browser-rater"),
        ("tie", "browser-rater"),
    ]
    assert votes[0][2] in first_left
    assert page.page_errors == []
