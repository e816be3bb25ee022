"""Items: render a prompt into the items of a run, before anything is sent.

An item is one rendered prompt: one per prompt of a list, one per row with
``over=``. Every template is parsed and its variables checked before the first
item is rendered, and every item is rendered before anything is sent.
Without ``over=`` the variables come from the namespace (the caller's or the
notebook's names); with it, from each row (:mod:`maquina_nb.templating.rows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from maquina_nb.errors import TemplateError
from maquina_nb.templating.prompts import (
    TemplateItem,
    normalize_units,
    render_unit,
    unit_sources,
)
from maquina_nb.templating.rows import render_rows
from maquina_nb.templating.sandbox import render
from maquina_nb.templating.values import clean_text, to_json_value
from maquina_nb.templating.variables import check_namespace, find_all_variables

__all__ = ["build_items"]


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
    units = normalize_units(prompt)
    namespace = namespace or {}

    # Collect every variable any template reads, before rendering anything.
    sources = [s for unit in units for s in unit_sources(unit)] + list(extra_sources)
    wanted = find_all_variables(sources)

    if over is None:
        return _render_namespace(units, namespace, wanted, extra_sources)

    if len(units) != 1:
        raise TemplateError(
            f"over= renders one template per row, but {len(units)} prompts were "
            "given; pass a single template string."
        )
    return render_rows(units[0], over, wanted, extra_sources, warn_missing=warn_missing)


def _render_namespace(
    units: Sequence[Any],
    namespace: Mapping[str, Any],
    wanted: set[str],
    extra_sources: Sequence[str],
) -> list[TemplateItem]:
    """Render each unit once, with the ``wanted`` names of ``namespace``."""
    check_namespace(wanted, namespace)
    context = {name: namespace[name] for name in wanted}
    variables = {k: to_json_value(v) for k, v in context.items()} or None
    extra = tuple(
        clean_text(render(source, context, where=" in the system prompt"))
        for source in extra_sources
    )

    items = []
    for index, unit in enumerate(units):
        where = f" for prompt {index}" if len(units) > 1 else ""
        messages, sequential, meta = render_unit(unit, context, where)
        items.append(
            TemplateItem(index, messages, variables, sequential, meta=meta, extra=extra)
        )
    return items
