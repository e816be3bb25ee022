"""The bulk insert path for responses: rows checked and converted in Python.

SQLAlchemy's per-row parameter processing costs more than SQLite's insert
itself, so :func:`insert_sqlite` converts values to their storage form here,
exactly as the column types would, and hands one ``executemany`` to the driver.
Other databases get a Core ``insert`` with the same prepared rows.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table

from maquina_nb.db.ids import new_ids
from maquina_nb.db.models import ModelResponse
from maquina_nb.db.types import sqlite_timestamp, utcnow
from maquina_nb.db.validation import (
    check_response_row,
    clean_json,
    clean_row,
    json_needs_cleaning,
)
from maquina_nb.errors import StoreError

__all__ = ["RESPONSE_COLUMNS", "insert_sqlite", "prepare_responses"]

_RESPONSES = typing.cast(Table, ModelResponse.__table__)
#: The keys ``add_responses`` accepts: the ``model_responses`` column names.
RESPONSE_COLUMNS: tuple[str, ...] = tuple(column.name for column in _RESPONSES.columns)
_RESPONSE_DEFAULTS: dict[str, Any] = {
    "sample_index": 0,
    "request_parameters": {},
    "messages": [],
    "variables": {},
    "cost_is_estimate": False,
}
_JSON_POSITIONS = tuple(
    index
    for index, name in enumerate(RESPONSE_COLUMNS)
    if name in {"request_parameters", "messages", "variables", "tool_calls"}
)
# Text that may come from a model or a provider (ids and statuses are ours).
_FREE_TEXT = tuple(
    name
    for name in (
        "text",
        "error_message",
        "model_spec",
        "provider",
        "model_id",
        "finish_reason",
        "raw_finish_reason",
    )
    if name in RESPONSE_COLUMNS
)
_STAMP_POSITIONS = tuple(
    RESPONSE_COLUMNS.index(name) for name in ("created_at", "updated_at")
)
_BOOL_POSITION = RESPONSE_COLUMNS.index("cost_is_estimate")
_SQLITE_INSERT = (
    f"INSERT INTO model_responses ({', '.join(RESPONSE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RESPONSE_COLUMNS))})"
)
# check_circular=False nearly halves the cost of encoding small dicts; a circular
# value still fails (RecursionError), just later.
_JSON_ENCODER = json.JSONEncoder(check_circular=False)


def _make_dumps() -> Callable[[Any], str]:
    """Return the fastest JSON encoder that gives exactly ``json.dumps``'s text.

    ``JSONEncoder.encode`` builds a new C encoder on every call, which costs as
    much as encoding a small dict; this builds it once. The C encoder is an
    implementation detail of CPython's json module, so it is used only when
    present and when it encodes a probe value exactly as the public API does.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - not CPython
        return _JSON_ENCODER.encode
    try:
        fast = make(
            None,  # no circular check, as check_circular=False
            _JSON_ENCODER.default,
            json.encoder.encode_basestring_ascii,
            None,  # indent
            _JSON_ENCODER.key_separator,
            _JSON_ENCODER.item_separator,
            False,  # sort_keys
            False,  # skipkeys
            True,  # allow_nan
        )
        probe = {"a": [1, 2.5, None, True, "é\n"], "b": {"c": -0.0}}
        if "".join(fast(probe, 0)) != _JSON_ENCODER.encode(probe):
            return _JSON_ENCODER.encode  # pragma: no cover - a different CPython
    except (TypeError, ValueError):  # pragma: no cover - a different signature
        return _JSON_ENCODER.encode

    def dumps(value: Any) -> str:
        return "".join(fast(value, 0))

    return dumps


_dumps = _make_dumps()


def prepare_responses(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return full, checked ``model_responses`` rows (ids, defaults, timestamps)."""
    now = utcnow()
    template = dict.fromkeys(RESPONSE_COLUMNS)
    template.update(_RESPONSE_DEFAULTS, created_at=now, updated_at=now)
    ids = new_ids(len(rows))

    records = []
    for row, fresh_id in zip(rows, ids, strict=True):
        record = template.copy()
        record["id"] = fresh_id
        record.update(row)
        if len(record) != len(template):
            unknown = sorted(set(record) - set(template))
            raise StoreError(
                f"add_responses got unknown key(s) {unknown!r}; "
                "use model_responses column names (RESPONSE_COLUMNS)."
            )
        for key, default in _RESPONSE_DEFAULTS.items():
            if record[key] is None:
                record[key] = default
        check_response_row(record)
        # NUL and lone surrogates in text cannot be stored: cleaned (JSON
        # values are cleaned when encoded, here and by the engines' serializer).
        clean_row(record, _FREE_TEXT)
        records.append(record)
    return records


def insert_sqlite(connection: Connection, records: list[dict[str, Any]]) -> None:
    """Insert rows with one driver-level executemany, values already in storage form.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert
    itself, so on SQLite the values are converted here, exactly as the column
    types would (JSON text, UTC timestamps as text, booleans as 0/1), and the
    statement goes straight to the driver.
    """
    dumps = _dumps
    stamps: dict[dt.datetime, str] = {}
    encoded: dict[int, str] = {}

    def _json(value: Any) -> str | None:
        if value is None:
            return None
        if not value and isinstance(value, (dict, list)):
            return "{}" if isinstance(value, dict) else "[]"
        # One object shared by many rows (the run's parameters, say) is encoded once.
        key = id(value)
        text = encoded.get(key)
        if text is None:
            text = dumps(value)
            if json_needs_cleaning(text):
                # NUL, surrogates, inf/nan: stored as U+FFFD and null.
                text = dumps(clean_json(value))
            encoded[key] = text
        return text

    def _stamp(value: dt.datetime) -> str:
        text = stamps.get(value)
        if text is None:
            text = stamps[value] = sqlite_timestamp(value)
        return text

    values = []
    getter = operator.itemgetter(*RESPONSE_COLUMNS)
    for record in records:
        row = list(getter(record))
        for position in _JSON_POSITIONS:
            row[position] = _json(row[position])
        for position in _STAMP_POSITIONS:
            row[position] = _stamp(row[position])
        row[_BOOL_POSITION] = 1 if row[_BOOL_POSITION] else 0
        values.append(tuple(row))
    connection.exec_driver_sql(_SQLITE_INSERT, values)
