"""Budget: a pre-flight cost estimate, refusal above ``max_cost``, and a stop at spend.

Before anything is sent, every request that the cache will not answer is priced
with :func:`maquina_nb.providers.estimate_cost` (approximate prompt tokens, with
``max_tokens`` as the bound on the output). A run whose estimate exceeds
``max_cost`` is refused with :class:`~maquina_nb.errors.BudgetExceededError`
before it exists. While it runs, actual spend is added up as answers arrive;
once it reaches ``max_cost`` no further request is started and the unsent ones
are recorded as ``skipped``.

The pre-flight estimate is the *expected* cost: where ``max_tokens`` is not set
it assumes 1,024 output tokens per answer (``estimate_cost``). While the run
goes, each request instead reserves its *worst-case* cost before it is sent
(:func:`worst_case_cost`): its output bounded by ``max_tokens``, else by the
model's ``max_tokens`` setting, else by the model's known output limit
(:data:`OUTPUT_LIMITS`; Anthropic models by the 4,096 tokens the provider sends),
else by :data:`DEFAULT_WORST_CASE_OUTPUT_TOKENS`. A request whose reservation
does not fit in what is left of ``max_cost`` (spend plus the reservations in
flight) waits for the requests in flight to settle; once nothing is in flight
and it still does not fit, it is recorded as ``skipped`` with a message naming
its worst case. So with any concurrency, spend passes ``max_cost`` only when a
provider returns more tokens than the bound it was given.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from maquina_nb._money import usd
from maquina_nb._redact import get_logger
from maquina_nb.errors import BudgetExceededError, ConfigurationError

if TYPE_CHECKING:
    from maquina_nb.orchestrator.plan import Plan, PlannedRequest
    from maquina_nb.providers.base import BaseAIModel, ModelRequest

__all__ = [
    "DEFAULT_WORST_CASE_OUTPUT_TOKENS",
    "OUTPUT_LIMITS",
    "SpendTracker",
    "check_budget",
    "estimate_plan_cost",
    "worst_case_cost",
    "worst_case_output_tokens",
]

#: Output tokens a request may produce when neither it nor the model's settings
#: set ``max_tokens`` and the model's output limit is not known.
DEFAULT_WORST_CASE_OUTPUT_TOKENS = 16_384

#: Known output limits (tokens) by model-name prefix; the longest prefix wins.
OUTPUT_LIMITS: dict[str, int] = {
    "gpt-3.5-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-4-turbo": 4_096,
    "gpt-4o": 16_384,
    "gpt-4o-mini": 16_384,
    "gpt-4.1": 32_768,
    "gpt-5": 128_000,
    "o1": 100_000,
    "o3": 100_000,
    "o4-mini": 100_000,
}

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
            "cannot estimate the cost of %s; max_cost=%s applies to the others",
            ", ".join(plan.unpriced_models),
            usd(max_cost),
        )
    estimate = plan.estimated_cost_usd
    if estimate is not None and estimate > max_cost:
        raise BudgetExceededError(
            f"The run is estimated to cost {usd(estimate)}, above max_cost={usd(max_cost)}; "
            "raise max_cost, lower max_tokens, or ask fewer items or models.",
            estimate=estimate,
            limit=float(max_cost),
        )


def worst_case_output_tokens(
    model: BaseAIModel, request: ModelRequest
) -> tuple[int, str]:
    """Return the most output tokens ``request`` may produce, and what bounds it.

    The source is ``"max_tokens"``, ``"the model's max_tokens setting"``,
    ``"its output limit"`` or ``"the default bound"``.
    """
    if request.max_tokens is not None:
        return int(request.max_tokens), "max_tokens"
    settings = getattr(model, "settings", None)
    configured = getattr(settings, "parameters", None) or {}
    if configured.get("max_tokens") is not None:
        return int(configured["max_tokens"]), "the model's max_tokens setting"
    if model.provider == "anthropic":
        from maquina_nb.providers.anthropic import DEFAULT_MAX_TOKENS

        return DEFAULT_MAX_TOKENS, "the max_tokens sent by default"
    name = str(model.model or "")
    for prefix in sorted(OUTPUT_LIMITS, key=len, reverse=True):
        if name.startswith(prefix):
            return OUTPUT_LIMITS[prefix], "its output limit"
    return DEFAULT_WORST_CASE_OUTPUT_TOKENS, "the default bound"


def worst_case_cost(planned: PlannedRequest) -> tuple[float | None, int, str]:
    """Return ``(cost, output_tokens, source)``: the most ``planned`` may cost.

    Every turn of a sequential item counts. The cost is ``None`` when the
    model cannot be priced (such a request is never held back).
    """
    from maquina_nb.providers import estimate_cost

    tokens, source = worst_case_output_tokens(planned.model, planned.request)
    bounded = dataclasses.replace(planned.request, max_tokens=tokens)
    cost = estimate_cost(planned.model, bounded)
    if cost is None:
        return None, tokens, source
    return cost * (1 + len(planned.later_turns)), tokens, source


class SpendTracker:
    """Adds up actual spend and reservations; tells what may still be sent."""

    def __init__(self, max_cost: float | None) -> None:
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        """Worst-case cost of the requests in flight."""
        self.known = False
        """Whether any cost has been reported at all."""

    @property
    def left(self) -> float:
        """What is left of ``max_cost`` after spend and reservations (inf without one)."""
        if self.max_cost is None:
            return float("inf")
        return max(0.0, self.max_cost - self.spent - self.reserved)

    def fits(self, amount: float | None) -> bool:
        """Tell whether a request reserving ``amount`` may be sent now."""
        if self.max_cost is None or amount is None:
            return True
        return self.spent + self.reserved + amount <= self.max_cost

    def reserve(self, amount: float | None) -> None:
        """Hold ``amount`` for a request about to be sent."""
        if amount:
            self.reserved += amount

    def release(self, amount: float | None) -> None:
        """Give back a reservation once its request finished (its cost is added apart)."""
        if amount:
            self.reserved = max(0.0, self.reserved - amount)

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
