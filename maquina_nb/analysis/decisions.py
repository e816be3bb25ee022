"""Decide which response won each item by a rule: fastest, cheapest, expected, majority.

Each ``decide_*`` function is pure: it reads a responses frame
(``Run.to_pandas()`` or ``Repository.responses_frame(run_id)``) and returns a
decisions frame, one row per item, without touching the database.
:func:`store_decisions` then writes such a frame through
``Repository.record_decision``. (Judge decisions are made by
:func:`maquina_nb.analysis.judge.judge_run`; people's picks come from the widget.)

Only answered responses take part: status ``done``, ``cached`` or ``truncated``
(``statuses=`` changes that), of one sample (``sample_index=0`` by default).
An item whose best value is shared, or where no response qualifies, has no
winner: ``outcome`` is ``"tie"`` or ``"none"`` and ``winner_response_id`` is None.

The decisions frame has the columns ``run_id``, ``item_index``, ``strategy``,
``outcome`` (``winner``, ``tie`` or ``none``), ``winner_response_id``,
``winner_model_spec`` (both missing without a winner), ``decided_by``,
``rationale`` and ``details`` (a dict:
per-response values keyed by response id, and their models).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from maquina_nb._redact import get_logger
from maquina_nb.analysis._decision_rows import (
    ANSWERED,
    DECISION_COLUMNS,
    decision_row,
    decisions_frame,
    group_items,
    usable_responses,
)
from maquina_nb.analysis._votes import AnalysisError
from maquina_nb.analysis.answers import (
    Extractor,
    MatchRule,
    extract_answer,
    match_answer,
    normalize_answer,
)

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.db import Repository

__all__ = [
    "DECISION_COLUMNS",
    "decide_cheapest",
    "decide_expected",
    "decide_fastest",
    "decide_majority",
    "match_expected",
    "store_decisions",
]

logger = get_logger(__name__)

_MATCH_RULES = ("exact", "normalized", "regex", "contains")


def _decide_by_minimum(
    responses: pd.DataFrame,
    column: str,
    strategy: str,
    unit: Callable[[float], str],
    *,
    sample_index: int | None,
    models: Sequence[str] | None,
    statuses: Sequence[str],
) -> pd.DataFrame:
    import pandas as pd

    frame = usable_responses(
        responses,
        sample_index=sample_index,
        models=models,
        statuses=statuses,
        need=(column,),
    )
    frame = frame.assign(_value=pd.to_numeric(frame[column], errors="coerce"))
    rows = []
    for run_id, item, group in group_items(frame):
        known = group[group["_value"].notna()]
        details = {
            "metric": column,
            "values": {
                str(r): (None if pd.isna(v) else float(v))
                for r, v in zip(group["response_id"], group["_value"], strict=True)
            },
            "models": dict(
                zip(
                    group["response_id"].astype(str),
                    group["model_spec"].astype(str),
                    strict=True,
                )
            ),
        }
        if known.empty:
            rows.append(
                decision_row(run_id, item, strategy, f"rule:{strategy}", known,
                          f"No answered response has a known {column}.", details)
            )  # fmt: skip
            continue
        best = known["_value"].min()
        winners = known[np.isclose(known["_value"], best, rtol=1e-12, atol=0.0)]
        ranked = known.sort_values("_value")
        listing = ", ".join(
            f"{m} {unit(v)}"
            for m, v in zip(ranked["model_spec"], ranked["_value"], strict=True)
        )
        verdict = (
            f"{winners['model_spec'].iloc[0]} has the lowest {column}"
            if len(winners) == 1
            else f"{len(winners)} responses share the lowest {column}"
        )
        rows.append(
            decision_row(run_id, item, strategy, f"rule:{strategy}", winners,
                      f"{verdict}: {listing}.", details)
        )  # fmt: skip
    return decisions_frame(rows)


# --- the strategies --------------------------------------------------------------


def decide_fastest(
    responses: pd.DataFrame,
    *,
    metric: str = "latency_s",
    sample_index: int | None = 0,
    models: Sequence[str] | None = None,
    statuses: Sequence[str] = ("done", "truncated"),
) -> pd.DataFrame:
    """Pick, for each item, the response with the lowest latency.

    Cached responses are left out by default: their latency is not a fresh
    measurement. Responses with unknown latency are skipped.

    Args:
        responses: A responses frame.
        metric: ``"latency_s"`` (whole answer) or ``"ttft_s"`` (first token).
        sample_index: Which sample to compare (None: all rows).
        models: Only these model specs.
        statuses: Response statuses that take part.

    Returns:
        A decisions frame with strategy ``fastest``.
    """
    if metric not in ("latency_s", "ttft_s"):
        raise AnalysisError(f"metric must be 'latency_s' or 'ttft_s', got {metric!r}.")
    return _decide_by_minimum(
        responses, metric, "fastest", lambda v: f"{v:.3f} s",
        sample_index=sample_index, models=models, statuses=statuses,
    )  # fmt: skip


def decide_cheapest(
    responses: pd.DataFrame,
    *,
    sample_index: int | None = 0,
    models: Sequence[str] | None = None,
    statuses: Sequence[str] = ("done", "truncated"),
) -> pd.DataFrame:
    """Pick, for each item, the response with the lowest ``cost_usd``.

    Responses whose cost is unknown are skipped (a local model with a known
    zero cost does take part, and several zero costs tie). Cached responses are
    left out by default: they cost 0 because they were reused, not because the
    model is cheap.

    Args:
        responses: A responses frame.
        sample_index: Which sample to compare (None: all rows).
        models: Only these model specs.
        statuses: Response statuses that take part.

    Returns:
        A decisions frame with strategy ``cheapest``.
    """
    return _decide_by_minimum(
        responses, "cost_usd", "cheapest", lambda v: f"${v:.6f}",
        sample_index=sample_index, models=models, statuses=statuses,
    )  # fmt: skip


def _expected_values(frame: pd.DataFrame, expected: Any) -> list[str | None]:
    """One expected answer per row, from a variable, a column, or a mapping."""
    import pandas as pd

    def clean(value: Any) -> str | None:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return None
        return str(value)

    if isinstance(expected, str):
        if expected in frame.columns:
            return [clean(v) for v in frame[expected]]
        if "variables" not in frame.columns:
            raise AnalysisError(
                f"No column or item variable {expected!r} holds the expected answers; "
                "pass the name of a column of over=, or a mapping item_index -> answer."
            )
        values = []
        for variables in frame["variables"]:
            if not isinstance(variables, Mapping) or expected not in variables:
                found = sorted(variables) if isinstance(variables, Mapping) else []
                raise AnalysisError(
                    f"An item has no variable {expected!r} to use as the expected "
                    f"answer; its variables are {found!r}."
                )
            values.append(clean(variables[expected]))
        return values
    if isinstance(expected, Mapping | pd.Series):
        lookup = dict(expected.items())
        return [clean(lookup.get(int(i))) for i in frame["item_index"]]
    raise AnalysisError(
        f"expected= must name a column or variable, or be a mapping/Series indexed "
        f"by item_index; got {type(expected).__name__!r}."
    )


def match_expected(
    responses: pd.DataFrame,
    expected: str | Mapping[int, Any] | pd.Series,
    *,
    match: MatchRule = "normalized",
    extract: Extractor = None,
    sample_index: int | None = 0,
    models: Sequence[str] | None = None,
    statuses: Sequence[str] = ANSWERED,
) -> pd.DataFrame:
    """Mark each response right or wrong against the item's expected answer.

    The result feeds :func:`~maquina_nb.analysis.mcnemar_test` directly.

    Args:
        responses: A responses frame.
        expected: The name of a column of ``over`` (found in each response's
            ``variables``) or of the responses frame, or a mapping / Series from
            ``item_index`` to the expected answer (a pattern for ``match="regex"``).
        match: ``"exact"``, ``"normalized"``, ``"regex"`` or ``"contains"``
            (see :func:`~maquina_nb.analysis.answers.match_answer`).
        extract: Optional regex or callable pulling the final answer out of the
            reply first (e.g. ``r"Answer: (.+)"``).
        sample_index: Which sample to check (None: all rows).
        models: Only these model specs.
        statuses: Response statuses that take part.

    Returns:
        One row per response: ``run_id``, ``item_index``, ``model_spec``,
        ``response_id``, ``answer`` (after extraction), ``expected``, ``correct``.
    """
    import pandas as pd

    if match not in _MATCH_RULES:
        raise AnalysisError(f"match must be one of {_MATCH_RULES!r}, got {match!r}.")
    frame = usable_responses(
        responses,
        sample_index=sample_index,
        models=models,
        statuses=statuses,
        need=("text",),
    )
    wanted = _expected_values(frame, expected)
    answers = [
        extract_answer(None if pd.isna(t) else str(t), extract) for t in frame["text"]
    ]
    correct = [match_answer(a, e, match) for a, e in zip(answers, wanted, strict=True)]
    return pd.DataFrame(
        {
            "run_id": frame["run_id"].to_numpy(),
            "item_index": frame["item_index"].astype("Int64").to_numpy(),
            "model_spec": frame["model_spec"].astype(str).to_numpy(),
            "response_id": frame["response_id"].astype(str).to_numpy(),
            "answer": answers,
            "expected": wanted,
            "correct": correct,
        }
    )


def decide_expected(
    responses: pd.DataFrame,
    expected: str | Mapping[int, Any] | pd.Series,
    *,
    match: MatchRule = "normalized",
    extract: Extractor = None,
    sample_index: int | None = 0,
    models: Sequence[str] | None = None,
    statuses: Sequence[str] = ANSWERED,
) -> pd.DataFrame:
    """Pick, for each item, the one response that matches the expected answer.

    If several responses match, they tie; if none does, there is no winner.
    ``details`` lists every response's extracted answer and whether it matched.

    Args:
        responses: A responses frame.
        expected: As in :func:`match_expected`.
        match: As in :func:`match_expected`.
        extract: As in :func:`match_expected`.
        sample_index: Which sample to check (None: all rows).
        models: Only these model specs.
        statuses: Response statuses that take part.

    Returns:
        A decisions frame with strategy ``expected``.
    """
    marked = match_expected(
        responses, expected, match=match, extract=extract,
        sample_index=sample_index, models=models, statuses=statuses,
    )  # fmt: skip
    rows = []
    for run_id, item, group in group_items(marked):
        winners = group[group["correct"]]
        shown = group["expected"].iloc[0]
        names = ", ".join(winners["model_spec"]) or "no response"
        details = {
            "match": match,
            "expected": shown,
            "correct": dict(
                zip(group["response_id"], map(bool, group["correct"]), strict=True)
            ),
            "answers": dict(zip(group["response_id"], group["answer"], strict=True)),
            "models": dict(zip(group["response_id"], group["model_spec"], strict=True)),
        }
        rationale = f"{names} matched the expected answer {shown!r} ({match})."
        rows.append(
            decision_row(run_id, item, "expected", f"rule:expected-{match}", winners,
                      rationale, details)
        )  # fmt: skip
    return decisions_frame(rows)


def decide_majority(
    responses: pd.DataFrame,
    *,
    extract: Extractor = None,
    normalize: Callable[[str], str] = normalize_answer,
    strict: bool = False,
    sample_index: int | None = 0,
    models: Sequence[str] | None = None,
    statuses: Sequence[str] = ANSWERED,
) -> pd.DataFrame:
    """Pick, for each item, the answer most models agree on.

    Answers are extracted (optionally) and normalized, then grouped. The largest
    group wins if it has at least two members and no other group is as large
    (with ``strict=True``, only if it holds more than half of the responses).
    The winning response recorded is the group's first by model spec; every
    member of the group is listed in ``details["agreeing"]``.

    Args:
        responses: A responses frame.
        extract: Optional regex or callable pulling the final answer out of each
            reply (free-form replies rarely agree word for word).
        normalize: How answers are folded before comparing.
        strict: Require an absolute majority rather than a plurality.
        sample_index: Which sample to compare (None: all rows).
        models: Only these model specs.
        statuses: Response statuses that take part.

    Returns:
        A decisions frame with strategy ``majority``.
    """
    import pandas as pd

    frame = usable_responses(
        responses,
        sample_index=sample_index,
        models=models,
        statuses=statuses,
        need=("text",),
    )
    keys = []
    for text in frame["text"]:
        answer = extract_answer(None if pd.isna(text) else str(text), extract)
        keys.append(normalize(answer) if answer is not None else "")
    frame = frame.assign(_key=keys)

    rows = []
    for run_id, item, group in group_items(
        frame.sort_values("model_spec", kind="stable")
    ):
        answered = group[group["_key"] != ""]
        sizes = answered["_key"].value_counts()
        details: dict[str, Any] = {
            "answers": dict(zip(group["response_id"], group["_key"], strict=True)),
            "models": dict(zip(group["response_id"], group["model_spec"], strict=True)),
            "group_sizes": {str(k): int(v) for k, v in sizes.items()},
        }
        top = int(sizes.iloc[0]) if len(sizes) else 0
        leaders = list(sizes[sizes == top].index)
        enough = top >= 2 and (not strict or top * 2 > len(group))
        if len(leaders) == 1 and enough:
            members = answered[answered["_key"] == leaders[0]]
            details["agreeing"] = list(members["response_id"])
            winner = members.iloc[:1]
            rationale = (
                f"{top} of {len(group)} responses agree on {leaders[0]!r}: "
                f"{', '.join(members['model_spec'])}."
            )
        else:
            winner = answered.iloc[:0]
            rationale = (
                f"No {'majority' if strict else 'plurality'} among {len(group)} "
                f"responses (largest groups: {top} each for {leaders[:3]!r})."
            )
        rows.append(
            decision_row(
                run_id, item, "majority", "rule:majority", winner, rationale, details
            )
        )
    return decisions_frame(rows)


# --- storing -----------------------------------------------------------------------


def store_decisions(
    repository: Repository, run_id: str, frame: pd.DataFrame
) -> pd.DataFrame:
    """Record every row of a decisions frame through ``Repository.record_decision``.

    Args:
        repository: The :class:`maquina_nb.db.Repository` holding the run.
        run_id: The run the decisions belong to.
        frame: A frame from one of the ``decide_*`` functions.

    Returns:
        The frame with a ``decision_id`` column added (the stored ids).

    Raises:
        AnalysisError: The frame lacks a column, or holds rows of another run.
        StoreError: The run or a winning response does not exist.
    """
    missing = [c for c in DECISION_COLUMNS if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"The decisions frame lacks the column(s) {missing!r}; build it with "
            "decide_fastest(), decide_cheapest(), decide_expected() or decide_majority()."
        )
    others = {str(r) for r in frame["run_id"] if r is not None and str(r) != run_id}
    if others:
        raise AnalysisError(
            f"The decisions frame holds rows of run(s) {sorted(others)[:3]!r}, not "
            f"{run_id!r}; filter it to one run first."
        )

    ids = []
    for row in frame.itertuples(index=False):
        winner = row.winner_response_id
        ids.append(
            repository.record_decision(
                run_id,
                int(row.item_index),
                str(row.strategy),
                winner_response_id=None
                if winner is None or winner != winner
                else str(winner),
                decided_by=str(row.decided_by),
                rationale=row.rationale,
                details=row.details if isinstance(row.details, Mapping) else {},
            )
        )
    logger.info("stored %d %s decisions for run %s", len(ids),
                ",".join(sorted(set(frame["strategy"].astype(str)))), run_id)  # fmt: skip
    return frame.assign(decision_id=ids)
