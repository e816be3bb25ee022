"""The FastAPI application: :func:`create_app`.

Everything a route needs (repository, engine, token, live runs) hangs off
``app.state.maquina`` (:class:`ServerState`), so several apps over different
databases can live in one process (tests do this).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, WebSocket, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline

from maquina_nb import __version__
from maquina_nb._redact import get_logger, register_secret
from maquina_nb.errors import StoreError
from maquina_nb.server._hub import RunHub
from maquina_nb.server._security import (
    DEFAULT_MAX_ACTIVE_RUNS,
    DEFAULT_MAX_BODY_BYTES,
    LOOPBACK_HOSTS,
    BodySizeLimitMiddleware,
    HostCheckMiddleware,
    SecurityHeadersMiddleware,
    token_matches,
)
from maquina_nb.server.live import RunLauncher, stream_run
from maquina_nb.server.routes import api

__all__ = ["TOKEN_ENV", "ServerState", "create_app"]

logger = get_logger(__name__)

#: Environment variable holding the server's bearer token.
TOKEN_ENV = "MAQUINA_NB_SERVER_TOKEN"

_DESCRIPTION = """\
Read maquina_nb runs, responses, feedback and decisions; add ratings and
decisions; start a run; watch a run live over a WebSocket at
`/api/runs/{run_id}/events` (JSON events: `run_started`, `response_started`,
`text_delta`, `response_finished`, `response_failed`, `run_finished`).

When the server has a token, send it as `Authorization: Bearer <token>` (on the
WebSocket too, or as the subprotocol `bearer.<token>`).
"""


@dataclass
class ServerState:
    """What the routes share: storage, security settings and live runs."""

    repository: Any
    engine: Any
    token: str | None
    hub: RunHub
    launcher: RunLauncher
    allow_start_runs: bool
    poll_interval_s: float
    tail_max_s: float


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        # FastAPI's shape, minus the echoed input of oversized values and the
        # pydantic doc URL; "loc" names every field at fault.
        errors = []
        for error in exc.errors():
            entry = {
                "type": error.get("type"),
                "loc": list(error.get("loc", ())),
                "msg": error.get("msg"),
            }
            value = error.get("input")
            if isinstance(value, str | int | float | bool) and len(str(value)) <= 200:
                entry["input"] = value
            errors.append(entry)
        return JSONResponse(
            {"detail": errors}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
        )

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        logger.warning("store error on %s: %s", request.url.path, exc)
        return JSONResponse(
            {
                "detail": "The database could not answer; try again, or check the server log."
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )


def _websocket_token(websocket: WebSocket, token: str) -> tuple[bool, str | None]:
    """Check a WebSocket's token; return (ok, subprotocol to echo)."""
    if token_matches(token, websocket.headers.get("authorization")):
        return True, None
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith("bearer.") and token_matches(
            token, f"Bearer {offered[7:]}"
        ):
            return True, offered
    return False, None


def create_app(
    repository: Any = None,
    *,
    token: str | None = None,
    db_url: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allowed_hosts: Iterable[str] | None = None,
    allow_start_runs: bool = True,
    max_active_runs: int | None = DEFAULT_MAX_ACTIVE_RUNS,
    poll_interval_s: float = 0.5,
    tail_max_s: float = 6 * 3600.0,
    max_pending_events: int = 10_000,
) -> FastAPI:
    """Build the maquina_nb API over a repository.

    Args:
        repository: the :class:`~maquina_nb.db.Repository` to serve; default one
            over ``db_url`` (itself defaulting to ``MAQUINA_DB_URL``).
        token: require ``Authorization: Bearer <token>`` on every API route and
            WebSocket; default ``MAQUINA_NB_SERVER_TOKEN`` when set.
        db_url: database URL when no repository is given.
        max_body_bytes: larger request bodies answer 413.
        allowed_hosts: ``Host`` header values to answer (``"*"`` for any);
            default the loopback names, which defeats DNS rebinding.
        allow_start_runs: whether ``POST /api/runs`` may start runs.
        max_active_runs: most runs started over the API that may go on at once
            (``None``: no limit); ``POST /api/runs`` answers 429 beyond it.
        poll_interval_s: how often a WebSocket following a run written by
            another process polls the database.
        tail_max_s: how long such a WebSocket follows before asking the client
            to reconnect.
        max_pending_events: events a WebSocket client may fall behind a live
            run before it is closed (4008) and must reconnect.

    Returns:
        The FastAPI application (serve it with uvicorn, or ``maquina-nb serve``).
    """
    if repository is None:
        from maquina_nb.db import Repository

        repository = Repository.from_url(db_url)
    if token is None:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is not None:
        register_secret(token)

    hub = RunHub(queue_size=max_pending_events)
    launcher = RunLauncher(hub, repository, max_active_runs=max_active_runs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        yield
        # Runs still going are cancelled (they keep what finished, status
        # "cancelled"); waiting for them happens off the loop.
        await asyncio.to_thread(launcher.cancel_all)

    # /docs with its script, style and favicon served from the package
    # (FastAPI's own page loads them from CDNs: blank offline, and each visit
    # would tell outside hosts about it), without the online validator badge.
    # No /redoc: its page fetches a logo from its maker's CDN.
    app = FastAPIOffline(
        redoc_url=None,
        title="maquina_nb",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.maquina = ServerState(
        repository=repository,
        engine=repository.engine,
        token=token,
        hub=hub,
        launcher=launcher,
        allow_start_runs=allow_start_runs,
        poll_interval_s=poll_interval_s,
        tail_max_s=tail_max_s,
    )

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """Send a browser that opens the server's address to the API docs."""
        return RedirectResponse("/docs")

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        """Tell that the server is up (needs no token)."""
        return {"status": "ok", "version": __version__}

    app.include_router(api)

    @app.websocket("/api/runs/{run_id}/events")
    async def run_events(websocket: WebSocket, run_id: str) -> None:
        state: ServerState = websocket.app.state.maquina
        subprotocol = None
        if state.token is not None:
            ok, subprotocol = _websocket_token(websocket, state.token)
            if not ok:
                await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
                return
        await stream_run(websocket, state, run_id, subprotocol=subprotocol)

    _error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(
        HostCheckMiddleware,
        allowed=LOOPBACK_HOSTS if allowed_hosts is None else tuple(allowed_hosts),
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    return app
