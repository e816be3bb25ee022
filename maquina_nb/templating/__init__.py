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

The modules, each importing only those above it in this list:

- :mod:`~maquina_nb.templating._bounds`: the bounds on what a render computes.
- :mod:`~maquina_nb.templating.values`: missing values, JSON-ready values,
  text UTF-8 can encode.
- :mod:`~maquina_nb.templating.sandbox`: the sandboxed environment and
  :func:`render`.
- :mod:`~maquina_nb.templating.variables`: :func:`find_variables` and the
  undefined-variable errors.
- :mod:`~maquina_nb.templating.prompts`: the shapes of a prompt and
  :class:`TemplateItem`.
- :mod:`~maquina_nb.templating.rows`: rendering over DataFrame rows.
- :mod:`~maquina_nb.templating.items`: :func:`build_items`.
"""

from __future__ import annotations

from maquina_nb.templating._bounds import (
    MAX_POWER_BITS,
    MAX_RANGE,
    MAX_RANGE_TOTAL,
    MAX_RENDERED_CHARS,
)
from maquina_nb.templating.items import build_items
from maquina_nb.templating.prompts import TemplateItem
from maquina_nb.templating.rows import ROW_NAME as ROW_NAME
from maquina_nb.templating.sandbox import get_environment as get_environment, render
from maquina_nb.templating.values import clean_text, to_json_value
from maquina_nb.templating.variables import find_variables

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
