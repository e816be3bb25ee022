"""``python -m maquina_nb.demo`` (``make demo``): the quickstart runs headless and leaves its files."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from maquina_nb import demo
from maquina_nb.testing import FakeLLMServer

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_demo_runs_offline_then_adds_a_live_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    with FakeLLMServer() as fake:
        # A "live" OpenAI account: the notebook adds gpt-4o when the key is set.
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-demo-key")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
        status = demo.main(["--output", "out"])
        asked = len(fake.requests_for(model="gpt-4o"))

    # capfd: the kernel is a child process writing to the same stderr.
    printed, warned = capfd.readouterr()
    out = tmp_path / "out"
    assert status == 0
    assert "WARNING" not in warned, warned
    for name in ("maquina.db", "quickstart.ipynb", "quickstart.html"):
        assert str(out / name) in printed
        assert (out / name).is_file()
    assert not (out / "maquina.db-wal").exists()

    with sqlite3.connect(out / "maquina.db") as connection:
        counts = dict(
            connection.execute(
                "SELECT model_spec, COUNT(*) FROM model_responses "
                "WHERE status = 'done' GROUP BY model_spec"
            ).fetchall()
        )
        feedback = connection.execute("SELECT COUNT(*) FROM human_feedback").fetchone()[
            0
        ]
    assert counts == {
        "replay:gpt-4": 10,
        "replay:claude-v1": 10,
        "replay:gpt-3.5-turbo": 10,
        "replay:llama-13b": 10,
        "echo": 10,
        "gpt-4o": 10,
    }
    assert asked == 20  # ten questions, two turns each
    assert feedback == 10

    html = (out / "quickstart.html").read_text(encoding="utf-8")
    assert 'class="maquina-static"' in html
    assert (
        re.search(r"<(script|link)\b[^>]*(src|href)=[\"']?(https?:)?//", html) is None
    )
    assert "sk-fake-demo-key" not in html
    assert "sk-fake-demo-key" not in (out / "quickstart.ipynb").read_text()


def test_demo_refuses_a_directory_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "thesis.tex").write_text("do not delete")

    assert demo.main(["--output", str(target)]) == 2
    assert "was not made by the demo" in capsys.readouterr().err
    assert (target / "thesis.tex").read_text() == "do not delete"
