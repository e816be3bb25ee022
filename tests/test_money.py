"""Dollar amounts keep their significant digits (budget messages, totals)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from maquina_nb._money import usd
from maquina_nb.errors import BudgetExceededError


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0.00"),
        (0.00001, "$0.00001"),
        (1.2e-05, "$0.000012"),
        (0.000123456, "$0.000123"),
        (0.0123, "$0.0123"),
        (0.5, "$0.50"),
        (0.999, "$0.999"),
        (1, "$1.00"),
        (12.345, "$12.35"),
        (1234.5, "$1,234.50"),
        (3e-10, "$3.00e-10"),
        (-0.002, "-$0.002"),
    ],
)
def test_usd(value: float, text: str) -> None:
    assert usd(value) == text


def test_budget_message_shows_a_tiny_max_cost() -> None:
    from maquina_nb.orchestrator.budget import check_budget

    plan = SimpleNamespace(estimated_cost_usd=0.000123, unpriced_models=[])
    with pytest.raises(BudgetExceededError) as caught:
        check_budget(plan, 0.00001)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "estimated to cost $0.000123, above max_cost=$0.00001;" in message
    assert "$0.0000," not in message
