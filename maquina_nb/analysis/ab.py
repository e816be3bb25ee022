"""A/B tests of prompt variants (and models) on the same items, with blind votes.

::

    ab = maquina_nb.ab_test(
        variants={"A": "Answer briefly: {{ question }}", "B": "{{ question }}"},
        models=["replay:gpt-4"],
        over=questions,
    )
    ab.vote()  # blind widget: two answers, random sides, Left / Tie / Right
    ab.summary()  # win rate of A over B with a Wilson interval, and a sign test

Each variant runs through :func:`maquina_nb.orchestrate` over the same items.
Every response is a *contestant*'s answer: a contestant is a variant (when there
is one model), a model (when there is one variant), or ``variant · model``.
The contestants' answers to one item are paired; each pair can be voted on
blind, by people (:meth:`ABTest.vote`) or by a judge model (:meth:`ABTest.judge`,
both orders). Votes are stored in ``pairwise_votes`` under the first variant's
run, and :meth:`ABTest.votes` returns them arena-style with contestant names.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from maquina_nb._loop import run_sync
from maquina_nb._redact import get_logger
from maquina_nb.analysis.judge import Judge, as_judge
from maquina_nb.analysis.pairing import (
    USABLE_STATUSES,
    BlindPair,
    PairOption,
    make_pairs,
    shared_prompt,
)
from maquina_nb.db.ids import new_id
from maquina_nb.providers.base import BaseAIModel

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.db import Repository
    from maquina_nb.notebook.pairwise import PairwiseWidget
    from maquina_nb.orchestrator import Run

__all__ = ["ABTest", "Contestant", "ab_test", "load_ab_test"]

logger = get_logger(__name__)

PairMode = Literal["all", "variants", "models"]

_TAG = "ab-test"


@dataclass(frozen=True, slots=True)
class Contestant:
    """One side an A/B test compares: a prompt variant answered by one model."""

    label: str
    variant: str
    model: str


def _labels(
    variants: Sequence[str], models: Sequence[str]
) -> dict[tuple[str, str], str]:
    if len(models) == 1:
        return {(v, models[0]): v for v in variants}
    if len(variants) == 1:
        return {(variants[0], m): m for m in models}
    return {(v, m): f"{v} · {m}" for v in variants for m in models}


def _shown_prompt(first: Any, second: Any) -> str:
    return shared_prompt(first.messages, second.messages, first.variables)


class ABTest:
    """The runs, pairs, votes and statistics of one A/B test.

    Built by :func:`ab_test`; see the module docstring for the vocabulary.

    Attributes:
        variants: prompt templates by variant name, in the order given.
        models: the model specs every variant ran on.
        runs: the :class:`~maquina_nb.orchestrator.Run` of each variant.
        contestants: what is compared, in order.
        pairs: every pair of contestants' answers to the same item, unshuffled.
        repository: where runs and votes are stored.
    """

    def __init__(
        self,
        *,
        variants: Mapping[str, Any],
        models: Sequence[str],
        runs: Mapping[str, Run],
        repository: Repository,
        pair: PairMode = "all",
    ) -> None:
        self.variants = dict(variants)
        self.models = list(models)
        self.runs = dict(runs)
        self.repository = repository
        labels = _labels(list(self.variants), self.models)
        self.contestants = [Contestant(label, v, m) for (v, m), label in labels.items()]
        self._by_label = {c.label: c for c in self.contestants}
        self._label_of_response: dict[str, str] = {}
        self.pairs = self._make_pairs(labels, pair)

    @property
    def run_ids(self) -> list[str]:
        """The ids of the variants' runs, in variant order."""
        return [run.id for run in self.runs.values()]

    @property
    def anchor_run_id(self) -> str:
        """The run votes and judge decisions are stored under (the first variant's)."""
        return self.run_ids[0]

    def _make_pairs(
        self, labels: Mapping[tuple[str, str], str], mode: PairMode
    ) -> list[BlindPair]:
        # Collect each contestant's usable answer (first sample) per item.
        answers: dict[int, dict[str, Any]] = {}
        for variant, run in self.runs.items():
            for response in run.responses:
                label = labels.get((variant, response.model_spec))
                if label is None or response.sample_index != 0:
                    continue
                if (
                    response.status not in USABLE_STATUSES
                    or not (response.text or "").strip()
                ):
                    continue
                answers.setdefault(response.item_index, {})[label] = response
                self._label_of_response[response.id] = label

        def keep(first: PairOption, second: PairOption) -> bool:
            a, b = self._by_label[first.label], self._by_label[second.label]
            if mode == "variants":
                return a.model == b.model
            if mode == "models":
                return a.variant == b.variant
            return True

        pairs: list[BlindPair] = []
        order = [c.label for c in self.contestants]
        for item_index in sorted(answers):
            present = [
                answers[item_index][label]
                for label in order
                if label in answers[item_index]
            ]
            options = [
                PairOption(r.id, self._label_of_response[r.id], r.text or "")
                for r in present
            ]
            if len(present) < 2:
                continue
            prompt = _shown_prompt(present[0], present[1])
            pairs.extend(
                make_pairs(self.anchor_run_id, item_index, prompt, options, keep=keep)
            )
        return pairs

    # --- voting ---------------------------------------------------------------

    def vote(
        self,
        *,
        rater: str | None = None,
        seed: int | None = None,
        title: str | None = None,
        resume: bool = True,
    ) -> PairwiseWidget:
        """Return a blind voting widget over the pairs (random order and sides).

        Args:
            rater: who votes; default the configured rater name.
            seed: makes the order and the sides repeatable.
            title: shown above each pair.
            resume: leave out the pairs this rater has already voted on, so a
                session interrupted by a kernel restart picks up where it was.
        """
        # NOTE: the widget lives in the notebook layer above this one; it is
        # imported here, on demand, only to hand it to the caller.
        from maquina_nb.notebook.pairwise import PairwiseWidget

        if rater is None:
            from maquina_nb.config import rater_name

            rater = rater_name()
        pairs = self.pairs
        if resume:
            done = self._voted_pairs(rater)
            pairs = [p for p in pairs if _pair_key(p) not in done]
        return PairwiseWidget(
            pairs,
            repository=self.repository,
            rater=rater,
            seed=seed,
            title=title
            or f"Blind A/B vote: {' vs '.join(c.label for c in self.contestants)}",
        )

    def _voted_pairs(self, rater: str) -> set[frozenset[str]]:
        from maquina_nb.db.votes import votes_frame

        votes = votes_frame(self.repository, self.anchor_run_id, rater=rater)
        return {
            frozenset((left, right))
            for left, right in zip(
                votes["left_response_id"], votes["right_response_id"], strict=True
            )
        }

    def record_vote(
        self, pair: BlindPair, winner: str, *, rater: str | None = None
    ) -> str:
        """Store a vote on ``pair`` as shown (``left``, ``right`` or ``tie``)."""
        from maquina_nb.db.votes import record_votes

        return record_votes(self.repository, [_vote_row(pair, winner, rater)])[0]

    def judge(
        self, judge: str | Judge, *, reference: str | None = None
    ) -> pd.DataFrame:
        """Let a judge model vote on every pair, in both orders.

        Each ordering is stored as a vote by rater ``judge:<spec>``; each pair
        also gets a ``judge`` decision (under the first variant's run) with the
        judge's rationale. Returns one row per pair: ``item_index``, ``left``,
        ``right`` (contestants), ``outcome`` (``left``, ``right``, ``tie`` or
        ``None`` when the judge failed) and ``decision_id``.
        """
        import pandas as pd

        judge = as_judge(judge, mode="pairwise")
        tasks = [
            (
                pair.prompt,
                pair.left.text,
                pair.right.text,
                None if reference is None else _variable(self, pair, reference),
            )
            for pair in self.pairs
        ]
        judgments = run_sync(judge.acompare_many(tasks))

        # Both orderings become votes, stored in one transaction.
        from maquina_nb.db.votes import record_votes

        rater = f"judge:{judge.spec}"
        votes = []
        for pair, judgment in zip(self.pairs, judgments, strict=True):
            orders = (
                (pair, judgment.forward.winner, _SIDE),
                (pair.swapped(), judgment.backward.winner, _MIRROR),
            )
            for shown, verdict, to_side in orders:
                if verdict is not None:
                    votes.append(_vote_row(shown, to_side[verdict], rater))
        record_votes(self.repository, votes)

        # One judge decision per pair, with both replies as the rationale.
        rows = []
        for pair, judgment in zip(self.pairs, judgments, strict=True):
            outcome = None if judgment.outcome is None else _SIDE[judgment.outcome]
            decision_id = None
            if outcome is not None:
                winner = {"left": pair.left, "right": pair.right}.get(outcome)
                decision_id = self.repository.record_decision(
                    pair.run_id,
                    pair.item_index,
                    "judge",
                    winner_response_id=winner.response_id if winner else None,
                    decided_by=judge.spec,
                    rationale=judgment.rationale,
                    details={
                        **judge.details(),
                        "ab_pair": [pair.left.response_id, pair.right.response_id],
                        "contestants": [pair.left.label, pair.right.label],
                        "a_first": judgment.forward.winner,
                        "b_first": judgment.backward.winner,
                        "consistent": judgment.consistent,
                        "judge_cost_usd": judgment.cost_usd,
                    },
                )
            rows.append(
                {
                    "item_index": pair.item_index,
                    "left": pair.left.label,
                    "right": pair.right.label,
                    "outcome": outcome,
                    "decision_id": decision_id,
                }
            )
        logger.info("judge %s voted on %d A/B pairs", judge.spec, len(rows))
        return pd.DataFrame(
            rows, columns=["item_index", "left", "right", "outcome", "decision_id"]
        )

    # --- results --------------------------------------------------------------

    def votes(self, *, rater: str | None = None) -> pd.DataFrame:
        """Return the stored votes, arena-style, with contestant names.

        Columns are those of :func:`maquina_nb.db.votes.votes_frame`, with
        ``model_a`` / ``model_b`` holding contestant names (left / right) and
        ``spec_a`` / ``spec_b`` the model specs as stored.
        """
        from maquina_nb.db.votes import votes_frame

        frame = votes_frame(self.repository, self.anchor_run_id, rater=rater)
        frame = frame.rename(columns={"model_a": "spec_a", "model_b": "spec_b"})
        frame.insert(
            3, "model_a", frame["left_response_id"].map(self._label_of_response)
        )
        frame.insert(
            4, "model_b", frame["right_response_id"].map(self._label_of_response)
        )
        return frame

    def win_rates(
        self, *, rater: str | None = None, confidence: float = 0.95
    ) -> pd.DataFrame:
        """Return each contestant's win rate (ties half) with a Wilson interval."""
        from maquina_nb.analysis.winrate import win_rates

        return win_rates(
            self.votes(rater=rater),
            confidence=confidence,
            models=[c.label for c in self.contestants],
        )

    def summary(
        self, *, rater: str | None = None, confidence: float = 0.95
    ) -> pd.DataFrame:
        """Compare every pair of contestants: win rate, interval and sign test.

        Args:
            rater: only this rater's votes (``judge:<spec>`` for a judge);
                default every vote.
            confidence: level of the Wilson intervals.

        Returns:
            One row per pair of contestants that met: ``contestant_a``,
            ``contestant_b``, ``votes``, ``wins_a``, ``wins_b``, ``ties`` (votes),
            ``win_rate_a`` (ties half), ``ci_low``, ``ci_high`` (Wilson),
            ``items``, ``items_a``, ``items_b`` (items each side won on balance),
            ``p_value`` (exact sign test over items, ties dropped), ``p_holm``
            (Holm-adjusted across the pairs) and ``conclusion`` (significant
            when ``p_holm < 1 - confidence``). With no votes yet the frame has
            these columns and no rows, and a warning says how to vote.
        """
        from maquina_nb.analysis._ab_summary import summarize

        order = [c.label for c in self.contestants]
        votes = self.votes(rater=rater)
        if votes.empty:
            _warn_no_votes(rater)
        return summarize(votes, order, confidence=confidence)

    def __repr__(self) -> str:
        names = ", ".join(c.label for c in self.contestants)
        return f"<ABTest {names}: {len(self.pairs)} pairs over runs {self.run_ids}>"


def _warn_no_votes(rater: str | None) -> None:
    """Say once, for an empty summary, that votes come first and how to give them."""
    if rater is None:
        logger.warning(
            "The A/B test has no votes yet, so its summary is empty; vote with "
            "ab.vote() (or let a judge model vote with ab.judge(MODEL)), then call "
            "ab.summary() again."
        )
        return
    if rater.startswith("judge:"):
        how = f"let that judge vote with ab.judge({rater[len('judge:') :]!r})"
    else:
        how = f"vote with ab.vote(rater={rater!r})"
    logger.warning(
        "The A/B test has no votes by rater %r, so its summary is empty; %s, or "
        "call ab.summary() without rater= for everyone's.",
        rater,
        how,
    )


_SIDE = {"a": "left", "b": "right", "tie": "tie"}
# The backward ordering showed answer b on the left.
_MIRROR = {"a": "right", "b": "left", "tie": "tie"}


def _pair_key(pair: BlindPair) -> frozenset[str]:
    return frozenset((pair.left.response_id, pair.right.response_id))


def _vote_row(pair: BlindPair, winner: str, rater: str | None) -> dict[str, Any]:
    return {
        "left_response_id": pair.left.response_id,
        "right_response_id": pair.right.response_id,
        "winner": winner,
        "rater": rater,
        "run_id": pair.run_id,
        "item_index": pair.item_index,
    }


def _variable(test: ABTest, pair: BlindPair, name: str) -> str | None:
    for run in test.runs.values():
        for response in run.responses:
            if response.id == pair.left.response_id:
                value = (response.variables or {}).get(name)
                return None if value is None else str(value)
    return None


def _caller_namespace() -> Mapping[str, Any]:
    # The frame that called ab_test(): its variables fill template placeholders
    # that are not columns, just as when it calls orchestrate() itself.
    frame = sys._getframe(2)
    try:
        return collections.ChainMap(dict(frame.f_locals), frame.f_globals)
    finally:
        del frame


def _repository_for(db: Any) -> Repository:
    from maquina_nb.db import Repository

    if db is None or isinstance(db, str):
        return Repository.from_url(db)
    if isinstance(db, Repository):
        return db
    return Repository(db)


def ab_test(
    variants: Mapping[str, Any],
    models: str | BaseAIModel | Sequence[str | BaseAIModel],
    *,
    over: Any = None,
    judge: str | Judge | None = None,
    pair: PairMode = "all",
    system: str | None = None,
    name: str | None = None,
    tags: Sequence[str] = (),
    db: Any = None,
    namespace: Mapping[str, Any] | None = None,
    **options: Any,
) -> ABTest:
    """Run prompt variants (and models) over the same items, ready for blind votes.

    Args:
        variants: prompts by variant name, e.g. ``{"A": template_a, "B":
            template_b}``; each is anything ``orchestrate`` takes as its prompt
            (a Jinja2 template, a list of prompts, MT-Bench ``{"turns": [...]}``
            items). One variant compares models only.
        models: model specs (or model objects) every variant runs on.
        over: the items: a DataFrame whose rows fill the templates, or ``None``.
        judge: a judge model spec (or :class:`Judge`) to vote on every pair in
            both orders right away; people can still vote too.
        pair: which answers to pair per item: ``all`` contestants, only
            ``variants`` of the same model, or only ``models`` of the same variant.
        system: a system prompt shared by all variants.
        name: a name for the test; each run is named ``<name>:<variant>``.
        tags: tags for every run (``ab-test`` and ``ab-test:<id>`` are added).
        db: a database URL, ``Repository`` or engine; default the configured one.
        namespace: variables the templates may use besides the columns of
            ``over`` (default: the caller's variables, as for ``orchestrate``).
        **options: passed to :func:`maquina_nb.orchestrate` (``temperature``,
            ``max_tokens``, ``cache``, ``replay_only`` …).

    Returns:
        The :class:`ABTest`.

    Raises:
        ValueError: fewer than two contestants (variants times models).
    """
    from maquina_nb.orchestrator import orchestrate

    if not variants:
        raise ValueError(
            "ab_test needs at least one variant, e.g. variants={'A': '...'}."
        )
    specs = [models] if isinstance(models, (str, BaseAIModel)) else list(models)
    if len(variants) * len(specs) < 2:
        raise ValueError(
            f"An A/B test needs two things to compare; got {len(variants)} variant(s) "
            f"and {len(specs)} model(s). Add a variant or a model."
        )
    labels = [m if isinstance(m, str) else m.spec for m in specs]
    repository = _repository_for(db)
    test_name = name or "ab-test"
    # One tag shared by this test's runs only, so load_ab_test() finds them again.
    test_tag = f"{_TAG}:{new_id()}"
    if namespace is None:
        namespace = _caller_namespace()

    # One run per variant, all over the same items.
    runs = {}
    for variant, template in variants.items():
        runs[variant] = orchestrate(
            template,
            specs,
            over=over,
            system=system,
            name=f"{test_name}:{variant}",
            tags=(*tags, _TAG, test_tag),
            db=repository,
            namespace=namespace,
            **options,
        )
    test = ABTest(
        variants=variants, models=labels, runs=runs, repository=repository, pair=pair
    )
    logger.info(
        "A/B test %s: %d contestants, %d pairs",
        test_name,
        len(test.contestants),
        len(test.pairs),
    )

    if judge is not None:
        test.judge(judge)
    return test


def load_ab_test(
    name: str = "ab-test", *, db: Any = None, pair: PairMode = "all"
) -> ABTest:
    """Load the latest A/B test named ``name`` back from the database.

    Use it after a kernel restart: the runs, pairs and stored votes come back
    (``ABTest.vote()`` then shows only the pairs a rater has not voted on), and
    nothing is sent to any model. The runs are the stored ones
    (``OrchestrationContext``), not ``Run`` objects.

    Raises:
        StoreError: no A/B test of that name is stored.
    """
    from maquina_nb.analysis._ab_load import load_stored_test

    return load_stored_test(name, _repository_for(db), pair=pair)
