"""Load the public pytest fixture the way users do."""

from __future__ import annotations

from maquina_nb.testing.pytest_plugin import fake_llm_server

__all__ = ["fake_llm_server"]
