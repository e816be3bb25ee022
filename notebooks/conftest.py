"""Run every notebook in this folder under nbval as part of the suite.

``pytest`` (or ``make test``) collects ``notebooks/*.ipynb`` because
``testpaths`` names this folder; this file switches nbval on for them in lax
mode (only cells marked ``# NBVAL_CHECK_OUTPUT`` are compared), in the current
environment's kernel, with the sanitize rules in ``nbval_sanitize.cfg``. Pass
``--nbval`` yourself to compare every cell's output instead.

The notebooks run offline: API keys are removed from the environment the
kernel inherits (so no live model joins in), and their database is a
throwaway SQLite file instead of ``notebooks/maquina.db``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
_OFFLINE_UNSET = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OLLAMA_HOST",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
)


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not getattr(option, "nbval", False) and not getattr(option, "nbval_lax", False):
        option.nbval_lax = True
    option.nbval_current_env = True
    if not getattr(option, "nbval_sanitize_with", None):
        option.nbval_sanitize_with = str(_HERE / "nbval_sanitize.cfg")

    for name in _OFFLINE_UNSET:
        os.environ.pop(name, None)
    scratch = Path(tempfile.mkdtemp(prefix="maquina-nbval-"))
    config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))
    # The kernel nbval starts for a notebook inherits this process's environment.
    os.environ["MAQUINA_DB_URL"] = f"sqlite:///{scratch / 'maquina.db'}"
