"""The text form of a Run."""

from __future__ import annotations

import re

from maquina_nb.orchestrator import orchestrate

from .conftest import ScriptedModel


def test_repr_counts_in_singular_and_plural(db_url: str) -> None:
    one = orchestrate("a", [ScriptedModel("x")], db=db_url)
    many = orchestrate(["a", "b"], [ScriptedModel("x"), ScriptedModel("y")], db=db_url)

    assert re.fullmatch(
        r"<Run [0-9a-f]{32} complete: 1 item \u00d7 1 model, 1/1 answered, 0 failed, "
        r"cost \$0\.00>",
        repr(one),
    ), repr(one)
    assert " 2 items \N{MULTIPLICATION SIGN} 2 models, 4/4 answered, " in repr(many)


def test_a_run_with_nothing_answered_costs_nothing_not_unknown(db_url: str) -> None:
    def fail(request: object) -> None:
        raise RuntimeError("down")

    failed = orchestrate(["a", "b"], [ScriptedModel("x", script=fail)], db=db_url)

    assert failed.totals.answered == 0
    assert failed.totals.cost_usd == 0.0
    assert repr(failed).endswith(", 0/2 answered, 2 failed, cost $0.00>")


def test_an_answer_of_unknown_cost_keeps_the_cost_unknown(db_url: str) -> None:
    run = orchestrate("a", [ScriptedModel("x", cost=None)], db=db_url)

    assert run.totals.cost_usd is None
    assert repr(run).endswith(", 1/1 answered, 0 failed, cost unknown>")
