"""The ``maquina-nb`` command.

Subcommands (each added by its own ``_add_*_parser`` function)::

    maquina-nb db upgrade [REV] [--db URL] [--sql]   to head by default
    maquina-nb db downgrade REV [--db URL] [--sql] [--force]   e.g. -1, 0001, base
    maquina-nb db current [--db URL]
    maquina-nb db history
    maquina-nb serve ...                              the REST/WebSocket API

The database defaults to ``MAQUINA_DB_URL``, else ``sqlite:///maquina.db`` in the
working directory. ``--db`` is the option's name everywhere (``serve``,
``%%orchestrate``, ``%maquina db``); ``--url`` is kept as its older spelling. The Alembic configuration is built in code, so no
``alembic.ini`` is needed wherever the command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maquina_nb._redact import get_logger
from maquina_nb.errors import MaquinaError

__all__ = ["build_parser", "main"]

logger = get_logger(__name__)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _db_url(args: argparse.Namespace) -> str:
    """Return the database URL to use, refusing one that cannot be read.

    Raises:
        StoreError: the URL does not parse (a bad port, no dialect, …).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from maquina_nb.config import default_db_url
    from maquina_nb.db.connection_errors import unreadable_url_message
    from maquina_nb.errors import StoreError

    url = str(args.url or default_db_url())
    try:
        make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(unreadable_url_message(exc)) from None
    return url


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _require_existing_file(url: str) -> None:
    """Refuse a SQLite URL whose file does not exist (looking must not create it).

    Raises:
        StoreError: the URL names a SQLite file that is not there.
    """
    from sqlalchemy.engine import make_url

    from maquina_nb.errors import StoreError

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return
    if database.startswith("file:"):  # a SQLite URI: the driver decides
        return
    path = Path(database).expanduser().resolve()
    if not path.exists():
        raise StoreError(
            f"No database file at {str(path)!r}; check the URL (--db or "
            "MAQUINA_DB_URL), or create it with 'maquina-nb db upgrade'."
        )


def _run_migration(args: argparse.Namespace, direction: str) -> int:
    from alembic import command
    from maquina_nb.db import migrate
    from maquina_nb.db.engine import make_engine

    url = _db_url(args)
    if args.sql:
        # Offline: print the SQL; nothing connects to the database.
        config = migrate.make_config(url, stdout=sys.stdout)
        if direction == "upgrade":
            command.upgrade(config, args.revision, sql=True)
        else:
            command.downgrade(config, args.revision, sql=True)
        return 0

    if direction == "downgrade":
        _require_existing_file(url)
    engine = make_engine(url)
    backups: list[Path] = []
    try:
        if direction == "upgrade":
            before, after = migrate.upgrade(engine, args.revision)
        else:
            before, after = migrate.downgrade(
                engine, args.revision, force=args.force, on_backup=backups.append
            )
    finally:
        engine.dispose()
    said = migrate.describe_migration(url, before, after, direction=direction)
    if backups and getattr(args, "force", False):
        # Rows may have gone with --force: say where the file as it was is kept.
        said = f"{said[:-1]}; the file as it was is kept at {str(backups[0])!r}."
    _say(said)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    return _run_migration(args, "upgrade")


def _db_downgrade(args: argparse.Namespace) -> int:
    return _run_migration(args, "downgrade")


def _db_current(args: argparse.Namespace) -> int:
    from maquina_nb.db import migrate
    from maquina_nb.db.engine import make_engine

    url = _db_url(args)
    _require_existing_file(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            revision = migrate.current_revision(connection)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    if revision is None:
        note = "empty (no schema yet)"
    elif revision == head:
        note = f"{revision} (head)"
    else:
        note = f"{revision} (head is {head})"
    _say(f"{_shown(url)}: {note}")
    return 0


def _db_history(args: argparse.Namespace) -> int:
    from alembic import command
    from maquina_nb.db import migrate

    command.history(migrate.make_config(stdout=sys.stdout), verbose=args.verbose)
    return 0


def _add_db_parser(subparsers: Any) -> None:
    db = subparsers.add_parser(
        "db", help="upgrade, downgrade or inspect the database schema"
    )
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)

    def with_url(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        # --db as in serve and the notebook; --url, the older name, still works.
        parser.add_argument(
            "--db",
            "--url",
            dest="url",
            metavar="URL",
            help="database URL (default: MAQUINA_DB_URL, else sqlite:///maquina.db)",
        )
        return parser

    upgrade = with_url(
        actions.add_parser("upgrade", help="upgrade to a revision (default head)")
    )
    upgrade.add_argument("revision", nargs="?", default="head", help="target revision")
    upgrade.add_argument(
        "--sql", action="store_true", help="print the SQL instead of running it"
    )
    upgrade.set_defaults(func=_db_upgrade)

    downgrade = with_url(
        actions.add_parser("downgrade", help="downgrade to a revision")
    )
    downgrade.add_argument("revision", help="target revision: -1, 0001, base …")
    downgrade.add_argument(
        "--sql",
        action="store_true",
        help="print the SQL instead of running it (give REV as FROM:TO)",
    )
    downgrade.add_argument(
        "--force",
        action="store_true",
        help="go ahead even if the downgrade deletes rows (refused otherwise); "
        "a SQLite file is copied first",
    )
    downgrade.set_defaults(func=_db_downgrade)

    current = with_url(
        actions.add_parser("current", help="show the database's revision")
    )
    current.set_defaults(func=_db_current)

    history = actions.add_parser("history", help="list the shipped revisions")
    history.add_argument("--db", "--url", dest="url", help=argparse.SUPPRESS)
    history.add_argument("-v", "--verbose", action="store_true", help="show details")
    history.set_defaults(func=_db_history)


def _add_serve_parser(subparsers: Any) -> None:
    from maquina_nb.server.cli import add_serve_parser

    add_serve_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``maquina-nb``."""
    from maquina_nb import __version__

    parser = argparse.ArgumentParser(
        prog="maquina-nb",
        description="Compare LLMs from JupyterLab: storage and server tools.",
    )
    parser.add_argument(
        "--version", action="version", version=f"maquina-nb {__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_db_parser(subparsers)
    _add_serve_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``maquina-nb``; return the exit status."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from maquina_nb.errors import StoreError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MaquinaError as exc:
        sys.stderr.write(f"maquina-nb: {exc}\n")
        return 1
    except SQLAlchemyError as exc:
        from maquina_nb.config import default_db_url
        from maquina_nb.db.connection_errors import explain_database_error

        url = getattr(args, "url", None) or getattr(args, "db_url", None)
        error = StoreError(explain_database_error(url or default_db_url(), exc))
        sys.stderr.write(f"maquina-nb: {error}\n")
        return 1
    except CommandError as exc:
        sys.stderr.write(f"maquina-nb: {exc}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
