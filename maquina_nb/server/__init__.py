"""The REST and WebSocket API over runs (the ``server`` extra).

``maquina-nb serve`` starts it; :func:`create_app` builds it for uvicorn or a
test client. FastAPI is imported only when :func:`create_app` is first used, so
``maquina-nb`` itself works without the ``server`` extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]

if TYPE_CHECKING:
    from maquina_nb.server.app import create_app


def __getattr__(name: str) -> Any:
    if name != "create_app":
        raise AttributeError(f"module 'maquina_nb.server' has no attribute {name!r}")
    try:
        module = importlib.import_module("maquina_nb.server.app")
    except ImportError as exc:
        if exc.name not in ("fastapi", "starlette", "uvicorn"):
            raise
        from maquina_nb.errors import ConfigurationError

        raise ConfigurationError(
            f"The server needs {exc.name!r}, which is not installed; install the "
            "server extra (pip install -e '.[server]' in the maquina_nb checkout)."
        ) from exc
    return module.create_app
