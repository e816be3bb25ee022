"""Rendering over rows: one item per row of a DataFrame or list of mappings.

Over rows (``over=``), the variables are the row's columns and nothing else:
a notebook variable of the same name never fills in for a missing column.
``row`` is the whole row as a mapping, so a column whose name is not an
identifier is ``{{ row["my col"] }}`` (a column named ``row`` wins). Missing
values render as empty text and are recorded as ``null``, with one warning
naming the columns that have them; a float column whose values are all whole
numbers apart from its gaps (an int column pandas widened to hold ``NaN``)
renders ``1``, not ``1.0``. Column names must be distinct strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maquina_nb._redact import get_logger
from maquina_nb.errors import TemplateError
from maquina_nb.templating.prompts import TemplateItem, render_unit
from maquina_nb.templating.sandbox import ROW_NAME, render
from maquina_nb.templating.values import clean_text, is_missing, to_json_value
from maquina_nb.templating.variables import check_columns

__all__ = ["ROW_NAME", "render_rows"]

logger = get_logger(__name__)


def render_rows(
    unit: Any,
    over: Any,
    wanted: set[str],
    extra_sources: Sequence[str] = (),
    *,
    warn_missing: bool = True,
) -> list[TemplateItem]:
    """Render one prompt unit for each row of ``over``, the columns as variables.

    Args:
        unit: the prompt unit (see :mod:`maquina_nb.templating.prompts`).
        over: a DataFrame or an iterable of mappings.
        wanted: the names the unit and ``extra_sources`` read.
        extra_sources: other templates (the system prompt) rendered per row
            into each item's ``extra``.
        warn_missing: log the warning about missing values in ``over``.

    Raises:
        TemplateError: ``over`` is not rows, has no rows, its column names are
            not distinct strings, a wanted name is not a column, or a row fails
            to render.
    """
    labels, columns, rows = _read_rows(over)
    whole_row = ROW_NAME in wanted and ROW_NAME not in columns
    check_columns(wanted, columns, besides={ROW_NAME} if whole_row else ())

    # With row["…"] any column may be read: record them all.
    used_columns = list(columns) if whole_row else [c for c in columns if c in wanted]
    if warn_missing:
        _warn_missing(rows, used_columns)

    items = []
    for index, (label, row) in enumerate(zip(labels, rows, strict=True)):
        row_context: dict[str, Any] = {c: row[c] for c in used_columns}
        variables = {k: to_json_value(v) for k, v in row_context.items()} or None
        if whole_row:
            row_context[ROW_NAME] = _Row(
                {c: (None if is_missing(v) else v) for c, v in row.items()}
            )
        where = f" for row {index}"
        if label != index:
            where += f" (index label {to_json_value(label)!r})"
        messages, sequential, meta = render_unit(unit, row_context, where)
        extra = tuple(
            clean_text(
                render(source, row_context, where=f" in the system prompt{where}")
            )
            for source in extra_sources
        )
        items.append(
            TemplateItem(
                index,
                messages,
                variables,
                sequential,
                to_json_value(label),
                meta,
                extra,
            )
        )

    if not items:
        raise TemplateError("over= has no rows; there is nothing to ask.")
    return items


class _Row(dict):  # type: ignore[type-arg]
    """The whole row for ``{{ row["my col"] }}``; renders as its mapping."""


def _warn_missing(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Log one warning naming the used columns that have missing values."""
    counts = {
        column: sum(1 for row in rows if is_missing(row[column])) for column in columns
    }
    gaps = [f"{c!r} ({n} of {len(rows)} rows)" for c, n in counts.items() if n]
    if gaps:
        logger.warning(
            "over= has missing values in column(s) %s; they render as empty text "
            "and are stored as null. Fill them (df.fillna) or drop those rows if "
            "that is not intended.",
            ", ".join(gaps),
        )


def _whole_number_columns(over: Any) -> list[str]:
    """Float columns whose values are whole numbers apart from gaps (widened ints)."""
    names = []
    for name in over.columns:
        column = over[name]
        if getattr(column.dtype, "kind", "") != "f":
            continue
        present = column.dropna()
        if len(present) == len(column):
            continue  # no gap: a float column chosen as such
        try:
            if len(present) and bool((present == present.round()).all()):
                names.append(name)
        except (TypeError, ValueError, OverflowError):
            continue
    return names


def _read_rows(over: Any) -> tuple[list[Any], list[str], list[Mapping[str, Any]]]:
    """Return (labels, columns, rows) of a DataFrame or an iterable of mappings."""
    if hasattr(over, "to_dict") and hasattr(over, "columns"):
        duplicated = list(over.columns[over.columns.duplicated()])
        if duplicated:
            names = ", ".join(repr(c) for c in dict.fromkeys(duplicated))
            raise TemplateError(
                f"over= has more than one column named {names}; rename them so "
                "each column has its own name."
            )
        non_string = [c for c in over.columns if not isinstance(c, str)]
        if non_string:
            raise TemplateError(
                f"over= has non-string column names {non_string[:5]!r}; rename them "
                "so templates can refer to them."
            )
        widened = _whole_number_columns(over)
        if widened:
            try:
                over = over.astype(dict.fromkeys(widened, "Int64"))
            except (TypeError, ValueError, OverflowError):
                logger.debug("could not render %r as whole numbers", widened)
        records = over.to_dict(orient="records")
        return list(over.index), list(over.columns), records
    if isinstance(over, (Mapping, str, bytes)):
        raise TemplateError(
            f"over= must be a DataFrame or a list of mappings, not {type(over).__name__}."
        )
    rows = list(over)
    columns: list[str] = []
    for position, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TemplateError(f"Row {position} of over= is {row!r}, not a mapping.")
        for key in row:
            if not isinstance(key, str):
                raise TemplateError(
                    f"Row {position} of over= has the non-string key {key!r}; "
                    "rename it so templates can refer to it."
                )
            if key not in columns:
                columns.append(key)
    filled: list[Mapping[str, Any]] = [{c: row.get(c) for c in columns} for row in rows]
    return list(range(len(rows))), columns, filled
