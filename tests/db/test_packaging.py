"""C25: the wheel carries the migrations, and an installed copy migrates from anywhere.

Builds the wheel without network (hatchling from the dev venv), installs it with
no dependencies into a fresh venv under ``tmp_path``, and lets that venv find the
dependencies in the dev venv's site-packages through a ``.pth`` line (which does
not bring along the dev venv's editable maquina_nb). Then, from a folder with no
``alembic.ini`` in it, ``maquina-nb db upgrade --url sqlite:///x.db`` must work.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from maquina_nb.db.migrate import head_revision

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(600)]


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_installed_wheel_migrates_from_any_directory(tmp_path: Path) -> None:
    # Build.
    dist = tmp_path / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
        "--no-index", "-q", "-w", dist, REPO_ROOT, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = dist.glob("maquina_nb-*.whl")

    # The wheel's contents: every revision, env.py and the template.
    names = sorted(zipfile.ZipFile(wheel).namelist())
    shipped = [n for n in names if n.startswith("maquina_nb/_migrations/")]
    print("\n".join(shipped))  # listed in the test log, as C25 asks
    expected = {
        f"maquina_nb/_migrations/versions/{p.name}"
        for p in (REPO_ROOT / "alembic" / "versions").glob("*.py")
    }
    assert expected <= set(shipped)
    assert {
        "maquina_nb/_migrations/env.py",
        "maquina_nb/_migrations/script.py.mako",
    } <= set(shipped)
    assert "maquina_nb/cli.py" in names
    assert not [n for n in names if "__pycache__" in n]

    # A fresh venv with only the wheel installed; dependencies found through a .pth.
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = _run(
        python,
        "-c",
        "import sysconfig; print(sysconfig.get_path('purelib'))",
        cwd=tmp_path,
    ).strip()
    Path(purelib, "_dev_dependencies.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
        "--no-index", "-q", wheel, cwd=tmp_path,
    )  # fmt: skip

    # Somewhere else entirely, with no alembic.ini and no checkout on the path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    location = _run(
        python, "-c", "from maquina_nb.db.migrate import script_location; print(script_location())",
        cwd=elsewhere, env=env,
    ).strip()  # fmt: skip
    assert location == str(Path(purelib) / "maquina_nb" / "_migrations")

    out = _run(
        venv / "bin" / "maquina-nb",
        "db",
        "upgrade",
        "--url",
        "sqlite:///x.db",
        cwd=elsewhere,
        env=env,
    )
    assert out == (
        f"Upgraded sqlite:///x.db from base to {head_revision()} (the latest schema).\n"
    )
    with sqlite3.connect(elsewhere / "x.db") as connection:
        assert connection.execute(
            "SELECT version_num FROM alembic_version"
        ).fetchall() == [(head_revision(),)]
    assert not os.path.exists(elsewhere / "alembic.ini")

    # The default database, opened through the Python API (migrate on open).
    _run(
        python, "-c", "import maquina_nb; maquina_nb.Repository.from_url().list_runs()",
        cwd=elsewhere, env=env,
    )  # fmt: skip
    assert (elsewhere / "maquina.db").exists()
