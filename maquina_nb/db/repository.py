"""The repository: the one place where maquina_nb reads and writes its tables.

Every method is synchronous, safe to call from several threads, and runs in its
own short transaction. Writers take SQLite's write lock up front
(``BEGIN IMMEDIATE``) and wait up to the busy timeout for another writer, so
two kernels writing into one file take turns instead of failing with
"database is locked". Objects returned are detached from any session:
:meth:`Repository.get_run` loads a run's responses, their feedback and its
decisions before returning, so they can be read after the call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import platform
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import selectinload, sessionmaker

from maquina_nb._redact import get_logger
from maquina_nb.db import export
from maquina_nb.db._bulk import RESPONSE_COLUMNS, insert_sqlite, prepare_responses
from maquina_nb.db._paging import (
    decode_cursor,
    detached_runs,
    encode_cursor,
    runs_select,
)
from maquina_nb.db.models import (
    Decision,
    HumanFeedback,
    ModelResponse,
    OrchestrationContext,
)
from maquina_nb.db.validation import check_feedback
from maquina_nb.errors import InvalidFieldError, MaquinaError, StoreError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESPONSE_COLUMNS", "Repository", "RunPage"]

logger = get_logger(__name__)

_RESPONSES = typing.cast(Table, ModelResponse.__table__)
_RUNS = typing.cast(Table, OrchestrationContext.__table__)
_RUN_FIELDS = frozenset(
    attr.key
    for attr in OrchestrationContext.__mapper__.column_attrs
    if attr.key not in {"id", "created_at", "updated_at"}
)
_SDK_PACKAGES = ("anthropic", "openai", "sqlalchemy", "alembic", "pandas")
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of :meth:`Repository.list_runs`, newest run first."""

    runs: list[OrchestrationContext]
    """Up to ``limit`` runs."""
    next_cursor: str | None
    """Pass as ``cursor=`` for the next page; None on the last page."""


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[str, dict[str, str | None]]:
    from maquina_nb import __version__

    sdks: dict[str, str | None] = {"python": platform.python_version()}
    for name in _SDK_PACKAGES:
        try:
            sdks[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            sdks[name] = None
    return __version__, sdks


def _json_list_contains(engine: Engine, column: Any, value: str) -> ColumnElement[bool]:
    if engine.dialect.name == "postgresql":
        contains: ColumnElement[bool] = cast(column, JSONB).contains([value])
        return contains
    each = func.json_each(column).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == value))


@contextlib.contextmanager
def _plain_errors() -> Iterator[None]:
    """Re-raise our own errors that SQLAlchemy wrapped while binding values.

    A naive datetime, say, fails inside a column type's bind step, and
    SQLAlchemy wraps that in a ``StatementError``; the caller should see the
    :class:`~maquina_nb.errors.InvalidFieldError` itself.
    """
    try:
        yield
    except StatementError as exc:
        if isinstance(exc.orig, MaquinaError):
            raise exc.orig from exc
        raise


class Repository:
    """Reads and writes runs, responses, feedback and decisions.

    Args:
        engine: An engine from :func:`maquina_nb.db.create_db_engine` (already at
            the latest schema).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(sqlite_immediate=True)
        self._read_session = sessionmaker(engine, expire_on_commit=False)
        self._write_session = sessionmaker(self._writer, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str | None = None) -> Repository:
        """Open (and upgrade) the database at ``url`` (default as in config).

        Raises:
            StoreError: the database cannot be opened: the server does not
                answer, refuses the login, has no such database, or the URL
                does not parse. The message says what to fix, without the
                password.
        """
        from sqlalchemy.exc import ArgumentError, DBAPIError

        from maquina_nb.config import default_db_url
        from maquina_nb.db.connection_errors import explain_database_error
        from maquina_nb.db.engine import create_db_engine

        try:
            return cls(create_db_engine(url))
        except (DBAPIError, ArgumentError) as exc:
            message = explain_database_error(url or default_db_url(), exc)
            raise StoreError(message) from None

    def __repr__(self) -> str:
        return f"Repository({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- runs ---------------------------------------------------------------

    def add_run(
        self,
        *,
        name: str,
        template: str,
        system_prompt: str | None,
        models: Sequence[str],
        parameters: Mapping[str, Any],
        tags: Sequence[str],
        item_count: int,
        samples: int,
        status: str = "running",
        estimated_cost_usd: float | None = None,
        max_cost_usd: float | None = None,
        notebook_path: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a new run and return its id.

        The package and SDK versions are filled in here.
        """
        package_version, sdk_versions = _versions()
        run = OrchestrationContext(
            name=name,
            template=template,
            system_prompt=system_prompt,
            models=list(models),
            parameters=dict(parameters),
            tags=list(tags),
            item_count=item_count,
            samples=samples,
            status=status,
            estimated_cost_usd=estimated_cost_usd,
            max_cost_usd=max_cost_usd,
            notebook_path=notebook_path,
            package_version=package_version,
            sdk_versions=dict(sdk_versions),
            metadata_=dict(metadata or {}),
        )
        with _plain_errors(), self._write_session.begin() as session:
            session.add(run)
        logger.debug("stored run %s with %d models", run.id, len(run.models))
        return run.id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change a run's fields (``status``, ``finished_at``, ``total_cost_usd`` …).

        Raises:
            StoreError: no run has this id, or a field name is unknown.
        """
        if "metadata" in fields:
            fields["metadata_"] = fields.pop("metadata")
        unknown = sorted(set(fields) - _RUN_FIELDS)
        if unknown:
            raise StoreError(
                f"update_run got unknown field(s) {unknown!r}; "
                f"use some of {sorted(_RUN_FIELDS)!r}."
            )
        with _plain_errors(), self._write_session.begin() as session:
            run = session.get(OrchestrationContext, run_id)
            if run is None:
                raise self._no_run(run_id)
            for key, value in fields.items():
                setattr(run, key, value)

    def get_run(self, run_id: str) -> OrchestrationContext:
        """Return a run with its responses (and their feedback) and decisions."""
        with self._read_session() as session:
            run = session.get(
                OrchestrationContext,
                run_id,
                options=[
                    selectinload(OrchestrationContext.responses).selectinload(
                        ModelResponse.feedback
                    ),
                    selectinload(OrchestrationContext.decisions),
                ],
            )
            if run is None:
                raise self._no_run(run_id)
            return run

    def delete_run(self, run_id: str) -> None:
        """Delete a run, its responses, their feedback and its decisions."""
        with self._writer.begin() as connection:
            result = connection.execute(delete(_RUNS).where(_RUNS.c.id == run_id))
            if result.rowcount == 0:
                raise self._no_run(run_id)
        logger.info("deleted run %s", run_id)

    def list_runs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        name: str | None = None,
        tag: str | None = None,
        model: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> RunPage:
        """Return one page of runs, newest first (keyset on ``created_at, id``).

        Args:
            limit: Page size (1 to 1000).
            cursor: ``next_cursor`` of the previous page.
            name: Exact run name; ``*`` matches any characters.
            tag: Only runs carrying this tag.
            model: Only runs that used this model spec.
            since: Only runs created at or after this aware datetime.
            until: Only runs created before this aware datetime.
        """
        if not 1 <= limit <= 1000:
            raise InvalidFieldError("list_runs", "limit", limit, "from 1 to 1000")
        table = OrchestrationContext.__table__
        # Plain rows made into detached runs (see db/_paging.py): the ORM's
        # change tracking of five JSON columns per run cost more than the query.
        stmt = runs_select().order_by(table.c.created_at.desc(), table.c.id.desc())
        for condition in self._run_filters(name, tag, model, since, until):
            stmt = stmt.where(condition)
        if cursor is not None:
            stamp, last_id = decode_cursor(cursor)
            stmt = stmt.where(
                tuple_(table.c.created_at, table.c.id)
                < tuple_(literal(stamp, table.c.created_at.type), literal(last_id))
            )

        with self.engine.connect() as connection:
            runs = detached_runs(connection.execute(stmt.limit(limit + 1)))
        next_cursor = None
        if len(runs) > limit:
            runs = runs[:limit]
            next_cursor = encode_cursor(runs[-1].created_at, runs[-1].id)
        return RunPage(runs=runs, next_cursor=next_cursor)

    def _run_filters(
        self,
        name: str | None,
        tag: str | None,
        model: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
    ) -> list[ColumnElement[bool]]:
        table = OrchestrationContext.__table__
        conditions: list[ColumnElement[bool]] = []
        if name is not None:
            if "*" in name:
                escaped = (
                    name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                )
                conditions.append(
                    table.c.name.like(escaped.replace("*", "%"), escape="\\")
                )
            else:
                conditions.append(table.c.name == name)
        if tag is not None:
            conditions.append(_json_list_contains(self.engine, table.c.tags, tag))
        if model is not None:
            conditions.append(_json_list_contains(self.engine, table.c.models, model))
        if since is not None:
            conditions.append(table.c.created_at >= since)
        if until is not None:
            conditions.append(table.c.created_at < until)
        return conditions

    # -- responses ------------------------------------------------------------

    def add_responses(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """Insert responses in one transaction and return their ids, in order.

        Keys are ``model_responses`` column names (:data:`RESPONSE_COLUMNS`);
        ``id`` may be given, and missing optional keys take their defaults.
        Every row is checked as the ORM would, then all are written with one
        executemany (no ORM unit of work), which is what makes it fast.

        Raises:
            InvalidFieldError: a value is out of range (nothing is written).
            StoreError: a key is unknown, or a run id does not exist.
        """
        if not rows:
            return []
        records = prepare_responses(rows)

        try:
            with _plain_errors(), self._writer.begin() as connection:
                if connection.dialect.name == "sqlite":
                    insert_sqlite(connection, records)
                else:
                    connection.execute(insert(_RESPONSES), records)
        except IntegrityError as exc:
            run_ids = sorted({str(record["run_id"]) for record in records})
            raise StoreError(
                f"Could not store {len(records)} responses for run(s) {run_ids!r}: "
                f"{exc.orig}. Check that the run exists and ids are unique."
            ) from exc
        return [str(record["id"]) for record in records]

    def find_cached(self, cache_keys: Iterable[str]) -> dict[str, ModelResponse]:
        """Return the newest reusable response for each key that has one.

        Reusable means status ``done``, no error and not truncated; answers
        copied from the cache (status ``cached``) point at their source instead.
        """
        keys = sorted({key for key in cache_keys if key})
        found: dict[str, ModelResponse] = {}
        with self._read_session() as session:
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                stmt = (
                    select(ModelResponse)
                    .where(
                        ModelResponse.cache_key.in_(chunk),
                        ModelResponse.status == "done",
                        ModelResponse.error_kind.is_(None),
                        or_(
                            ModelResponse.finish_reason.is_(None),
                            ModelResponse.finish_reason != "length",
                        ),
                    )
                    .order_by(ModelResponse.created_at.desc(), ModelResponse.id.desc())
                )
                for response in session.scalars(stmt):
                    found.setdefault(str(response.cache_key), response)
        return found

    # -- feedback and decisions ---------------------------------------------

    def record_feedback(
        self,
        response_id: str,
        kind: str,
        value: int | None = None,
        *,
        comment: str | None = None,
        label: str | None = None,
        rater: str,
    ) -> str:
        """Store one piece of feedback on a response and return its id."""
        check_feedback(kind, value, comment, label)
        feedback = HumanFeedback(
            response_id=response_id,
            kind=kind,
            value=value,
            comment=comment,
            label=label,
            rater=rater,
        )
        self._add(feedback, f"response {response_id!r}")
        return feedback.id

    def record_decision(
        self,
        run_id: str,
        item_index: int,
        strategy: str,
        *,
        winner_response_id: str | None = None,
        decided_by: str,
        rationale: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Store which response won an item (None for a tie) and return its id."""
        decision = Decision(
            run_id=run_id,
            item_index=item_index,
            strategy=strategy,
            winner_response_id=winner_response_id,
            decided_by=decided_by,
            rationale=rationale,
            details=dict(details or {}),
        )
        self._add(decision, f"run {run_id!r} / response {winner_response_id!r}")
        return decision.id

    def _add(self, obj: HumanFeedback | Decision, target: str) -> None:
        try:
            with _plain_errors(), self._write_session.begin() as session:
                session.add(obj)
        except IntegrityError as exc:
            raise StoreError(
                f"Could not store the {type(obj).__name__} for {target}: it does not "
                "exist (was its run deleted?)."
            ) from exc

    # -- exports -----------------------------------------------------------

    def runs_frame(
        self,
        *,
        name: str | None = None,
        tag: str | None = None,
        model: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> pd.DataFrame:
        """Return runs as a DataFrame (see :func:`maquina_nb.db.export.runs_frame`)."""
        conditions = self._run_filters(name, tag, model, since, until)
        return export.runs_frame(self.engine, and_(*conditions) if conditions else None)

    def responses_frame(
        self, run_id: str | None = None, *, audit: bool = False
    ) -> pd.DataFrame:
        """Return responses, one row each (see :func:`maquina_nb.db.export.responses_frame`)."""
        return export.responses_frame(self.engine, run_id, audit=audit)

    def feedback_frame(self, run_id: str | None = None) -> pd.DataFrame:
        """Return feedback rows (see :func:`maquina_nb.db.export.feedback_frame`)."""
        return export.feedback_frame(self.engine, run_id)

    def decisions_frame(self, run_id: str | None = None) -> pd.DataFrame:
        """Return decisions (see :func:`maquina_nb.db.export.decisions_frame`)."""
        return export.decisions_frame(self.engine, run_id)

    def comparison_frame(self, run_id: str, value: str = "text") -> pd.DataFrame:
        """Return items by models (see :func:`maquina_nb.db.export.comparison_frame`)."""
        run = self.get_run(run_id)
        return export.comparison_frame(
            self.engine, run_id, value, models=list(run.models)
        )

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _no_run(run_id: str) -> StoreError:
        return StoreError(
            f"No run with id {run_id!r} in this database; Repository.list_runs() "
            "shows the stored ones (check MAQUINA_DB_URL if it should be here)."
        )
