"""The public names are exactly what ``__all__`` says, and importing is cheap."""

from __future__ import annotations

import subprocess
import sys

import maquina_nb


def test_public_names_match_all() -> None:
    assert dir(maquina_nb) == sorted(maquina_nb.__all__)
    assert len(set(maquina_nb.__all__)) == len(maquina_nb.__all__)


def test_every_public_name_resolves() -> None:
    for name in maquina_nb.__all__:
        assert getattr(maquina_nb, name) is not None, name


def test_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, maquina_nb; "
        "heavy = [m for m in ('pandas', 'sqlalchemy', 'openai', 'anthropic', 'genai_prices')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == ""
