"""The sandboxed Jinja2 environment, and rendering one template in it.

The environment is Jinja2's sandbox (no attribute access to internals, no
imports) with undefined variables as errors, no autoescaping, missing values
rendered as empty text, and the bounds of :mod:`maquina_nb.templating._bounds`
on ``range()``, ``*``, ``+``, ``~``, ``%``, ``**``, format widths and the size
and time of one render. :func:`render` turns whatever goes wrong into one
:class:`~maquina_nb.errors.TemplateError` sentence naming the item.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from maquina_nb.errors import TemplateError
from maquina_nb.templating._bounds import (
    LimitError,
    bounded_binop,
    bounded_filters,
    bounded_join,
    bounded_range,
    check_format,
    generate_bounded,
)
from maquina_nb.templating.values import is_missing

if TYPE_CHECKING:
    import jinja2

__all__ = ["ROW_NAME", "get_environment", "is_plain", "render", "syntax_error"]

_env: jinja2.Environment | None = None


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
        raise syntax_error(source, exc) from exc


#: The name under which a template sees the whole row (``{{ row["my col"] }}``).
ROW_NAME = "row"

# ``{{ my col }}``: names apart by spaces, nothing else, inside one expression.
_SPACED_NAME = re.compile(r"\{\{-?\s*([A-Za-z_]\w*(?:[ \t]+[A-Za-z_]\w*)+)\s*-?\}\}")


def syntax_error(source: str, exc: jinja2.TemplateSyntaxError) -> TemplateError:
    """Return the error for a template that does not parse, with the likely fix.

    A column name with spaces (``{{ my col }}``) is the common slip; otherwise
    the usual cause is literal braces meant as text.
    """
    where = (
        f"The prompt template has a syntax error on line {exc.lineno}: {exc.message}"
    )
    spaced = _SPACED_NAME.search(source)
    if spaced is not None:
        name = " ".join(spaced.group(1).split())
        return TemplateError(
            f"{where}. A column whose name has spaces is read as "
            f"{{{{ {ROW_NAME}[{name!r}] }}}}, not {{{{ {name} }}}}."
        )
    return TemplateError(
        f"{where}. Write literal '{{{{' as {{{{ '{{{{' }}}}, or wrap the text in "
        "{% raw %}…{% endraw %}."
    )


def is_plain(source: str) -> bool:
    """Return whether ``source`` has no template syntax (and renders to itself)."""
    # Without a Jinja delimiter the template renders to itself: skip compiling.
    return "{{" not in source and "{%" not in source and "{#" not in source


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
    if is_plain(source):
        return source

    import jinja2
    from jinja2.exceptions import SecurityError

    template = _compile(source)
    cleaned = {k: (None if is_missing(v) else v) for k, v in context.items()}
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
