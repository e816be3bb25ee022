"""Run the app under a real uvicorn in a background thread (tests, benchmarks).

``maquina-nb serve`` runs uvicorn in the foreground; this helper is for code
that needs the server and its own work in one process, on a free loopback port.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["serve_in_thread"]


@contextlib.contextmanager
def serve_in_thread(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    start_timeout_s: float = 20.0,
    **config: Any,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yield its base URL.

    Args:
        app: the ASGI application.
        host: address to bind (loopback by default).
        port: port to bind; 0 picks a free one.
        start_timeout_s: how long to wait for uvicorn to be listening.
        **config: more ``uvicorn.Config`` settings.

    Raises:
        RuntimeError: uvicorn did not start in time.
    """
    import uvicorn

    config.setdefault("log_level", "warning")
    config.setdefault("lifespan", "on")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **config))
    # NOTE: uvicorn installs signal handlers only in the main thread; here the
    # caller's thread keeps them.
    thread = threading.Thread(target=server.run, name="maquina-nb-uvicorn", daemon=True)
    thread.start()

    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(
                f"uvicorn did not start on {host}:{port} within {start_timeout_s} s."
            )
        time.sleep(0.02)

    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
