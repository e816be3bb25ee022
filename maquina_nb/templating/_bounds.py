"""Bounds on what a prompt template may compute, for :mod:`maquina_nb.templating`.

Jinja's sandbox stops unsafe attribute access but not work: ``range(10**9)``,
``'ab' * 10**8`` or nested loops could hold the kernel for minutes or fill its
memory. These helpers bound ``range()`` (per call and over one render), the
size of what ``*``, ``+`` and ``~`` build, integer ``**``, widths in format
strings and the ``center``/``indent`` filters, the time one render may take
(checked as loops over ``range()`` and operators run), and the length of the
rendered text. A bound that is hit raises :class:`LimitError`, which
:func:`~maquina_nb.templating.sandbox.render` turns into a
:class:`~maquina_nb.errors.TemplateError`.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "MAX_POWER_BITS",
    "MAX_RANGE",
    "MAX_RANGE_TOTAL",
    "MAX_RENDERED_CHARS",
    "MAX_RENDER_SECONDS",
    "LimitError",
    "bounded_binop",
    "bounded_filters",
    "bounded_join",
    "bounded_range",
    "check_format",
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
#: The most seconds one render may take.
MAX_RENDER_SECONDS = 10.0

# A number of 7 digits or more in a format string: a width no prompt needs.
_BIG_WIDTH = re.compile(r"\d{7,}")


class _RenderState:
    """What the render under way has used: range() numbers, and its deadline."""

    __slots__ = ("deadline", "range_used")

    def __init__(self) -> None:
        self.range_used = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS


_state: contextvars.ContextVar[_RenderState | None] = contextvars.ContextVar(
    "maquina_template_state", default=None
)


def _check_time() -> None:
    state = _state.get()
    if state is not None and time.monotonic() > state.deadline:
        raise LimitError(
            f"rendering took more than {MAX_RENDER_SECONDS:g} seconds, the sandbox's "
            "limit"
        )


class LimitError(Exception):
    """A sandbox bound was hit; the message says which (no trailing period)."""


class _TimedRange(Sequence[int]):
    """A ``range`` whose iteration checks the render's deadline."""

    __slots__ = ("_numbers",)

    def __init__(self, numbers: range) -> None:
        self._numbers = numbers

    def __len__(self) -> int:
        return len(self._numbers)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...
    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        return self._numbers[index]

    def __iter__(self) -> Iterator[int]:
        for position, number in enumerate(self._numbers):
            if not position & 255:
                _check_time()
            yield number

    def __repr__(self) -> str:
        return repr(self._numbers)


def bounded_range(*args: int) -> Sequence[int]:
    """Return ``range(*args)`` within the sandbox's bounds."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitError(
            f"range() of {len(numbers):,} numbers is over the sandbox's limit of "
            f"{MAX_RANGE:,}"
        )
    state = _state.get()
    if state is not None:
        _check_time()
        state.range_used += len(numbers)
        if state.range_used > MAX_RANGE_TOTAL:
            raise LimitError(
                f"the loops' range() calls give more than {MAX_RANGE_TOTAL:,} "
                "numbers in all, over the sandbox's limit"
            )
    return _TimedRange(numbers)


def check_format(text: Any) -> None:
    """Refuse a format string with a width of a million or more."""
    if isinstance(text, str) and _BIG_WIDTH.search(text):
        raise LimitError(
            f"the format string {text[:40]!r} asks for a width over the sandbox's limit"
        )


def _check_size(size: int, what: str) -> None:
    if size > MAX_RENDERED_CHARS:
        raise LimitError(
            f"{what} of {size:,}, over the limit of {MAX_RENDERED_CHARS:,} characters"
        )


def bounded_join(parts: Sequence[Any]) -> str:
    """Join the operands of ``~`` within the size bound."""
    texts = [str(part) for part in parts]
    _check_size(sum(map(len, texts)), "joining text with ~ gives a length")
    return "".join(texts)


def bounded_filters() -> dict[str, Any]:
    """Return ``center``, ``indent`` and ``format`` filters that check their sizes."""
    from jinja2 import filters

    def center(value: Any, width: int = 80) -> str:
        if isinstance(width, int):
            _check_size(width, "center() to a width")
        return filters.do_center(value, width)

    def indent(
        value: Any, width: int | str = 4, first: bool = False, blank: bool = False
    ) -> str:
        lines = str(value).count("\n") + 1
        size = width if isinstance(width, int) else len(str(width))
        _check_size(size * lines, "indent() to a length")
        return filters.do_indent(value, width, first, blank)

    def format_(value: Any, *args: Any, **kwargs: Any) -> str:
        check_format(value)
        return filters.do_format(value, *args, **kwargs)

    return {"center": center, "indent": indent, "format": format_}


def _sized(value: Any) -> int | None:
    if isinstance(value, (str, list, tuple)):
        return len(value)
    return None


def bounded_binop(environment: Any, operator: str, left: Any, right: Any) -> Any:
    """Check ``*``, ``+``, ``%`` and ``**`` against the bounds before computing them."""
    _check_time()
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
    elif operator == "+":
        sizes = (_sized(left), _sized(right))
        if sizes[0] is not None and sizes[1] is not None:
            _check_size(sizes[0] + sizes[1], "adding values gives a length")
    elif operator == "%":
        check_format(left)
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
    token = _state.set(_RenderState())
    try:
        for part in template.generate(context):
            size += len(part)
            if size > MAX_RENDERED_CHARS:
                raise LimitError(
                    f"the rendered prompt is longer than {MAX_RENDERED_CHARS:,} characters"
                )
            parts.append(part)
    finally:
        _state.reset(token)
    return "".join(parts)
