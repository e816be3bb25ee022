"""Parse the ``%%orchestrate`` line into plain options, the same way everywhere.

IPython's own splitter keeps quote characters on POSIX and calls the Windows
shell API on Windows, so ``--tag "my run"`` would arrive differently on each
(C30). :func:`split_line` splits every platform's line by one rule instead:
whitespace separates words, single or double quotes group them (and are
removed), and backslashes are ordinary characters, so Windows paths survive.

Every mistake becomes exactly :class:`IPython.core.error.UsageError` — IPython
prints that class as one short line, while a subclass would get a traceback.
"""

from __future__ import annotations

import argparse
import keyword
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

__all__ = [
    "DEFAULT_OUT",
    "OrchestrateOptions",
    "check_identifier",
    "expand_model_refs",
    "number",
    "options_from_namespace",
    "parse_with",
    "split_line",
]

#: Where ``%%orchestrate`` puts the run's DataFrame when ``-o`` is not given.
DEFAULT_OUT = "_orchestrate_df"


@dataclass(frozen=True)
class OrchestrateOptions:
    """The options of one ``%%orchestrate`` cell, validated."""

    models: tuple[str, ...]
    over: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    samples: int = 1
    name: str | None = None
    tags: tuple[str, ...] = ()
    cache: bool = True
    replay_only: bool = False
    max_cost: float | None = None
    timeout: float | None = None
    concurrency: int | None = None
    blind: bool = False
    judge: str | None = None
    judge_mode: str = "pairwise"
    background: bool = False
    stream: bool = True
    db: str | None = None
    out: str = DEFAULT_OUT
    extra: dict[str, object] = field(default_factory=dict)


def split_line(line: str, *, magic: str = "%%orchestrate") -> list[str]:
    """Split a magic line into words by the same rule on every platform.

    Raises:
        UsageError: a quote is left open.
    """
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = ""
    try:
        return list(lexer)
    except ValueError:
        raise UsageError(
            f"The {magic} line has an unclosed quote: {line.strip()!r}; close it, "
            "or put the other kind of quote around a value that contains one."
        ) from None


def number(
    kind: type[int] | type[float],
    *,
    low: float | None = None,
    high: float | None = None,
    example: str = "1",
) -> Callable[[str], int | float]:
    """Return an argparse ``type=`` that accepts a finite number in a range."""
    bounds = _describe_bounds(low, high)

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {noun}; give {bounds}, for example {example}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite; give {bounds}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range; give {bounds}, for example {example}"
            )
        return value

    convert.__name__ = kind.__name__
    return convert


def _describe_bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"a value from {low:g} to {high:g}"
    if low is not None:
        return f"a value of at least {low:g}"
    if high is not None:
        return f"a value of at most {high:g}"
    return "a number"


def check_identifier(value: str, *, option: str) -> str:
    """Return ``value`` when it can name a Python variable, else raise UsageError."""
    if value.isidentifier() and not keyword.iskeyword(value):
        return value
    raise UsageError(
        f"{option} needs a Python variable name, not {value!r}; use letters, "
        "digits and underscores, for example results."
    )


def parse_with(
    parser: argparse.ArgumentParser, words: Sequence[str], *, magic: str
) -> argparse.Namespace:
    """Run ``parser`` and turn every argparse complaint into one UsageError line."""
    try:
        return parser.parse_args(list(words))
    except UsageError as exc:
        message = str(exc)
    except SystemExit:  # pragma: no cover - MagicArgumentParser never exits
        message = "the arguments could not be parsed"

    # Reword argparse's two most common complaints so they say what to do.
    if message.startswith("unrecognized arguments:"):
        unknown = message.split(":", 1)[1].strip()
        raise UsageError(
            f"{magic} does not know {unknown!r}; run {magic}? to list the options "
            "(values with spaces need quotes)."
        ) from None
    if "; give " in message:
        raise UsageError(f"{magic} {message}.") from None
    raise UsageError(f"{magic} {message}; run {magic}? to list the options.") from None


def _split_models(groups: Sequence[Sequence[str]] | None) -> tuple[str, ...]:
    specs: list[str] = []
    for group in groups or ():
        for word in group:
            for spec in word.split(","):
                spec = spec.strip()
                if spec and spec not in specs:
                    specs.append(spec)
    return tuple(specs)


def expand_model_refs(
    models: Sequence[str], namespace: Mapping[str, Any]
) -> tuple[str, ...]:
    """Replace each ``@name`` in ``models`` by the specs the variable ``name`` holds.

    The ``%%orchestrate`` line is not expanded by IPython, so ``-m @models``
    is how a notebook chooses models in code (a list of specs, or one
    comma-separated string).

    Raises:
        UsageError: the variable is missing or holds something else.
    """
    specs: list[str] = []
    for spec in models:
        if not spec.startswith("@"):
            values: Sequence[Any] = [spec]
        else:
            name = check_identifier(spec[1:], option="-m @VAR")
            if name not in namespace:
                raise UsageError(
                    f"-m {spec} names no variable in the notebook; define {name} as a "
                    "list of model specs first, e.g. models = ['echo', 'replay:gpt-4']."
                )
            value = namespace[name]
            values = value.split(",") if isinstance(value, str) else value
            if not isinstance(values, Sequence) or not all(
                isinstance(v, str) for v in values
            ):
                raise UsageError(
                    f"-m {spec} must hold a list of model specs (strings), not "
                    f"{type(value).__name__}; e.g. {name} = ['echo', 'replay:gpt-4']."
                )
        for value in values:
            value = value.strip()
            if value and value not in specs:
                specs.append(value)
    if not specs:
        raise UsageError(
            f"-m {' '.join(models)} gives no model; name at least one, e.g. -m echo."
        )
    return tuple(specs)


def options_from_namespace(
    ns: argparse.Namespace, *, default_models: Sequence[str] = ()
) -> OrchestrateOptions:
    """Turn parsed arguments into :class:`OrchestrateOptions`, checking names."""
    models = _split_models(ns.models) or tuple(default_models)
    if not models:
        raise UsageError(
            "%%orchestrate needs at least one model; add -m, for example "
            "-m echo,replay:gpt-4 (or set [defaults] models in maquina.toml)."
        )

    if ns.over is not None:
        check_identifier(ns.over, option="--over")
    check_identifier(ns.out, option="-o/--out")

    tags = tuple(tag.strip() for tag in ns.tag or () if tag.strip())
    return OrchestrateOptions(
        models=models,
        over=ns.over,
        system=ns.system,
        temperature=ns.temperature,
        max_tokens=ns.max_tokens,
        top_p=ns.top_p,
        seed=ns.seed,
        stop=tuple(ns.stop) if ns.stop else None,
        samples=ns.samples,
        name=ns.name,
        tags=tags,
        cache=not ns.no_cache,
        replay_only=ns.replay_only,
        max_cost=ns.max_cost,
        timeout=ns.timeout,
        concurrency=ns.concurrency,
        blind=ns.blind,
        judge=ns.judge,
        judge_mode=ns.judge_mode,
        background=ns.background,
        stream=not ns.no_stream,
        db=ns.db,
        out=ns.out,
    )
