"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["UtcDateTime", "json_type", "sqlite_timestamp", "utcnow"]


def json_type() -> TypeEngine[Any]:
    """Return a new JSON type: JSON on SQLite, JSONB on PostgreSQL.

    A new instance each time, because ``MutableDict.as_mutable`` and
    ``MutableList.as_mutable`` attach their listeners to the type instance.
    """
    # none_as_null: a Python None is stored as SQL NULL, not the JSON text 'null'.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def utcnow() -> dt.datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return dt.datetime.now(dt.timezone.utc)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that always goes in and comes out as timezone-aware UTC.

    PostgreSQL stores ``timestamptz`` and returns it in the session time zone;
    SQLite has no time zones and stores text. Either way the value read back is
    the same instant, converted to UTC, with microseconds kept. Naive datetimes
    are refused, since their zone is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """Use a naive DATETIME on SQLite and ``timestamptz`` elsewhere."""
        if dialect.name == "sqlite":
            return dialect.type_descriptor(DateTime(timezone=False))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Convert to UTC (naive on SQLite); refuse naive input."""
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            from maquina_nb.errors import InvalidFieldError

            raise InvalidFieldError(
                "timestamp", "value", value, "a timezone-aware datetime"
            )
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def sqlite_timestamp(value: dt.datetime) -> str:
    """Return ``value`` as the text :class:`UtcDateTime` stores on SQLite.

    Used by the bulk insert path, which bypasses SQLAlchemy's type processing.
    """
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        from maquina_nb.errors import InvalidFieldError

        raise InvalidFieldError(
            "timestamp", "value", value, "a timezone-aware datetime"
        )
    naive = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return naive.isoformat(sep=" ", timespec="microseconds")
