"""Apply a :class:`~maquina_nb.analysis.judge.Judge` to a stored run.

Kept apart from ``judge.py`` so the judge itself (prompts, parsing, both-order
comparison) reads without the bookkeeping of items, decisions and votes.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb._loop import run_sync
from maquina_nb._redact import get_logger
from maquina_nb.analysis._decision_rows import DECISION_COLUMNS
from maquina_nb.analysis.judge import add_costs
from maquina_nb.analysis.pairing import USABLE_STATUSES, prompt_text, shared_prompt

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.analysis.judge import Grade, Judge, PairJudgment
    from maquina_nb.db import Decision, ModelResponse, Repository

__all__ = ["judge_stored_run", "resolve_run"]

logger = get_logger(__name__)

# The columns of the rule-based decision frames (decisions.py), plus the stored
# id and whether the row is an earlier decision kept instead of asking again.
_COLUMNS = (*DECISION_COLUMNS, "decision_id", "reused")


def resolve_run(run: Any, repository: Repository | None) -> tuple[str, Repository]:
    """Return ``(run_id, repository)`` for a ``Run``, a run id or a stored run."""
    run_id = run if isinstance(run, str) else getattr(run, "id", None)
    if not isinstance(run_id, str):
        raise TypeError(
            f"Expected a Run, a run id or a stored run, got {type(run).__name__}."
        )
    if repository is None:
        # NOTE: Run keeps its repository private (``_repository``); a public
        # ``Run.repository`` would let this drop the fallback.
        repository = getattr(run, "repository", None) or getattr(
            run, "_repository", None
        )
    if repository is None:
        from maquina_nb.db import Repository

        repository = Repository.from_url()
    return run_id, repository


def _usable(
    responses: Sequence[ModelResponse], models: Sequence[str] | None, sample_index: int
) -> dict[int, list[ModelResponse]]:
    by_item: dict[int, list[ModelResponse]] = defaultdict(list)
    for response in responses:
        if response.sample_index != sample_index:
            continue
        if models is not None and response.model_spec not in models:
            continue
        if response.status not in USABLE_STATUSES or not (response.text or "").strip():
            continue
        by_item[response.item_index].append(response)
    return dict(sorted(by_item.items()))


def _reference(response: ModelResponse, column: str | None) -> str | None:
    if column is None:
        return None
    variables = response.variables or {}
    if column not in variables:
        raise KeyError(
            f"The run's items have no variable {column!r} to use as the expected answer; "
            f"they have {sorted(variables)!r}."
        )
    value = variables[column]
    return None if value is None else str(value)


def judge_stored_run(
    run: Any,
    judge: Judge,
    *,
    repository: Repository | None,
    models: Sequence[str] | None,
    reference: str | None,
    sample_index: int,
    record_votes: bool,
    rejudge: bool = False,
) -> pd.DataFrame:
    """Judge every item of a stored run and record one decision per item.

    Items this judge already decided with the same settings over the same
    responses keep that decision (``reused``) unless ``rejudge``.
    """
    import pandas as pd

    run_id, repository = resolve_run(run, repository)
    stored = repository.get_run(run_id)
    items = _usable(list(stored.responses), models, sample_index)
    order = {spec: i for i, spec in enumerate(stored.models or [])}
    for responses in items.values():
        responses.sort(
            key=lambda r: (order.get(r.model_spec, len(order)), r.model_spec)
        )
    settings = {**judge.details(), "reference": reference}

    # Decisions this judge already stored are kept, not asked (and paid) again.
    earlier = (
        {} if rejudge else _earlier_decisions(stored.decisions, judge, settings, items)
    )
    rows = {
        item_index: _reused_row(run_id, decision, items[item_index])
        for item_index, decision in earlier.items()
    }
    if earlier:
        logger.info(
            "judge %s: kept its earlier decisions on %d of %d items of run %s "
            "(rejudge=True asks again)",
            judge.spec,
            len(earlier),
            len(items),
            run_id,
        )
    to_judge = {i: r for i, r in items.items() if i not in earlier}

    # Ask every remaining question of the judge at once, concurrency-bounded.
    if judge.mode == "single":
        rows.update(
            _judge_single(repository, judge, settings, run_id, to_judge, reference)
        )
    else:
        rows.update(
            _judge_pairwise(
                repository, judge, settings, run_id, to_judge, reference, record_votes
            )
        )

    logger.info(
        "judge %s decided %d items of run %s", judge.spec, len(to_judge), run_id
    )
    frame = pd.DataFrame([rows[i] for i in sorted(rows)], columns=list(_COLUMNS))
    frame["item_index"] = frame["item_index"].astype("Int64")
    frame["reused"] = frame["reused"].astype(bool)
    return frame


def _judge_single(
    repository: Repository,
    judge: Judge,
    settings: dict[str, Any],
    run_id: str,
    items: dict[int, list[ModelResponse]],
    reference: str | None,
) -> dict[int, dict[str, Any]]:
    """Grade every response of ``items``; decide and store each item."""
    tasks = [
        (prompt_text(r.messages), r.text or "", _reference(r, reference))
        for responses in items.values()
        for r in responses
    ]
    grades = iter(run_sync(judge.agrade_many(tasks)))
    rows: dict[int, dict[str, Any]] = {}
    for item_index, responses in items.items():
        item_grades = [next(grades) for _ in responses]
        rows[item_index] = _decide_single(
            repository, judge, settings, run_id, item_index, responses, item_grades
        )
    return rows


def _judge_pairwise(
    repository: Repository,
    judge: Judge,
    settings: dict[str, Any],
    run_id: str,
    items: dict[int, list[ModelResponse]],
    reference: str | None,
    record_votes: bool,
) -> dict[int, dict[str, Any]]:
    """Compare every pair of responses of ``items``; decide and store each item."""
    pairs = {
        item_index: list(itertools.combinations(responses, 2))
        for item_index, responses in items.items()
    }
    tasks = [
        (
            shared_prompt(a.messages, b.messages, a.variables),
            a.text or "",
            b.text or "",
            _reference(a, reference),
        )
        for item_pairs in pairs.values()
        for a, b in item_pairs
    ]
    judgments = iter(run_sync(judge.acompare_many(tasks)))
    rows: dict[int, dict[str, Any]] = {}
    for item_index, item_pairs in pairs.items():
        results = [(a, b, next(judgments)) for a, b in item_pairs]
        if record_votes:
            _record_votes(repository, judge, run_id, item_index, results)
        rows[item_index] = _decide_pairwise(
            repository, judge, settings, run_id, item_index, items[item_index], results
        )
    return rows


def _earlier_decisions(
    decisions: Sequence[Decision],
    judge: Judge,
    settings: dict[str, Any],
    items: dict[int, list[ModelResponse]],
) -> dict[int, Decision]:
    """The latest stored decision per item by this judge, settings and responses."""
    found: dict[int, Decision] = {}
    for decision in sorted(decisions, key=lambda d: (d.created_at, d.id)):
        responses = items.get(decision.item_index)
        if responses is None:
            continue
        if decision.strategy != "judge" or decision.decided_by != judge.spec:
            continue
        details = decision.details or {}
        if any(details.get(key) != value for key, value in settings.items()):
            continue
        # Both modes store a score for every response they weighed.
        if set(details.get("scores") or {}) != {r.id for r in responses}:
            continue
        found[decision.item_index] = decision
    return found


def _reused_row(
    run_id: str, decision: Decision, responses: list[ModelResponse]
) -> dict[str, Any]:
    specs = {r.id: r.model_spec for r in responses}
    winner_id = decision.winner_response_id
    return {
        "run_id": run_id,
        "item_index": decision.item_index,
        "strategy": "judge",
        "outcome": "winner" if winner_id else "tie",
        "winner_response_id": winner_id,
        "winner_model_spec": specs.get(winner_id) if winner_id else None,
        "decided_by": decision.decided_by,
        "rationale": decision.rationale,
        "details": dict(decision.details or {}),
        "decision_id": decision.id,
        "reused": True,
    }


def _row(
    judge: Judge,
    run_id: str,
    item_index: int,
    outcome: str,
    details: dict[str, Any],
    winner: ModelResponse | None = None,
    decision_id: str | None = None,
    rationale: str | None = None,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "item_index": item_index,
        "strategy": "judge",
        "outcome": outcome,
        "winner_response_id": winner.id if winner is not None else None,
        "winner_model_spec": winner.model_spec if winner is not None else None,
        "decided_by": judge.spec,
        "rationale": rationale,
        "details": details,
        "decision_id": decision_id,
        "reused": False,
    }


def _record_decision(
    repository: Repository,
    judge: Judge,
    run_id: str,
    item_index: int,
    winner: ModelResponse | None,
    rationale: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Store the judge's decision on one item (no winner is a tie); return its row."""
    decision_id = repository.record_decision(
        run_id,
        item_index,
        "judge",
        winner_response_id=winner.id if winner is not None else None,
        decided_by=judge.spec,
        rationale=rationale,
        details=details,
    )
    return _row(
        judge,
        run_id,
        item_index,
        "winner" if winner else "tie",
        details,
        winner,
        decision_id,
        rationale,
    )


def _decide_single(
    repository: Repository,
    judge: Judge,
    settings: dict[str, Any],
    run_id: str,
    item_index: int,
    responses: list[ModelResponse],
    grades: list[Grade],
) -> dict[str, Any]:
    scored = [
        (r, g) for r, g in zip(responses, grades, strict=True) if g.score is not None
    ]
    if not scored:
        return _row(
            judge,
            run_id,
            item_index,
            "undecided",
            settings,
            rationale=grades[0].error if grades else None,
        )

    # The best score wins; a shared best score is a tie.
    best = max(g.score for _, g in scored if g.score is not None)
    leaders = [r for r, g in scored if g.score == best]
    winner = leaders[0] if len(leaders) == 1 else None
    rationale = "\n\n".join(
        f"[{r.model_spec}: {g.score}]\n{g.rationale}"
        for r, g in zip(responses, grades, strict=True)
    )
    details = {
        **settings,
        "scores": {r.id: g.score for r, g in zip(responses, grades, strict=True)},
        "models": {r.id: r.model_spec for r in responses},
        "errors": {
            r.id: g.error for r, g in zip(responses, grades, strict=True) if g.error
        },
        "judge_cost_usd": add_costs([g.cost_usd for g in grades]),
    }
    return _record_decision(
        repository, judge, run_id, item_index, winner, rationale, details
    )


def _decide_pairwise(
    repository: Repository,
    judge: Judge,
    settings: dict[str, Any],
    run_id: str,
    item_index: int,
    responses: list[ModelResponse],
    results: list[tuple[ModelResponse, ModelResponse, PairJudgment]],
) -> dict[str, Any]:
    if len(responses) < 2:
        return _row(
            judge,
            run_id,
            item_index,
            "none",
            settings,
            rationale="fewer than two usable responses",
        )
    decided = [(a, b, j) for a, b, j in results if j.outcome is not None]
    if not decided:
        error = next((j.forward.error or j.backward.error for _, _, j in results), None)
        return _row(judge, run_id, item_index, "undecided", settings, rationale=error)

    # Tally pairwise scores (a win 1, a tie 1/2); a unique leader wins the item.
    score: dict[str, float] = {r.id: 0.0 for r in responses}
    for a, b, judgment in decided:
        if judgment.outcome == "a":
            score[a.id] += 1
        elif judgment.outcome == "b":
            score[b.id] += 1
        else:
            score[a.id] += 0.5
            score[b.id] += 0.5
    best = max(score.values())
    leaders = [r for r in responses if score[r.id] == best]
    winner = leaders[0] if len(leaders) == 1 else None

    rationale = "\n\n".join(
        f"=== {a.model_spec} (a) vs {b.model_spec} (b): {j.outcome or 'undecided'} ===\n{j.rationale}"
        for a, b, j in results
    )
    details = {
        **settings,
        "comparisons": [
            {
                "response_a": a.id,
                "response_b": b.id,
                "model_a": a.model_spec,
                "model_b": b.model_spec,
                "a_first": j.forward.winner,
                "b_first": j.backward.winner,
                "outcome": j.outcome,
                "consistent": j.consistent,
                "errors": [e for e in (j.forward.error, j.backward.error) if e],
            }
            for a, b, j in results
        ],
        "scores": score,
        "judge_cost_usd": add_costs([j.cost_usd for _, _, j in results]),
    }
    return _record_decision(
        repository, judge, run_id, item_index, winner, rationale, details
    )


def _record_votes(
    repository: Repository,
    judge: Judge,
    run_id: str,
    item_index: int,
    results: list[tuple[ModelResponse, ModelResponse, PairJudgment]],
) -> None:
    from maquina_nb.db.votes import record_votes

    rater = f"judge:{judge.spec}"
    side = {"a": "left", "b": "right", "tie": "tie"}
    mirrored = {"a": "right", "b": "left", "tie": "tie"}
    votes = []
    for a, b, judgment in results:
        # Forward showed a on the left; backward showed b on the left.
        shown = (
            (a.id, b.id, judgment.forward.winner, side),
            (b.id, a.id, judgment.backward.winner, mirrored),
        )
        for left, right, verdict, to_side in shown:
            if verdict is None:
                continue
            votes.append(
                {
                    "left_response_id": left,
                    "right_response_id": right,
                    "winner": to_side[verdict],
                    "rater": rater,
                    "run_id": run_id,
                    "item_index": item_index,
                }
            )
    record_votes(repository, votes)
