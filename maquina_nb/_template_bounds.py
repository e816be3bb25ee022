"""Bounds on what a prompt template may compute, for :mod:`maquina_nb.templating`.

Jinja's sandbox stops unsafe attribute access but not work: ``range(10**9)``,
``'ab' * 10**8`` or nested loops could hold the kernel for minutes or fill its
memory. These helpers bound ``range()`` (per call and over one render), ``*``
on strings and lists, integer ``**``, and the length of the rendered text; a
bound that is hit raises :class:`LimitError`, which templating turns into a
:class:`~maquina_nb.errors.TemplateError`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "MAX_POWER_BITS",
    "MAX_RANGE",
    "MAX_RANGE_TOTAL",
    "MAX_RENDERED_CHARS",
    "LimitError",
    "bounded_binop",
    "bounded_range",
    "generate_bounded",
]

#: The most characters one rendered template may have.
MAX_RENDERED_CHARS = 1_000_000
#: The most numbers one ``range()`` call may give.
MAX_RANGE = 100_000
#: The most numbers all ``range()`` calls of one render may give together.
MAX_RANGE_TOTAL = 1_000_000
#: The most bits an integer ``a ** b`` may have.
MAX_POWER_BITS = 100_000

# Numbers handed out by range() in the render under way.
_range_used: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "maquina_range_used", default=None
)


class LimitError(Exception):
    """A sandbox bound was hit; the message says which (no trailing period)."""


def bounded_range(*args: int) -> range:
    """Return ``range(*args)`` within the sandbox's bounds."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitError(
            f"range() of {len(numbers):,} numbers is over the sandbox's limit of "
            f"{MAX_RANGE:,}"
        )
    used = _range_used.get()
    if used is not None:
        used[0] += len(numbers)
        if used[0] > MAX_RANGE_TOTAL:
            raise LimitError(
                f"the loops' range() calls give more than {MAX_RANGE_TOTAL:,} "
                "numbers in all, over the sandbox's limit"
            )
    return numbers


def _sized(value: Any) -> int | None:
    if isinstance(value, (str, list, tuple)):
        return len(value)
    return None


def bounded_binop(environment: Any, operator: str, left: Any, right: Any) -> Any:
    """Check ``*`` and ``**`` against the bounds before computing them."""
    if operator == "*":
        for sequence, times in ((left, right), (right, left)):
            size = _sized(sequence)
            if (
                size is not None
                and isinstance(times, int)
                and size * times > MAX_RENDERED_CHARS
            ):
                raise LimitError(
                    f"repeating a value of length {size:,} {times:,} times is over the "
                    f"limit of {MAX_RENDERED_CHARS:,} characters"
                )
    elif (
        operator == "**"
        and isinstance(left, int)
        and isinstance(right, int)
        and (
            abs(left) > 1
            and right > 0
            and right * abs(left).bit_length() > MAX_POWER_BITS
        )
    ):
        raise LimitError(
            f"{left} ** {right} is over the sandbox's limit of {MAX_POWER_BITS:,} bits"
        )
    return environment.binop_table[operator](left, right)


def generate_bounded(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render ``template``, stopping once the text passes the cap."""
    parts: list[str] = []
    size = 0
    token = _range_used.set([0])
    try:
        for part in template.generate(context):
            size += len(part)
            if size > MAX_RENDERED_CHARS:
                raise LimitError(
                    f"the rendered prompt is longer than {MAX_RENDERED_CHARS:,} characters"
                )
            parts.append(part)
    finally:
        _range_used.reset(token)
    return "".join(parts)
