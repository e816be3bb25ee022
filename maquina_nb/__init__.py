"""maquina_nb: compare large language models side by side from JupyterLab.

``%load_ext maquina_nb`` registers the ``%%orchestrate`` cell magic and the
``%maquina`` line magic. The same work runs without IPython::

    import maquina_nb

    run = maquina_nb.orchestrate("Say hi", ["echo", "replay:gpt-4"])
    run.to_pandas()

Importing the package is cheap: the SDKs, pandas and SQLAlchemy load only when a
name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "MaquinaError",
    "MultiModelOrchestrator",
    "Repository",
    "Run",
    "__version__",
    "ab_test",
    "aorchestrate",
    "create_db_engine",
    "last_run",
    "load_ipython_extension",
    "orchestrate",
    "register_model",
    "resolve_model",
    "unload_ipython_extension",
]

# Public name -> module that defines it. Resolved on first attribute access so that
# `%load_ext maquina_nb` stays fast (STYLE.md §1).
_LAZY = {
    "MaquinaError": "maquina_nb.errors",
    "Repository": "maquina_nb.db",
    "create_db_engine": "maquina_nb.db",
    "Run": "maquina_nb.orchestrator",
    "MultiModelOrchestrator": "maquina_nb.orchestrator",
    "orchestrate": "maquina_nb.orchestrator",
    "aorchestrate": "maquina_nb.orchestrator",
    "last_run": "maquina_nb.orchestrator",
    "register_model": "maquina_nb.providers",
    "resolve_model": "maquina_nb.providers",
    "ab_test": "maquina_nb.analysis.ab",
}

if TYPE_CHECKING:
    from maquina_nb.analysis.ab import ab_test
    from maquina_nb.db import Repository, create_db_engine
    from maquina_nb.errors import MaquinaError
    from maquina_nb.orchestrator import (
        MultiModelOrchestrator,
        Run,
        aorchestrate,
        last_run,
        orchestrate,
    )
    from maquina_nb.providers import register_model, resolve_model


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'maquina_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%orchestrate`` and ``%maquina`` (called by ``%load_ext``)."""
    from maquina_nb.notebook.extension import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics again (called by ``%unload_ext``)."""
    from maquina_nb.notebook.extension import unload_ipython_extension as _unload

    _unload(ipython)
