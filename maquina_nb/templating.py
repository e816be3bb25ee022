"""Prompt templates: Jinja2 in a sandbox, rendered over DataFrame rows or a namespace.

A prompt is a Jinja2 template (``{{ variable }}``). Only ``{{ … }}``, ``{% … %}``
and ``{# … #}`` are template syntax, so JSON examples and code with single braces
(``{"a": 1}``, ``{x: x**2 for x in nums}``) stay plain text (C29). Values put in
from rows are never rendered a second time.

Rules, chosen on purpose:

- A literal ``{{``, ``{%`` or ``{#`` in the text must be escaped
  (``{{ '{{' }}``) or wrapped in ``{% raw %}…{% endraw %}``; a template with
  none of the three is taken as plain text without compiling it.
- The environment is sandboxed (no attribute access to internals, no imports)
  and bounded: ``range()`` gives at most :data:`MAX_RANGE` numbers and at most
  :data:`MAX_RANGE_TOTAL` over one render, ``*`` may not build a string or list
  longer than :data:`MAX_RENDERED_CHARS`, integer ``**`` is kept to
  :data:`MAX_POWER_BITS` bits, and one rendered template may be at most
  :data:`MAX_RENDERED_CHARS` characters (plain text without template syntax is
  not capped).
- A message that renders to nothing but spaces is refused, naming the row or
  prompt. Lone surrogates (text UTF-8 cannot encode) in rendered prompts and
  recorded variables become U+FFFD.
- Any error while rendering (``{{ 1/0 }}``, a macro that calls itself, a value
  of the wrong type) is a :class:`~maquina_nb.errors.TemplateError` naming the
  row or prompt and the error; every item is rendered before anything is sent.
- Undefined variables are errors, reported before anything is sent, naming the
  variable and the columns (or names) that are available.
- Over rows (``over=``), the variables are the row's columns and nothing else:
  a notebook variable of the same name never fills in for a missing column.
  ``row`` is the whole row as a mapping, so a column whose name is not an
  identifier is ``{{ row["my col"] }}`` (a column named ``row`` wins).
- Without ``over=``, the variables come from the namespace (the caller's or
  the notebook's names).
- Missing values (``None``, ``NaN``, ``NaT``, ``pd.NA``) render as an empty
  string and are recorded as ``null`` in the item's variables; one warning per
  run names the columns that have them. ``{% if x %}`` treats them as false
  and ``{{ x is none }}`` as true. A float column whose values are all whole
  numbers apart from its gaps (an int column pandas widened to hold ``NaN``)
  renders ``1``, not ``1.0``.
- An item may be one prompt, a conversation (a list of ``{"role", "content"}``
  messages sent as they are; a ``system`` message only as the first one), or MT-Bench style turns (``{"turns": [...]}``)
  that the orchestrator asks one after the other, each with the model's own
  earlier answers in the conversation.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from maquina_nb._redact import get_logger
from maquina_nb._template_bounds import (
    MAX_POWER_BITS,
    MAX_RANGE,
    MAX_RANGE_TOTAL,
    MAX_RENDERED_CHARS,
    LimitError,
    bounded_binop,
    bounded_filters,
    bounded_join,
    bounded_range,
    check_format,
    generate_bounded,
)
from maquina_nb.errors import TemplateError

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "MAX_POWER_BITS",
    "MAX_RANGE",
    "MAX_RANGE_TOTAL",
    "MAX_RENDERED_CHARS",
    "TemplateItem",
    "build_items",
    "clean_text",
    "find_variables",
    "render",
    "to_json_value",
]

logger = get_logger(__name__)

_ROLES = ("system", "user", "assistant")
_env: jinja2.Environment | None = None


@dataclass(frozen=True, slots=True)
class TemplateItem:
    """One rendered item of a run, before any model is involved."""

    item_index: int
    """Position of the item in the run (the DataFrame row position, 0-based)."""
    messages: tuple[dict[str, str], ...]
    """Rendered ``{"role", "content"}`` messages; a leading system message is
    kept when the item itself carried one."""
    variables: dict[str, Any] | None = None
    """The values the template used, JSON-ready (missing values as ``None``)."""
    sequential: bool = False
    """True for MT-Bench style turns: ``messages`` are user turns asked one
    after the other, each after the model's answer to the previous one."""
    label: Any = None
    """The DataFrame index label of the row, when rendered over a DataFrame."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Other fields of an MT-Bench item (``question_id``, ``category`` …)."""
    extra: tuple[str, ...] = ()
    """The ``extra_sources`` of :func:`build_items` (the system prompt),
    rendered with this item's variables, in order."""

    @property
    def prompt(self) -> str:
        """The first user turn (what a table shows for the item)."""
        for message in self.messages:
            if message["role"] == "user":
                return message["content"]
        return self.messages[-1]["content"] if self.messages else ""


def _finalize(value: Any) -> Any:
    # Missing values render as an empty string rather than "None" or "nan".
    return "" if value is None else value


def get_environment() -> jinja2.Environment:
    """Return the shared sandboxed environment (undefined variables raise)."""
    global _env
    if _env is None:
        import jinja2
        from jinja2.compiler import CodeGenerator
        from jinja2.sandbox import SandboxedEnvironment

        class _BoundedCodeGenerator(CodeGenerator):
            # ``a ~ b`` joins through bounded_join, which checks the size.
            def visit_Concat(self, node: Any, frame: Any) -> None:
                self.write("environment.bounded_join((")
                for arg in node.nodes:
                    self.visit(arg, frame)
                    self.write(", ")
                self.write("))")

        class _BoundedEnvironment(SandboxedEnvironment):
            intercepted_binops = frozenset({"*", "**", "+", "%"})
            code_generator_class = _BoundedCodeGenerator
            bounded_join = staticmethod(bounded_join)

            def call_binop(
                self, context: Any, operator: str, left: Any, right: Any
            ) -> Any:
                return bounded_binop(self, operator, left, right)

            def wrap_str_format(self, value: Any) -> Any:
                wrapped = super().wrap_str_format(value)
                if wrapped is None:
                    return None
                check_format(getattr(value, "__self__", None))
                return wrapped

        _env = _BoundedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_finalize,
        )
        _env.globals["range"] = bounded_range
        _env.filters.update(bounded_filters())
    return _env


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    import jinja2

    try:
        return get_environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"The prompt template has a syntax error on line {exc.lineno}: "
            f"{exc.message}. Write literal '{{{{' as {{{{ '{{{{' }}}}, or wrap the "
            "text in {% raw %}…{% endraw %}."
        ) from exc


def _is_plain(source: str) -> bool:
    # Without a Jinja delimiter the template renders to itself: skip compiling.
    return "{{" not in source and "{%" not in source and "{#" not in source


def find_variables(source: str) -> set[str]:
    """Return the names a template reads from its context.

    Raises:
        TemplateError: the template does not parse.
    """
    if _is_plain(source):
        return set()
    import jinja2
    from jinja2 import meta

    try:
        parsed = get_environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"The prompt template has a syntax error on line {exc.lineno}: "
            f"{exc.message}. Wrap literal text in {{% raw %}}…{{% endraw %}}."
        ) from exc
    return set(meta.find_undeclared_variables(parsed))


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


def _is_missing(value: Any) -> bool:
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


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:299] + "…"


def render(source: str, context: Mapping[str, Any], *, where: str = "") -> str:
    """Render one template with ``context`` (missing values as empty strings).

    Args:
        source: the template.
        context: the variables.
        where: which item this is (``" for row 3 (index label 'x')"``), put
            in error messages.

    Raises:
        TemplateError: a syntax error, an undefined variable, a sandbox
            violation or bound, or any error raised while rendering.
    """
    if _is_plain(source):
        return source

    import jinja2
    from jinja2.exceptions import SecurityError

    template = _compile(source)
    cleaned = {k: (None if _is_missing(v) else v) for k, v in context.items()}
    try:
        return generate_bounded(template, cleaned)
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            f"The prompt template failed to render{where}: {_one_line(exc.message or '')}. "
            "Define the variable, or pass it as a column of over=.",
        ) from exc
    except SecurityError as exc:
        raise TemplateError(
            f"The prompt template tried something the sandbox forbids{where} "
            f"({_one_line(str(exc))}); use plain variables and filters."
        ) from exc
    except LimitError as exc:
        raise TemplateError(
            f"The prompt template failed to render{where}: {exc}; make the "
            "template produce less."
        ) from exc
    except RecursionError as exc:
        raise TemplateError(
            f"The prompt template failed to render{where}: it recursed too deeply "
            "(a macro that calls itself without end); give the recursion a stop."
        ) from exc
    except OverflowError as exc:
        message = _one_line(str(exc))
        if "range" in message.lower():
            message = f"the range is over the sandbox's limit ({message})"
        raise TemplateError(
            f"The prompt template failed to render{where}: {message}; use smaller "
            "numbers."
        ) from exc
    except MemoryError as exc:
        raise TemplateError(
            f"The prompt template failed to render{where}: it ran out of memory; "
            "make the template produce less."
        ) from exc
    except Exception as exc:
        raise TemplateError(
            f"The prompt template failed to render{where}: "
            f"{type(exc).__name__}: {_one_line(str(exc)) or 'no details'}. Fix the "
            "expression, or the values it is given."
        ) from exc


# ----------------------------------------------------------------------------
# Items: what a run asks, one per prompt, row or conversation.


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and "role" in value and "content" in value


def _is_turns(value: Any) -> bool:
    return isinstance(value, Mapping) and "turns" in value and "role" not in value


def _normalize_units(prompt: Any) -> list[Any]:
    """Split ``prompt`` into item units: str, message list, or turns mapping."""
    if isinstance(prompt, str):
        return [prompt]
    if _is_turns(prompt):
        return [prompt]
    if isinstance(prompt, Sequence) and prompt and all(_is_message(p) for p in prompt):
        return [list(prompt)]
    if isinstance(prompt, Iterable) and not isinstance(prompt, (bytes, Mapping)):
        units = list(prompt)
        if not units:
            raise TemplateError("The prompt list is empty; give at least one prompt.")
        for position, unit in enumerate(units):
            if isinstance(unit, str) or _is_turns(unit):
                continue
            if (
                isinstance(unit, Sequence)
                and unit
                and all(_is_message(m) for m in unit)
            ):
                continue
            raise TemplateError(
                f"Prompt {position} is {unit!r}; give a string, a list of "
                "{'role', 'content'} messages, or a {'turns': [...]} mapping."
            )
        return units
    raise TemplateError(
        f"The prompt {prompt!r} is not a string, a list of prompts, a list of "
        "messages or a {'turns': [...]} mapping."
    )


def _unit_sources(unit: Any) -> list[str]:
    if isinstance(unit, str):
        return [unit]
    if _is_turns(unit):
        return [str(t) for t in unit["turns"]]
    return [str(m["content"]) for m in unit]


def _check_roles(messages: Sequence[Mapping[str, Any]]) -> None:
    """Check the roles of a conversation: a system message may only come first."""
    for position, message in enumerate(messages):
        if message["role"] not in _ROLES:
            raise TemplateError(
                f"A message has role {message['role']!r}; use one of {', '.join(_ROLES)}."
            )
        if message["role"] == "system" and position > 0:
            raise TemplateError(
                f"The conversation's message {position} has role 'system', but a "
                "system prompt may only be the first message; merge it into the "
                "first one (or pass it as system=)."
            )


def _content(source: str, context: Mapping[str, Any], where: str) -> str:
    """Render one message: lone surrogates replaced, empty text refused."""
    text = clean_text(render(source, context, where=where))
    if not text.strip():
        raise TemplateError(
            f"The prompt{where} is empty after rendering; give it some text, or "
            "leave out the rows whose values are empty."
        )
    return text


def _render_unit(
    unit: Any, context: Mapping[str, Any], where: str = ""
) -> tuple[tuple[dict[str, str], ...], bool, dict[str, Any]]:
    if isinstance(unit, str):
        return ({"role": "user", "content": _content(unit, context, where)},), False, {}
    if _is_turns(unit):
        turns = unit["turns"]
        if isinstance(turns, str) or not turns:
            raise TemplateError(
                f"The 'turns' of an item must be a non-empty list of strings, not {turns!r}."
            )
        rendered = tuple(
            {"role": "user", "content": _content(str(t), context, where)} for t in turns
        )
        meta = {str(k): to_json_value(v) for k, v in unit.items() if k != "turns"}
        return rendered, True, meta
    _check_roles(unit)
    rendered = tuple(
        {"role": str(m["role"]), "content": _content(str(m["content"]), context, where)}
        for m in unit
    )
    return rendered, False, {}


def _shown(names: Sequence[str]) -> str:
    shown = ", ".join(repr(a) for a in list(names)[:20]) or "none"
    return shown + (" …" if len(names) > 20 else "")


def _missing_report(missing: Sequence[str], available: Sequence[str]) -> str:
    names = ", ".join(repr(n) for n in missing)
    return (
        f"The prompt template uses undefined variable(s) {names}; the available "
        f"names are {_shown(available)}. Define the variable, or write literal "
        "braces as {{ '{{' }}."
    )


def _missing_column_report(missing: Sequence[str], columns: Sequence[str]) -> str:
    names = ", ".join(repr(n) for n in missing)
    return (
        f"The prompt template uses undefined variable(s) {names}; the available "
        f"columns are {_shown(columns)} (with over= only the row's columns are "
        f"variables). Add the column (df.assign({missing[0]}=...) for a value every row shares), write a "
        "column whose name is not an identifier as {{ row['my col'] }}, or write "
        "literal braces as {{ '{{' }}."
    )


#: The name under which a template sees the whole row (``{{ row["my col"] }}``).
ROW_NAME = "row"


def build_items(
    prompt: Any,
    *,
    over: Any = None,
    namespace: Mapping[str, Any] | None = None,
    extra_sources: Sequence[str] = (),
    warn_missing: bool = True,
) -> list[TemplateItem]:
    """Render ``prompt`` into the items of a run.

    Args:
        prompt: a template string, a list of them, a conversation (list of
            ``{"role", "content"}`` messages), a ``{"turns": [...]}`` mapping,
            or a list of conversations or turns mappings.
        over: a DataFrame (or an iterable of mappings): one item per row, the
            columns as variables. Only a single prompt unit may be rendered
            over rows.
        namespace: the names a template may use when there is no ``over``
            (the caller's namespace in a notebook). Ignored with ``over``:
            rows are rendered from their own columns only.
        extra_sources: other templates rendered with the same context (the
            system prompt), checked for undefined variables up front too;
            rendered into each item's ``extra``.
        warn_missing: log the warning about missing values in ``over``
            (off for a check that is followed by the real rendering).

    Returns:
        The items in order, with the variables each one used.

    Raises:
        TemplateError: a template does not parse, or uses a variable that is
            not a column (with ``over``) or not in ``namespace`` (without),
            reported before rendering.
    """
    units = _normalize_units(prompt)
    namespace = namespace or {}

    # Collect every variable any template reads, before rendering anything.
    sources = [s for unit in units for s in _unit_sources(unit)] + list(extra_sources)
    wanted: set[str] = set()
    for source in sources:
        wanted |= find_variables(source)

    if over is None:
        missing = sorted(v for v in wanted if v not in namespace)
        if missing:
            available = sorted(k for k in namespace if not k.startswith("_"))
            raise TemplateError(
                _missing_report(missing, available), variable=missing[0]
            )
        context = {name: namespace[name] for name in wanted}
        variables = {k: to_json_value(v) for k, v in context.items()} or None
        extra = tuple(
            clean_text(render(source, context, where=" in the system prompt"))
            for source in extra_sources
        )
        items = []
        for index, unit in enumerate(units):
            where = f" for prompt {index}" if len(units) > 1 else ""
            messages, sequential, meta = _render_unit(unit, context, where)
            items.append(
                TemplateItem(
                    index, messages, variables, sequential, meta=meta, extra=extra
                )
            )
        return items

    if len(units) != 1:
        raise TemplateError(
            f"over= renders one template per row, but {len(units)} prompts were "
            "given; pass a single template string."
        )
    unit = units[0]
    labels, columns, rows = _rows_of(over)
    whole_row = ROW_NAME in wanted and ROW_NAME not in columns
    missing = sorted(
        v for v in wanted if v not in columns and not (whole_row and v == ROW_NAME)
    )
    if missing:
        raise TemplateError(
            _missing_column_report(missing, [str(c) for c in columns]),
            variable=missing[0],
        )

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
                {c: (None if _is_missing(v) else v) for c, v in row.items()}
            )
        where = f" for row {index}"
        if label != index:
            where += f" (index label {to_json_value(label)!r})"
        messages, sequential, meta = _render_unit(unit, row_context, where)
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
        column: sum(1 for row in rows if _is_missing(row[column])) for column in columns
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


def _rows_of(over: Any) -> tuple[list[Any], list[str], list[Mapping[str, Any]]]:
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
