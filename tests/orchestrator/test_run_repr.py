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
