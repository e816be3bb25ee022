"""A template that fails on some row stops the run before anything is sent."""

from __future__ import annotations

import pandas as pd
import pytest

from maquina_nb.errors import TemplateError
from maquina_nb.orchestrator import orchestrate

from .conftest import ScriptedModel


def test_render_error_on_a_later_row_sends_nothing(db_url: str) -> None:
    model = ScriptedModel("m")
    frame = pd.DataFrame({"n": [1, 0]})

    with pytest.raises(TemplateError, match=r"for row 1: ZeroDivisionError"):
        orchestrate("{{ 1 / n }}", [model], over=frame, db=db_url)

    assert model.calls == []
