"""Built-in judge rubrics and the sandboxed Jinja2 rendering of rubrics.

A rubric is a Jinja2 template for the judge's user message. Single-answer rubrics
see ``question``, ``answer``, ``reference`` and ``criteria``; pairwise rubrics see
``question``, ``answer_a``, ``answer_b``, ``reference`` and ``criteria``.
``reference`` is ``None`` when no expected answer is known. The output format the
parsers expect (``Rating: [[7]]`` or ``[[A]]`` / ``[[B]]`` / ``[[C]]``) is asked
for in the judge's system prompt, so a custom rubric only says what to judge.
"""

from __future__ import annotations

from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment

from maquina_nb.errors import TemplateError

__all__ = [
    "DEFAULT_CRITERIA",
    "PAIRWISE_RUBRIC",
    "PAIRWISE_SYSTEM",
    "SINGLE_RUBRIC",
    "SINGLE_SYSTEM",
    "Rubric",
]

Mode = Literal["single", "pairwise"]

#: What the default rubrics ask the judge to weigh.
DEFAULT_CRITERIA = "correctness, usefulness, clarity and completeness"

SINGLE_SYSTEM = (
    "You are an impartial evaluator of answers written by AI assistants. "
    "Explain your assessment in a few sentences first. Then give a score from 1 "
    "(useless) to 10 (excellent) on a final line written exactly as "
    "'Rating: [[N]]', for example 'Rating: [[6]]'."
)

PAIRWISE_SYSTEM = (
    "You are an impartial evaluator comparing two answers written by AI "
    "assistants to the same request. The order in which the answers appear says "
    "nothing about their quality, and neither does their length. Explain your "
    "comparison in a few sentences first. Then give your verdict on a final line: "
    "'[[A]]' if the first answer is better, '[[B]]' if the second answer is "
    "better, or '[[C]]' if they are equally good."
)

SINGLE_RUBRIC = """\
Judge the answer below on {{ criteria }}.
{% if reference is not none %}
An expected answer is given; an answer that contradicts it is wrong.

[Expected answer]
{{ reference }}
[End of expected answer]
{% endif %}
[Request]
{{ question }}
[End of request]

[Answer]
{{ answer }}
[End of answer]
"""

PAIRWISE_RUBRIC = """\
Compare the two answers below on {{ criteria }}.
{% if reference is not none %}
An expected answer is given; an answer that contradicts it is wrong.

[Expected answer]
{{ reference }}
[End of expected answer]
{% endif %}
[Request]
{{ question }}
[End of request]

[Answer A]
{{ answer_a }}
[End of answer A]

[Answer B]
{{ answer_b }}
[End of answer B]
"""

_VARIABLES: dict[str, frozenset[str]] = {
    "single": frozenset({"question", "answer", "reference", "criteria"}),
    "pairwise": frozenset(
        {"question", "answer_a", "answer_b", "reference", "criteria"}
    ),
}

_ENV = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class Rubric:
    """A judge rubric: a checked Jinja2 template for one mode.

    Args:
        mode: ``single`` (grade one answer) or ``pairwise`` (compare two).
        template: the Jinja2 source; ``None`` for the built-in rubric of ``mode``.
        criteria: what the judge should weigh, available as ``{{ criteria }}``.

    Raises:
        TemplateError: when the template does not parse or uses a variable the
            mode does not provide.
    """

    def __init__(
        self,
        mode: Mode,
        template: str | None = None,
        *,
        criteria: str = DEFAULT_CRITERIA,
    ) -> None:
        if mode not in _VARIABLES:
            raise ValueError(
                f"Unknown judge mode {mode!r}; use 'single' or 'pairwise'."
            )
        self.mode = mode
        self.criteria = criteria
        self.source = template if template is not None else _default_for(mode)
        self.is_default = template is None

        # Check the whole template once, up front, rather than on the hundredth call.
        try:
            parsed = _ENV.parse(self.source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"The judge rubric does not parse: {exc.message} (line {exc.lineno}); "
                "fix the Jinja2 syntax."
            ) from exc
        unknown = sorted(meta.find_undeclared_variables(parsed) - _VARIABLES[mode])
        if unknown:
            allowed = ", ".join(sorted(_VARIABLES[mode]))
            raise TemplateError(
                f"The {mode} judge rubric uses {unknown[0]!r}, which it is not given; "
                f"use only {allowed}.",
                variable=unknown[0],
            )
        self._template = _ENV.from_string(self.source)

    @property
    def system(self) -> str:
        """The judge's system prompt, which fixes the output format."""
        return SINGLE_SYSTEM if self.mode == "single" else PAIRWISE_SYSTEM

    def render(self, **variables: Any) -> str:
        """Render the rubric with ``variables`` (``reference`` defaults to ``None``)."""
        values = {"reference": None, "criteria": self.criteria, **variables}
        try:
            return self._template.render(**values)
        except UndefinedError as exc:
            raise TemplateError(
                f"The judge rubric could not be rendered: {exc.message}.", variable=None
            ) from exc

    def __repr__(self) -> str:
        kind = "built-in" if self.is_default else "custom"
        return f"<Rubric {self.mode} {kind}>"


def _default_for(mode: str) -> str:
    return SINGLE_RUBRIC if mode == "single" else PAIRWISE_RUBRIC
