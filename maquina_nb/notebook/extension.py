"""Load and unload the IPython extension (``%load_ext maquina_nb``).

Loading registers ``%%orchestrate``, ``%maquina`` and a ``text/html`` formatter
that shows a ``Run`` as its comparison table (:mod:`.run_display`); the
orchestrator, the SDKs, pandas and SQLAlchemy are imported by the first cell
that needs them, so ``%load_ext`` costs a few milliseconds. The same happens
through ``c.InteractiveShellApp.extensions = ["maquina_nb"]`` in an IPython
profile.
"""

from __future__ import annotations

from typing import Any

from maquina_nb._redact import get_logger

__all__ = ["load_ipython_extension", "unload_ipython_extension"]

logger = get_logger(__name__)

_CELL_MAGICS = ("orchestrate",)
_LINE_MAGICS = ("maquina",)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the ``Run`` display on ``ipython`` (an ``InteractiveShell``)."""
    from maquina_nb.notebook import run_display
    from maquina_nb.notebook.magics import MaquinaMagics

    ipython.register_magics(MaquinaMagics)
    run_display.register(ipython)
    logger.debug("registered %%%%orchestrate and %%maquina")


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` registered."""
    manager = ipython.magics_manager
    for name in _CELL_MAGICS:
        manager.magics["cell"].pop(name, None)
    for name in _LINE_MAGICS:
        manager.magics["line"].pop(name, None)
    manager.registry.pop("MaquinaMagics", None)
    from maquina_nb.notebook import run_display

    run_display.unregister(ipython)
    logger.debug("removed the maquina_nb magics")
