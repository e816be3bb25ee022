"""The ``%%orchestrate`` cell magic and the ``%maquina`` line magic.

This module only parses, delegates and displays: the run itself is
:func:`maquina_nb.orchestrator.orchestrate`, the table is
:class:`maquina_nb.notebook.widget.ComparisonWidget`. Nothing heavy is imported
at module level, so ``%load_ext maquina_nb`` stays fast.

Two behaviours worth knowing:

- IPython normally expands ``$name`` and ``{expr}`` in a magic's line. The
  ``%%orchestrate`` line is *not* expanded (``@no_var_expand``): its options
  carry prompt text, so ``--system "Reply in {lang}, under $budget"`` arrives
  literally, the same on every platform. Put values into the prompt with the
  Jinja2 template in the cell body (``{{ lang }}``) instead.
- The run's DataFrame is stored in the variable named by ``-o/--out``, by
  default ``_orchestrate_df``, and is also returned by
  :func:`maquina_nb.last_run`. The cell shows one table: the widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    cell_magic,
    line_magic,
    magics_class,
    no_var_expand,
)

from maquina_nb._redact import get_logger
from maquina_nb.notebook._args import (
    DEFAULT_OUT,
    OrchestrateOptions,
    number,
    options_from_namespace,
    parse_with,
    split_line,
)

__all__ = ["MaquinaMagics", "parse_orchestrate_line"]

logger = get_logger(__name__)

_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


# IPython's argument decorators carry no annotations; these typed wrappers keep
# mypy's strict mode on for the magic itself.
def magic_arguments(name: str) -> _Decorator:
    """Typed ``IPython.core.magic_arguments.magic_arguments``."""
    return cast(_Decorator, _magic_arguments.magic_arguments(name=name))  # type: ignore[no-untyped-call]


def argument(*args: Any, **kwargs: Any) -> _Decorator:
    """Typed ``IPython.core.magic_arguments.argument``."""
    return cast(_Decorator, _magic_arguments.argument(*args, **kwargs))  # type: ignore[no-untyped-call]


@magics_class
class MaquinaMagics(Magics):
    """``%%orchestrate`` and ``%maquina``."""

    @magic_arguments(name="%orchestrate")
    @argument(
        "-m",
        "--models",
        action="append",
        nargs="+",
        metavar="SPEC",
        help="Models to ask, as specs or aliases, comma- or space-separated "
        "(e.g. -m claude,gpt-4o,ollama:llama3.1 or -m echo replay:gpt-4). "
        "Repeatable. -m @VAR takes the specs from the notebook variable VAR "
        "(a list, or a comma-separated string).",
    )
    @argument(
        "--over",
        "--df",
        dest="over",
        metavar="VAR",
        help="Name of a pandas DataFrame in the notebook; the cell body is "
        "rendered once per row, with the columns as its only template variables "
        "(notebook variables are not used); a column whose name is not an "
        "identifier is {{ row['my col'] }}.",
    )
    @argument(
        "--system",
        metavar="TEXT",
        help="System prompt for every request (quote it when it has spaces).",
    )
    @argument(
        "--temperature",
        type=number(float, low=0, high=2, example="0.7"),
        metavar="T",
        help="Sampling temperature, 0 to 2. Default: each provider's own default.",
    )
    @argument(
        "--max-tokens",
        type=number(int, low=1, example="300"),
        metavar="N",
        help="Upper bound on the tokens of each answer.",
    )
    @argument(
        "--top-p",
        type=number(float, low=0, high=1, example="0.9"),
        metavar="P",
        help="Nucleus sampling, 0 to 1. Default: each provider's own default.",
    )
    @argument(
        "--seed",
        type=number(int, example="42"),
        metavar="N",
        help="Sampling seed, for providers that take one (OpenAI and compatible "
        "servers); every provider's cached answers are kept apart by it.",
    )
    @argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="A stop sequence (quote it when it has spaces); repeat for several.",
    )
    @argument(
        "--samples",
        type=number(int, low=1, high=1000, example="3"),
        metavar="N",
        default=1,
        help="Answers per item and model (default 1).",
    )
    @argument("--name", metavar="TEXT", help="A name for the run, shown in history.")
    @argument(
        "--tag",
        action="append",
        metavar="TAG",
        help="A tag for the run; repeat the option for several tags.",
    )
    @argument(
        "--no-cache",
        action="store_true",
        help="Ask the models again even when an identical request has a stored answer.",
    )
    @argument(
        "--replay-only",
        action="store_true",
        help="Use stored answers only; fail before sending anything if one is missing.",
    )
    @argument(
        "--max-cost",
        type=number(float, low=0, example="0.50"),
        metavar="USD",
        help="Refuse the run if its estimated cost is above this many US dollars, "
        "and stop when the spend reaches it.",
    )
    @argument(
        "--timeout",
        type=number(float, low=0.001, example="60"),
        metavar="SECONDS",
        help="Time limit for each request, in seconds.",
    )
    @argument(
        "--concurrency",
        type=number(int, low=1, high=10_000, example="64"),
        metavar="N",
        help="Requests in flight at once across all models (default 32, safe for "
        "new provider accounts; raise it for local servers).",
    )
    @argument(
        "--blind",
        action="store_true",
        help="Hide model names in the table until you reveal them (for unbiased feedback).",
    )
    @argument(
        "--judge",
        metavar="MODEL",
        help="After the run, let this model pick the best answer of every item "
        "(stored as decisions with strategy 'judge'; each pair is judged in both "
        "orders to cancel position bias).",
    )
    @argument(
        "--judge-mode",
        choices=("pairwise", "single"),
        default="pairwise",
        help="How the judge decides: compare answers in pairs (default) or grade "
        "each answer 1-10.",
    )
    @argument(
        "--background",
        action="store_true",
        help="Return at once; the table keeps streaming and the kernel stays free "
        "for other cells and for clicks. -o is filled when the run ends, or with "
        "what finished when %%maquina stop cancels it.",
    )
    @argument(
        "--no-stream",
        action="store_true",
        help="Ask for whole answers instead of streamed text.",
    )
    @argument(
        "--db",
        metavar="URL",
        help="Database URL for this run (default: MAQUINA_DB_URL, else "
        "sqlite:///maquina.db in the working directory).",
    )
    @argument(
        "-o",
        "--out",
        metavar="VAR",
        default=DEFAULT_OUT,
        help=f"Variable that receives the run's DataFrame (default {DEFAULT_OUT}).",
    )
    @no_var_expand
    @cell_magic
    def orchestrate(self, line: str, cell: str) -> None:
        """Ask several models the cell's prompt at once and compare the answers.

        The cell body is a Jinja2 template (``{{ column }}``; other braces stay
        text). A line ``{# turn #}`` separates the user turns of a multi-turn
        item: each is asked after the model answered the one before. The line
        is not expanded by IPython: ``$x`` and ``{x}`` reach the options
        literally; use ``-m @models`` to take the model list from a variable.
        The run's DataFrame goes to ``-o`` (default ``_orchestrate_df``) and to
        ``maquina_nb.last_run().to_pandas()``. Example::

            %%orchestrate -m echo,replay:gpt-4 --over questions -o answers
            Answer briefly: {{ question }}
        """
        options = parse_orchestrate_line(self.orchestrate, line)

        from maquina_nb.notebook import _runner

        _runner.run_cell(self.shell, options, cell)

    @line_magic
    def maquina(self, line: str) -> Any:
        """Look at models, credentials, stored runs and settings.

        Subcommands::

            %maquina models                 providers, credential status, limits, prices
            %maquina check [SPEC ...] [--live]   validate credentials (--live calls out)
            %maquina history [--limit N] [--name X] [--tag T] [--model M]
                             [--since DATE] [--cursor C]   runs as a DataFrame
            %maquina show RUN               redisplay a stored run with its feedback
            %maquina feedback RUN           the run's feedback as a DataFrame
            %maquina config                 the settings in effect (never key values)
            %maquina db upgrade [--db URL]  migrate the database to the latest schema
            %maquina stop                   cancel the runs started with --background

        Unlike ``%%orchestrate``, this line is expanded by IPython as usual, so
        ``%maquina show $run_id`` works.
        """
        from maquina_nb.notebook import _commands

        return _commands.dispatch(self.shell, line)


def parse_orchestrate_line(
    magic_func: Any, line: str, *, default_models: tuple[str, ...] = ()
) -> OrchestrateOptions:
    """Parse a ``%%orchestrate`` line with the magic's own parser.

    Raises:
        UsageError: for any unknown option, bad number, bad name or missing model.
    """
    words = split_line(line)
    namespace = parse_with(magic_func.parser, words, magic="%%orchestrate")
    if not default_models:
        default_models = _configured_default_models()
    return options_from_namespace(namespace, default_models=default_models)


def _configured_default_models() -> tuple[str, ...]:
    from maquina_nb.config import load_config

    try:
        configured = load_config().get("defaults", {}).get("models", ())
    except Exception as exc:  # a broken config file is a usage problem
        raise UsageError(str(exc)) from None
    if isinstance(configured, str):
        configured = configured.split(",")
    return tuple(str(spec).strip() for spec in configured if str(spec).strip())
