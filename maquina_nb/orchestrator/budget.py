"""Budget: a pre-flight cost estimate, refusal above ``max_cost``, and a stop at spend.

Before anything is sent, every request that the cache will not answer is priced
with :func:`maquina_nb.providers.estimate_cost` (approximate prompt tokens, with
``max_tokens`` as the bound on the output). A run whose estimate exceeds
``max_cost`` is refused with :class:`~maquina_nb.errors.BudgetExceededError`
before it exists. While it runs, actual spend is added up as answers arrive;
once it reaches ``max_cost`` no further request is started and the unsent ones
are recorded as ``skipped``. Requests already in flight finish (their cost is
already committed), so actual spend can pass the limit by at most what was in
flight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from maquina_nb._redact import get_logger
from maquina_nb.errors import BudgetExceededError, ConfigurationError

if TYPE_CHECKING:
    from maquina_nb.orchestrator.plan import Plan

__all__ = ["SpendTracker", "check_budget", "estimate_plan_cost"]

logger = get_logger(__name__)


def estimate_plan_cost(plan: Plan) -> tuple[float | None, list[str]]:
    """Estimate what the uncached requests of ``plan`` may cost.

    Sequential (MT-Bench) items count once per turn. Requests the cache answers
    cost nothing.

    Returns:
        ``(estimate, unpriced_models)``: the estimate in USD over the models
        that could be priced (``None`` when none could), and the specs of the
        models that could not.
    """
    from maquina_nb.providers import estimate_cost

    total = 0.0
    priced = False
    unpriced: set[str] = set()
    memo: dict[tuple[str, int], float | None] = {}
    for planned in plan.requests:
        if planned.cache_key in plan.cached:
            continue

        # Samples share one request object; price it once per model.
        memo_key = (planned.model_spec, id(planned.request))
        if memo_key not in memo:
            memo[memo_key] = estimate_cost(planned.model, planned.request)
        estimate = memo[memo_key]

        if estimate is None:
            unpriced.add(planned.model_spec)
            continue
        priced = True
        total += estimate * (1 + len(planned.later_turns))

    return (total if priced else None), sorted(unpriced)


def check_budget(plan: Plan, max_cost: float | None) -> None:
    """Refuse the run when its estimate exceeds ``max_cost``.

    Raises:
        ConfigurationError: ``max_cost`` is negative or not a number.
        BudgetExceededError: the estimate is above ``max_cost``.
    """
    if max_cost is None:
        return
    if (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, (int, float))
        or max_cost < 0
    ):
        raise ConfigurationError(
            f"max_cost must be a number of dollars >= 0, not {max_cost!r}."
        )

    if plan.unpriced_models:
        logger.warning(
            "cannot estimate the cost of %s; max_cost=%.4f applies to the others",
            ", ".join(plan.unpriced_models),
            max_cost,
        )
    estimate = plan.estimated_cost_usd
    if estimate is not None and estimate > max_cost:
        raise BudgetExceededError(
            f"The run is estimated to cost ${estimate:.4f}, above max_cost=${max_cost:.4f}; "
            "raise max_cost, lower max_tokens, or ask fewer items or models.",
            estimate=estimate,
            limit=float(max_cost),
        )


class SpendTracker:
    """Adds up actual spend and tells when scheduling must stop."""

    def __init__(self, max_cost: float | None) -> None:
        self.max_cost = max_cost
        self.spent = 0.0
        self.known = False
        """Whether any cost has been reported at all."""

    def add(self, cost: float | None) -> None:
        """Record the cost of one finished response (``None`` = unknown)."""
        if cost is None:
            return
        self.known = True
        self.spent += cost

    @property
    def exhausted(self) -> bool:
        """True once actual spend has reached ``max_cost``."""
        if self.max_cost is None:
            return False
        if self.max_cost == 0:
            # A zero budget still lets free models run.
            return self.spent > 0
        return self.spent >= self.max_cost
