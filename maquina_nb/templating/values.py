"""Values put into templates: missing values, JSON-ready copies, text UTF-8 can encode.

Missing values (``None``, ``NaN``, ``NaT``, ``pd.NA``) render as an empty string
and are recorded as ``null``; lone surrogates become U+FFFD. pandas and numpy
are recognised without being imported here unless a value needs them.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

__all__ = ["clean_text", "is_missing", "to_json_value"]


def to_json_value(value: Any) -> Any:
    """Return ``value`` as a JSON-ready value; missing values become ``None``."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity: both are recorded as null.
        return value if math.isfinite(value) else None

    # numpy scalars, pandas NA/NaT and timestamps, without importing either.
    try:
        import pandas as pd

        if pd.api.types.is_scalar(value) and pd.isna(value):
            return None
    except (ImportError, TypeError, ValueError):
        pass
    if (
        hasattr(value, "item")
        and callable(value.item)
        and not isinstance(value, Sequence)
    ):
        try:
            return to_json_value(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return to_json_value(float(value))
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_value(v) for v in value]
    if hasattr(value, "tolist"):
        return to_json_value(value.tolist())
    return str(value)


def is_missing(value: Any) -> bool:
    """Return whether ``value`` is a missing value (None, NaN, NaT, pd.NA)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        return bool(pd.api.types.is_scalar(value) and pd.isna(value))
    except (ImportError, TypeError, ValueError):
        return False


def clean_text(text: str) -> str:
    """Return ``text`` with lone surrogates (not encodable as UTF-8) as U+FFFD.

    A valid surrogate pair (as left by some JSON decoders) becomes its character.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in joined)
    return text
