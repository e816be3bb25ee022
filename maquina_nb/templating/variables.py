"""Variables: the names templates read, checked before anything is rendered.

Every template of a run (the prompt or its turns and messages, and the system
prompt) is parsed first; a name that is not defined is a
:class:`~maquina_nb.errors.TemplateError` naming it and the names (or, over
rows, the columns) that are available, before any item is rendered or sent.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from maquina_nb.errors import TemplateError
from maquina_nb.templating.sandbox import get_environment, is_plain, syntax_error

__all__ = ["check_columns", "check_namespace", "find_all_variables", "find_variables"]


def find_variables(source: str) -> set[str]:
    """Return the names a template reads from its context.

    Raises:
        TemplateError: the template does not parse.
    """
    if is_plain(source):
        return set()
    import jinja2
    from jinja2 import meta

    try:
        parsed = get_environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise syntax_error(source, exc) from exc
    return set(meta.find_undeclared_variables(parsed))


def find_all_variables(sources: Iterable[str]) -> set[str]:
    """Return the names any of ``sources`` reads.

    Raises:
        TemplateError: a template does not parse.
    """
    wanted: set[str] = set()
    for source in sources:
        wanted |= find_variables(source)
    return wanted


def check_namespace(wanted: Iterable[str], namespace: Mapping[str, Any]) -> None:
    """Refuse names in ``wanted`` that ``namespace`` does not define.

    Raises:
        TemplateError: with ``variable`` set to the first undefined name.
    """
    missing = sorted(v for v in wanted if v not in namespace)
    if missing:
        available = sorted(k for k in namespace if not k.startswith("_"))
        raise TemplateError(_missing_report(missing, available), variable=missing[0])


def check_columns(
    wanted: Iterable[str], columns: Sequence[str], *, besides: Collection[str] = ()
) -> None:
    """Refuse names in ``wanted`` that are neither ``columns`` nor in ``besides``.

    Raises:
        TemplateError: with ``variable`` set to the first undefined name.
    """
    missing = sorted(v for v in wanted if v not in columns and v not in besides)
    if missing:
        raise TemplateError(
            _missing_column_report(missing, [str(c) for c in columns]),
            variable=missing[0],
        )


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
