"""A run's statistics for ``GET /api/runs/{run_id}/statistics``.

Per model: how many responses, how many failed, latency, tokens, cost, and the
thumbs and ratings people gave. Win rates come from
:func:`maquina_nb.analysis.winrate.win_rates` over two kinds of votes: each
decision's winner beats every other model that answered that item (a decision
with no winner is a tie among them), and the blind pairwise votes as stored.
Separately, ``feedback_win_rates`` compare, item by item, the ratings (or
thumbs) the models' answers received.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from maquina_nb.db import ModelResponse
from maquina_nb.server import _queries
from maquina_nb.server._replay import FAILED_STATUSES
from maquina_nb.server.schemas import ModelSummary, StatisticsOut, WinRate

__all__ = ["decision_votes", "feedback_votes", "run_statistics"]


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def decision_votes(
    decisions: list[tuple[int, str | None]],
    answers: dict[int, dict[str, str]],
) -> list[tuple[str, str, str]]:
    """Turn decisions into arena-style votes ``(model_a, model_b, winner)``.

    Args:
        decisions: ``(item_index, winner_response_id)`` pairs.
        answers: per item, response id -> model spec of the answers that count.
    """
    votes: list[tuple[str, str, str]] = []
    for item_index, winner_id in decisions:
        models = sorted(set(answers.get(item_index, {}).values()))
        if len(models) < 2:
            continue
        winner = answers[item_index].get(winner_id) if winner_id else None
        if winner is None:
            votes.extend(
                (a, b, "tie") for i, a in enumerate(models) for b in models[i + 1 :]
            )
            continue
        votes.extend((winner, other, "model_a") for other in models if other != winner)
    return votes


def feedback_votes(
    signals: list[tuple[int, str, str, int | None]],
) -> list[tuple[str, str, str]]:
    """Turn ratings and thumbs into votes ``(model_a, model_b, winner)``.

    Per item, two models whose answers both have ratings are compared on their
    mean rating; failing that, two with thumbs on both are compared on their
    mean thumb. The higher mean wins; equal means tie. Thumbs and ratings are
    never compared with each other.
    """
    scores: dict[tuple[int, str, str], list[int]] = defaultdict(list)
    for item_index, model, kind, value in signals:
        if value is not None:
            scores[(item_index, model, kind)].append(value)

    items = sorted({item for item, _, _ in scores})
    votes: list[tuple[str, str, str]] = []
    for item in items:
        models = sorted({m for i, m, _ in scores if i == item})
        for index, a in enumerate(models):
            for b in models[index + 1 :]:
                for kind in ("rating", "thumbs"):
                    left, right = (
                        scores.get((item, a, kind)),
                        scores.get((item, b, kind)),
                    )
                    if left and right:
                        mean_a, mean_b = sum(left) / len(left), sum(right) / len(right)
                        if mean_a == mean_b:
                            votes.append((a, b, "tie"))
                        else:
                            votes.append(
                                (a, b, "model_a" if mean_a > mean_b else "model_b")
                            )
                        break
    return votes


def _blind_votes(engine: Engine, run_id: str) -> list[tuple[str, str, str]]:
    from maquina_nb.db.votes import votes_frame

    frame = votes_frame(engine, run_id)
    return list(zip(frame["model_a"], frame["model_b"], frame["winner"], strict=True))


def _win_rates(votes: list[tuple[str, str, str]], models: list[str]) -> list[WinRate]:
    if not votes:
        return []
    import pandas as pd

    from maquina_nb.analysis.winrate import win_rates

    frame = pd.DataFrame(votes, columns=["model_a", "model_b", "winner"])
    seen = sorted({m for pair in votes for m in pair[:2]})
    ordered = [m for m in models if m in seen] + [m for m in seen if m not in models]
    table = win_rates(frame, models=ordered)
    return [
        WinRate(
            model=str(row.model),
            wins=int(row.wins),
            losses=int(row.losses),
            ties=int(row.ties),
            games=int(row.games),
            score=float(row.score),
            win_rate=_finite(row.win_rate),
            ci_low=_finite(row.ci_low),
            ci_high=_finite(row.ci_high),
        )
        for row in table.itertuples(index=False)
    ]


def run_statistics(engine: Engine, run: Any) -> StatisticsOut:
    """Return the statistics of ``run`` (a stored run row)."""
    run_id = run.id

    # Step 1: the numeric columns of every response.
    query = select(
        ModelResponse.id,
        ModelResponse.item_index,
        ModelResponse.model_spec,
        ModelResponse.status,
        ModelResponse.latency_s,
        ModelResponse.input_tokens,
        ModelResponse.output_tokens,
        ModelResponse.cost_usd,
    ).where(ModelResponse.run_id == run_id)
    with Session(engine) as session:
        rows = session.execute(query).all()

    # Step 2: per-model figures.
    by_model: dict[str, list[Any]] = defaultdict(list)
    answers: dict[int, dict[str, str]] = defaultdict(dict)
    for row in rows:
        by_model[row.model_spec].append(row)
        if row.status not in FAILED_STATUSES:
            answers[row.item_index][row.id] = row.model_spec
    signals = _queries.all_feedback(engine, run_id)
    feedback: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
    for _, model, kind, value in signals:
        feedback[model].append((kind, value))

    models = list(run.models or [])
    models += sorted(m for m in by_model if m not in models)
    summaries = [
        _summary(model, by_model.get(model, []), feedback.get(model, []))
        for model in models
    ]

    # Step 3: votes from decisions and blind pairs, then win rates.
    decisions = _queries.all_decisions(engine, run_id)
    votes = decision_votes(decisions, answers) + _blind_votes(engine, run_id)
    rated = feedback_votes(signals)
    return StatisticsOut(
        run_id=run_id,
        models=summaries,
        win_rates=_win_rates(votes, models),
        decided_items=len({item for item, _ in decisions}),
        votes=len(votes),
        feedback_win_rates=_win_rates(rated, models),
        feedback_votes=len(rated),
    )


def _summary(
    model: str, rows: list[Any], feedback: list[tuple[str, int | None]]
) -> ModelSummary:
    latencies = [float(r.latency_s) for r in rows if r.latency_s is not None]
    input_tokens = [r.input_tokens for r in rows if r.input_tokens is not None]
    output_tokens = [r.output_tokens for r in rows if r.output_tokens is not None]
    costs = [float(r.cost_usd) for r in rows if r.cost_usd is not None]
    ratings = [v for kind, v in feedback if kind == "rating" and v is not None]
    return ModelSummary(
        model=model,
        responses=len(rows),
        failed=sum(1 for r in rows if r.status in FAILED_STATUSES),
        mean_latency_s=sum(latencies) / len(latencies) if latencies else None,
        p95_latency_s=_percentile(latencies, 0.95),
        input_tokens=sum(input_tokens) if input_tokens else None,
        output_tokens=sum(output_tokens) if output_tokens else None,
        cost_usd=sum(costs) if costs else None,
        thumbs_up=sum(1 for kind, v in feedback if kind == "thumbs" and v == 1),
        thumbs_down=sum(1 for kind, v in feedback if kind == "thumbs" and v == -1),
        mean_rating=sum(ratings) / len(ratings) if ratings else None,
        ratings=len(ratings),
    )
