"""The orchestrator: plan items x models x samples, cache, budget, fan out, persist.

``orchestrate()`` (sync, safe in a running kernel) and ``aorchestrate()`` (its
async twin) are the Python API; :class:`MultiModelOrchestrator` is the engine
behind them and behind ``%%orchestrate``. Events for live consumers are in
:mod:`maquina_nb.orchestrator.events`.
"""

from __future__ import annotations

from maquina_nb.orchestrator.api import aorchestrate, last_run, orchestrate
from maquina_nb.orchestrator.engine import MultiModelOrchestrator
from maquina_nb.orchestrator.run import Response, Run, RunTotals

__all__ = [
    "MultiModelOrchestrator",
    "Response",
    "Run",
    "RunTotals",
    "aorchestrate",
    "last_run",
    "orchestrate",
]
