"""The read path of :meth:`Repository.list_runs`: cursors and detached runs from rows.

A page of runs is read with a plain Core ``SELECT`` and each row becomes a
detached :class:`OrchestrationContext` directly, without a session. Loaded
through the ORM, every JSON column value (five per run) is wrapped for change
tracking (``MutableList``/``MutableDict`` with a weak reference to its parent)
and every instance goes through the session's identity map, which together cost
more than the query itself. The runs a page returns are detached, so nothing
would ever be tracked: they get the plain decoded values instead. They are
otherwise what the ORM would give: every column attribute loaded, no history,
``inspect(run).detached`` true, relationships unloaded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.orm.attributes import instance_state

from maquina_nb.db.models import OrchestrationContext
from maquina_nb.errors import InvalidFieldError

__all__ = ["decode_cursor", "detached_runs", "encode_cursor", "runs_select"]

_MAPPER = inspect(OrchestrationContext)
# (attribute key, column) of every column attribute, e.g. ("metadata_", metadata).
_ATTRS = tuple((prop.key, prop.columns[0]) for prop in _MAPPER.column_attrs)
_KEYS = tuple(key for key, _ in _ATTRS)
_ID_POSITION = _KEYS.index("id")


def encode_cursor(created_at: dt.datetime, run_id: str) -> str:
    """Pack the last run of a page into an opaque, URL-safe cursor."""
    raw = f"{created_at.astimezone(dt.timezone.utc).isoformat()}|{run_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """Unpack a cursor from :func:`encode_cursor`.

    Raises:
        InvalidFieldError: ``cursor`` is not one :func:`encode_cursor` made
            (``.field == "cursor"``).
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, run_id = base64.urlsafe_b64decode(padded).decode().split("|")
        return dt.datetime.fromisoformat(stamp), run_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidFieldError(
            "list_runs",
            "cursor",
            cursor,
            "a next_cursor that list_runs returned",
            advice="pass the next_cursor of the previous page, or None to start over",
        ) from exc


def runs_select() -> Select[Any]:
    """Return ``SELECT`` of every run column, in the order :func:`detached_runs` reads."""
    return select(*(column for _, column in _ATTRS))


def detached_runs(rows: Iterable[Any]) -> list[OrchestrationContext]:
    """Turn rows of :func:`runs_select` into detached runs, in order."""
    manager = _MAPPER.class_manager
    identity_key = _MAPPER.identity_key_from_primary_key
    runs = []
    for row in rows:
        run = manager.new_instance()
        # Straight into the instance's dict: loaded state, no history, no events.
        run.__dict__.update(zip(_KEYS, row, strict=True))
        # An identity key and no session: detached, as after a closed session.
        instance_state(run).key = identity_key((row[_ID_POSITION],))
        runs.append(run)
    return runs
