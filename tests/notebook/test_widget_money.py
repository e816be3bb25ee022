"""The widget writes dollar amounts exactly as the Python side does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import maquina_nb
from maquina_nb._money import usd

WIDGET = Path(maquina_nb.__file__).parent / "notebook" / "static" / "widget.js"
AMOUNTS = [
    0,
    0.00002,
    0.000123456,
    0.0042,
    0.05,
    0.5,
    0.999,
    1,
    12.345678,
    1234.5,
    9876543.21,
    3e-10,
    -0.0042,
    -15.2,
]


def test_widget_money_matches_python_usd(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed to run the widget's own code; install nodejs.")
    module = tmp_path / "widget.mjs"
    module.write_text(WIDGET.read_text(encoding="utf-8"), encoding="utf-8")
    script = (
        f"import {{ money }} from {json.dumps(module.as_uri())};"
        f"console.log(JSON.stringify({json.dumps(AMOUNTS)}.map(money).concat(money(null))));"
    )

    result = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert json.loads(result.stdout) == [usd(a) for a in AMOUNTS] + [
        "\u2013"
    ]  # an en dash for "no cost"
