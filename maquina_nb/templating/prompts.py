"""Prompts: the shapes a prompt takes, and the item each one renders to.

A unit is what one item asks: a string, a conversation (a list of ``{"role",
"content"}`` messages sent as they are; a ``system`` message only as the
first one), or MT-Bench style turns (``{"turns": [...]}``) that the
orchestrator asks one after the other. Rendering a unit with a context gives
the messages of a :class:`TemplateItem`; text that renders to nothing but
spaces is refused, and lone surrogates become U+FFFD.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maquina_nb.errors import TemplateError
from maquina_nb.templating.sandbox import render
from maquina_nb.templating.values import clean_text, to_json_value

__all__ = ["TemplateItem", "normalize_units", "render_unit", "unit_sources"]

_ROLES = ("system", "user", "assistant")


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
    """The ``extra_sources`` of
    :func:`~maquina_nb.templating.items.build_items` (the system prompt),
    rendered with this item's variables, in order."""

    @property
    def prompt(self) -> str:
        """The first user turn (what a table shows for the item)."""
        for message in self.messages:
            if message["role"] == "user":
                return message["content"]
        return self.messages[-1]["content"] if self.messages else ""


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and "role" in value and "content" in value


def _is_turns(value: Any) -> bool:
    return isinstance(value, Mapping) and "turns" in value and "role" not in value


def normalize_units(prompt: Any) -> list[Any]:
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


def unit_sources(unit: Any) -> list[str]:
    """Return the templates of a unit (its text, turns or message contents)."""
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


def render_unit(
    unit: Any, context: Mapping[str, Any], where: str = ""
) -> tuple[tuple[dict[str, str], ...], bool, dict[str, Any]]:
    """Render a unit into (messages, sequential, meta) with ``context``."""
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
