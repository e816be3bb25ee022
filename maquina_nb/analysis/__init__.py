"""Statistics for comparing models: win rates, tests, Bradley-Terry, agreement, power.

Every function returns a pandas DataFrame (plots return matplotlib objects).
Votes are a DataFrame with columns ``model_a`` (shown first), ``model_b`` and
``winner`` (``"model_a"``, ``"model_b"`` or ``"tie"``), as in public arena data;
wherever a win rate or a strength is estimated, a tie counts half a win to each
side.

Example::

    from maquina_nb import analysis

    analysis.win_rates(votes)
    analysis.fit_bradley_terry(votes)
    analysis.bootstrap_bradley_terry(votes, n_resamples=1000, seed=0)
    analysis.sign_test(votes, item="item_index")
    analysis.items_for_win_rate(0.6, power=0.8)
    analysis.decide_expected(run.to_pandas(), "answer", match="normalized")
"""

from __future__ import annotations

from maquina_nb.analysis._votes import AnalysisError
from maquina_nb.analysis.agreement import cohen_kappa, rater_agreement
from maquina_nb.analysis.answers import normalize_answer
from maquina_nb.analysis.bradley_terry import (
    bootstrap_bradley_terry,
    fit_bradley_terry,
    win_matrix,
)
from maquina_nb.analysis.decisions import (
    decide_cheapest,
    decide_expected,
    decide_fastest,
    decide_majority,
    match_expected,
    store_decisions,
)
from maquina_nb.analysis.plots import (
    plot_bradley_terry,
    plot_latency_cost,
    plot_win_rates,
)
from maquina_nb.analysis.position_bias import position_bias, swap_consistency
from maquina_nb.analysis.power import items_for_win_rate, power_for_items
from maquina_nb.analysis.significance import (
    binomial_test,
    holm_adjust,
    mcnemar_test,
    paired_sign_test,
    sign_test,
)
from maquina_nb.analysis.summary import latency_cost_by_model
from maquina_nb.analysis.winrate import pairwise_win_rates, wilson_interval, win_rates

__all__ = [
    "AnalysisError",
    "binomial_test",
    "bootstrap_bradley_terry",
    "cohen_kappa",
    "decide_cheapest",
    "decide_expected",
    "decide_fastest",
    "decide_majority",
    "fit_bradley_terry",
    "holm_adjust",
    "items_for_win_rate",
    "latency_cost_by_model",
    "match_expected",
    "mcnemar_test",
    "normalize_answer",
    "paired_sign_test",
    "pairwise_win_rates",
    "plot_bradley_terry",
    "plot_latency_cost",
    "plot_win_rates",
    "position_bias",
    "power_for_items",
    "rater_agreement",
    "sign_test",
    "store_decisions",
    "swap_consistency",
    "wilson_interval",
    "win_matrix",
    "win_rates",
]
