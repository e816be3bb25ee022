"""``maquina-nb serve``: run the API with uvicorn.

The server listens on 127.0.0.1 unless told otherwise. Listening on any other
address needs a token (``--token``, ``--token-file`` or
``MAQUINA_NB_SERVER_TOKEN``): otherwise anyone on the network could read every
run and spend the server's API keys. A token can be required on loopback too.

This module imports neither FastAPI nor uvicorn until the command runs, so the
``maquina-nb`` command works without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger
from maquina_nb.errors import ConfigurationError
from maquina_nb.server._security import DEFAULT_MAX_ACTIVE_RUNS

__all__ = [
    "add_serve_parser",
    "bind_listener",
    "check_bind",
    "resolve_token",
    "run_serve",
    "serve",
    "startup_line",
]

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

logger = get_logger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_TOKEN_ENV = "MAQUINA_NB_SERVER_TOKEN"
_MIN_TOKEN_LENGTH = 16


def resolve_token(
    token: str | None = None, token_file: str | None = None
) -> str | None:
    """Return the token from the argument, a file, or the environment (in that order)."""
    if token:
        return token.strip()
    if token_file:
        try:
            value = Path(token_file).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"Could not read the token file {token_file!r} ({exc.strerror}); "
                "check the path and its permissions."
            ) from exc
        if not value:
            raise ConfigurationError(
                f"The token file {token_file!r} is empty; put the token in it."
            )
        return value
    return os.environ.get(_TOKEN_ENV, "").strip() or None


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token, or with a weak one.

    Raises:
        ConfigurationError: a non-loopback ``host`` without a token, or a token
            shorter than 16 characters.
    """
    from maquina_nb.server._security import is_loopback_host

    if token is not None and len(token) < _MIN_TOKEN_LENGTH:
        raise ConfigurationError(
            f"The server token is {len(token)} characters long; use at least "
            f"{_MIN_TOKEN_LENGTH} (python -c 'import secrets; print(secrets.token_urlsafe())')."
        )
    if not is_loopback_host(host) and token is None:
        raise ConfigurationError(
            f"Listening on {host!r} would let anyone who can reach it read every run "
            f"and start runs with this machine's API keys; set {_TOKEN_ENV} (or pass "
            "--token-file), or listen on 127.0.0.1."
        )


def startup_line(db_url: str | URL, host: str, port: int, token: str | None) -> str:
    """Say what is served where: the database (password masked) and the address."""
    from sqlalchemy.engine import make_url

    shown = make_url(db_url).render_as_string(hide_password=True)
    bare = host.strip("[]")
    address = f"[{bare}]" if ":" in bare else bare
    return (
        f"serving {shown} on http://{address}:{port} (token {'on' if token else 'off'})"
    )


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind the server's socket before anything says it is serving.

    Uvicorn binds only once it runs, after the start-up line, and then fails
    with its own errno text; binding here first lets the command end with one
    sentence instead, and without having opened the database.

    Raises:
        ConfigurationError: the port is taken, or the address cannot be used.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # As uvicorn does: a restart may reuse a port whose old connections linger.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError as exc:
        listener.close()
        raise ConfigurationError(_bind_failure(host, port, exc)) from None
    return listener


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"Port {port} on {host} is already in use; pick another with --port."
    if exc.errno == errno.EACCES:
        return (
            f"Listening on port {port} needs privileges this user lacks; "
            "pick a port above 1023 with --port."
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; pick one of its own "
            "addresses with --host (127.0.0.1 by default)."
        )
    return (
        f"Could not listen on {host} port {port} ({exc.strerror or exc}); "
        "check --host and --port."
    )


def _check_db_url(db_url: str | None) -> None:
    """Refuse a database URL that cannot be read before anything else starts.

    Raises:
        StoreError: the URL does not parse (a bad port, no dialect, …).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from maquina_nb.config import default_db_url
    from maquina_nb.db.connection_errors import unreadable_url_message
    from maquina_nb.errors import StoreError

    try:
        make_url(db_url or default_db_url())
    except (ArgumentError, ValueError) as exc:
        raise StoreError(unreadable_url_message(exc)) from None


def _log_config(level: str) -> dict[str, Any]:
    """Uvicorn's logging setup, plus maquina_nb's loggers on its console handler."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["maquina_nb"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def serve(
    *,
    db_url: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    max_body_bytes: int | None = None,
    allow_start_runs: bool = True,
    max_active_runs: int | None = None,
    log_level: str = "info",
) -> None:
    """Build the app and serve it until interrupted.

    Raises:
        ConfigurationError: see :func:`check_bind` and :func:`bind_listener`.
        StoreError: the database URL cannot be read.
    """
    import uvicorn

    from maquina_nb.server._security import (
        DEFAULT_MAX_BODY_BYTES,
        LOOPBACK_HOSTS,
        is_loopback_host,
    )
    from maquina_nb.server.app import create_app

    check_bind(host, token)
    _check_db_url(db_url)
    # A server has no terminal to draw tqdm bars on; the WebSocket shows progress.
    os.environ.setdefault("MAQUINA_NB_PROGRESS", "0")
    # On loopback the loopback names are always answered (and, unless more are
    # given, only they: no DNS rebinding); beyond it the token guards, and the
    # name clients use is not known in advance.
    if is_loopback_host(host):
        allowed_hosts = [*LOOPBACK_HOSTS, *(allowed_hosts or [])]
    elif allowed_hosts is None:
        allowed_hosts = ["*"]

    listener = bind_listener(host, port)
    try:
        app = create_app(
            db_url=db_url,
            token=token,
            allowed_hosts=allowed_hosts,
            max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            allow_start_runs=allow_start_runs,
            max_active_runs=max_active_runs,
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            # With maquina_nb's own loggers, or the startup line below (and any
            # warning) would reach no handler and never show.
            log_config=_log_config(log_level),
            proxy_headers=False,
            server_header=False,
            # Longer than uvicorn's 5 s, so that a busy client reusing a
            # connection does not race the server closing it (dashboards poll
            # every few seconds).
            timeout_keep_alive=30,
            # Clients never need to send more than a close frame on the event
            # stream.
            ws_max_size=65_536,
        )
        # After uvicorn.Config, which sets logging up; the port is the bound
        # one (--port 0 picks a free one).
        bound_port = int(listener.getsockname()[1])
        logger.info(
            "%s", startup_line(app.state.maquina.engine.url, host, bound_port, token)
        )
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to an argparse ``subparsers`` object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the REST/WebSocket API over a database",
        description=(
            "Serve runs, responses, feedback and decisions over HTTP, with a "
            "WebSocket stream of live runs. API docs at /docs."
        ),
    )
    parser.add_argument(
        "--db", dest="db_url", help="database URL (default: MAQUINA_DB_URL)"
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help="address to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        help=f"require this bearer token (prefer {_TOKEN_ENV} or --token-file: "
        "arguments show in the process list)",
    )
    parser.add_argument("--token-file", help="read the bearer token from this file")
    parser.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        help="Host header to answer (repeatable; '*' for any)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help="refuse larger request bodies (413)",
    )
    parser.add_argument(
        "--no-start-runs",
        dest="allow_start_runs",
        action="store_false",
        help="read and rate only; POST /api/runs answers 403",
    )
    parser.add_argument(
        "--max-active-runs",
        type=_active_runs,
        default=DEFAULT_MAX_ACTIVE_RUNS,
        metavar="N",
        help="most runs started over the API at once; more answer 429 "
        "(default: %(default)s; 0 for no limit)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="how much to log (default: %(default)s)",
    )
    parser.set_defaults(func=run_serve)
    return parser


def _active_runs(text: str) -> int | None:
    """Parse ``--max-active-runs``: a count, 0 meaning no limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number; give a count of runs, or 0 for no limit"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("give a count of runs, or 0 for no limit")
    return value or None


def run_serve(args: argparse.Namespace) -> int:
    """Run the ``serve`` subcommand; return the exit status."""
    try:
        token = resolve_token(args.token, args.token_file)
        serve(
            db_url=args.db_url,
            host=args.host,
            port=args.port,
            token=token,
            allowed_hosts=args.allowed_hosts,
            max_body_bytes=args.max_body_bytes,
            allow_start_runs=args.allow_start_runs,
            max_active_runs=args.max_active_runs,
            log_level=args.log_level,
        )
    except ConfigurationError as exc:
        sys.stderr.write(f"maquina-nb serve: {exc}\n")
        return 2
    except KeyboardInterrupt:
        # Ctrl+C: uvicorn has already shut down cleanly and said so; no traceback.
        return 130
    return 0
