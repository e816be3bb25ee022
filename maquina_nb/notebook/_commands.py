"""The ``%maquina`` subcommands: models, check, history, show, feedback, config, db.

Each subcommand parses its own words with argparse (errors become exactly
``UsageError``), delegates to the layers below and returns what the notebook
should show — usually a DataFrame, or a widget for ``show``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from IPython.core.error import UsageError

from maquina_nb._redact import get_logger, redact
from maquina_nb.notebook._args import split_line

__all__ = ["SUBCOMMANDS", "dispatch"]

logger = get_logger(__name__)

_KEY_VARIABLES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OLLAMA_HOST")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}; run %maquina? for the subcommands.")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or f"{self.prog} stopped")


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """Show our own errors (an unknown model, a bad config file) as one UsageError line."""
    from maquina_nb.errors import MaquinaError

    try:
        yield
    except MaquinaError as exc:
        raise UsageError(str(exc)) from None


def _parser(name: str) -> _Parser:
    return _Parser(prog=f"%maquina {name}", add_help=False)


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default MAQUINA_DB_URL)"
    )


def _repository(url: str | None) -> Any:
    from maquina_nb.notebook._database import open_repository

    return open_repository(url)


def _cmd_models(shell: Any, words: Sequence[str]) -> Any:
    parser = _parser("models")
    parser.add_argument(
        "specs", nargs="*", help="specs to describe (default: all known)"
    )
    args = parser.parse_args(words)

    from maquina_nb.providers import list_models

    with _usage_errors():
        return list_models(args.specs or None)


def _default_specs() -> list[str]:
    specs = ["echo", "replay:gpt-4", "replay:claude-v1", "replay:gpt-3.5-turbo"]
    specs += ["replay:llama-13b", "claude", "gpt-4o", "llama"]
    return specs


def _cmd_check(shell: Any, words: Sequence[str]) -> Any:
    parser = _parser("check")
    parser.add_argument(
        "specs", nargs="*", help="model specs (default: the usual ones)"
    )
    parser.add_argument(
        "--live", action="store_true", help="make one small call per model"
    )
    args = parser.parse_args(words)

    from maquina_nb.providers import check_credentials

    with _usage_errors():
        return check_credentials(args.specs or _default_specs(), live=args.live)


def _cmd_history(shell: Any, words: Sequence[str]) -> Any:
    parser = _parser("history")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--name")
    parser.add_argument("--tag")
    parser.add_argument("--model")
    parser.add_argument("--since")
    parser.add_argument("--until")
    parser.add_argument("--cursor")
    _db_option(parser)
    args = parser.parse_args(words)
    if args.limit < 1:
        raise UsageError(
            f"%maquina history --limit must be at least 1, not {args.limit}."
        )

    filters: dict[str, Any] = {
        key: getattr(args, key)
        for key in ("name", "tag", "model")
        if getattr(args, key)
    }
    for key in ("since", "until"):
        if getattr(args, key):
            filters[key] = _timestamp(getattr(args, key), option=f"--{key}")

    repository = _repository(args.db)
    page = repository.list_runs(limit=args.limit, cursor=args.cursor, **filters)
    frame = _runs_table(page.runs)
    if page.next_cursor:
        frame.attrs["next_cursor"] = page.next_cursor
        from IPython.display import display

        display(frame)  # type: ignore[no-untyped-call]
        return _Note(f"More runs: %maquina history --cursor {page.next_cursor}")
    return frame


_HISTORY_COLUMNS = (
    "run_id",
    "created_at",
    "name",
    "status",
    "models",
    "tags",
    "item_count",
    "samples",
    "total_cost_usd",
)


def _runs_table(runs: Sequence[Any]) -> Any:
    import pandas as pd

    rows = [
        {
            "run_id": run.id,
            "created_at": run.created_at,
            "name": run.name,
            "status": run.status,
            "models": list(run.models or []),
            "tags": list(run.tags or []),
            "item_count": run.item_count,
            "samples": run.samples,
            "total_cost_usd": run.total_cost_usd,
        }
        for run in runs
    ]
    return pd.DataFrame(rows, columns=list(_HISTORY_COLUMNS))


def _timestamp(text: str, *, option: str) -> Any:
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise UsageError(
            f"%maquina history {option} {text!r} is not a date; use a form like 2026-05-01 "
            "or 2026-05-01T14:00."
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.to_pydatetime()


class _Note:
    """A short line shown as the cell's result."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _run_argument(name: str) -> tuple[_Parser, Callable[[Sequence[str]], Any]]:
    parser = _parser(name)
    parser.add_argument("run", metavar="RUN", help="a run id")
    _db_option(parser)
    return parser, parser.parse_args


def _get_run(repository: Any, run_id: str, *, db: str | None) -> Any:
    from maquina_nb.errors import StoreError

    try:
        return repository.get_run(run_id)
    except StoreError:
        # get_run's own sentence points at the Python API; say it in magics.
        where = "--db" if db else "MAQUINA_DB_URL"
        raise UsageError(
            f"No run with id {run_id!r} in this database; %maquina history lists "
            f"the stored ones (check {where} if it should be here)."
        ) from None


def _cmd_show(shell: Any, words: Sequence[str]) -> Any:
    parser, parse = _run_argument("show")
    parser.add_argument("--blind", action="store_true", help="hide model names")
    args = parse(words)
    repository = _repository(args.db)
    _get_run(repository, args.run, db=args.db)

    from maquina_nb.notebook.widget import ComparisonWidget

    return ComparisonWidget.from_run(repository, args.run, blind=args.blind)


def _cmd_feedback(shell: Any, words: Sequence[str]) -> Any:
    _, parse = _run_argument("feedback")
    args = parse(words)
    repository = _repository(args.db)
    _get_run(repository, args.run, db=args.db)
    return repository.feedback_frame(args.run)


def _cmd_config(shell: Any, words: Sequence[str]) -> Any:
    _parser("config").parse_args(words)

    import pandas as pd

    from maquina_nb import config

    rows = [
        ("database", redact(config.default_db_url())),
        ("rater", config.rater_name()),
        ("user config file", str(config.user_config_path())),
        ("project config file", str(config.find_project_config() or "none")),
    ]
    # Only whether a key is set, never its value (DESIGN.md decision 8).
    for name in _KEY_VARIABLES:
        value = os.environ.get(name, "")
        shown = "set" if value.strip() else "not set"
        if name == "OLLAMA_HOST" and value.strip():
            shown = redact(value.strip())
        rows.append((name, shown))
    return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")


def _cmd_db(shell: Any, words: Sequence[str]) -> Any:
    parser = _parser("db")
    parser.add_argument("action", choices=["upgrade"])
    _db_option(parser)
    args = parser.parse_args(words)

    from sqlalchemy.exc import SQLAlchemyError

    from maquina_nb.config import default_db_url
    from maquina_nb.db import make_engine
    from maquina_nb.db.migrate import describe_migration, upgrade
    from maquina_nb.errors import MaquinaError
    from maquina_nb.notebook._database import database_problem

    # make_engine, not create_db_engine: that one upgrades on open, and the
    # sentence below would never see the revision the database started at.
    url = str(args.db or default_db_url())
    try:
        engine = make_engine(url)
    except Exception as exc:  # a URL that cannot be read
        raise UsageError(database_problem(url, exc)) from None
    try:
        before, after = upgrade(engine)
    except (SQLAlchemyError, MaquinaError) as exc:  # no server, no login, too new …
        raise UsageError(database_problem(url, exc)) from None
    except Exception as exc:  # a migration of ours that failed
        raise UsageError(
            f"Could not upgrade {redact(url)!r}: {redact(str(exc)).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()
    return _Note(redact(describe_migration(url, before, after)))


def _cmd_stop(shell: Any, words: Sequence[str]) -> Any:
    _parser("stop").parse_args(words)

    from maquina_nb.notebook._runner import cancel_background

    stopped = cancel_background()
    if not stopped:
        return _Note("No background run is running.")
    return _Note(
        f"Stopped {len(stopped)} background run(s); what finished is stored "
        f"(see %maquina history) and in {', '.join(stopped)}."
    )


SUBCOMMANDS: dict[str, Callable[[Any, Sequence[str]], Any]] = {
    "models": _cmd_models,
    "check": _cmd_check,
    "history": _cmd_history,
    "show": _cmd_show,
    "feedback": _cmd_feedback,
    "config": _cmd_config,
    "db": _cmd_db,
    "stop": _cmd_stop,
}


def dispatch(shell: Any, line: str) -> Any:
    """Run the ``%maquina`` subcommand named first on ``line``."""
    words = split_line(line, magic="%maquina")
    if not words:
        raise UsageError(
            f"%maquina needs a subcommand: {', '.join(SUBCOMMANDS)}; run %maquina? for help."
        )
    command, rest = words[0], words[1:]
    handler = SUBCOMMANDS.get(command)
    if handler is None:
        raise UsageError(
            f"%maquina has no subcommand {command!r}; use one of "
            f"{', '.join(SUBCOMMANDS)} (see %maquina?)."
        )
    return handler(shell, rest)
