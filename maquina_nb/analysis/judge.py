"""A judge model decides between answers: single-answer grades or pairwise verdicts.

A :class:`Judge` wraps any model spec that :func:`maquina_nb.resolve_model`
accepts, and a :class:`~maquina_nb.analysis._rubrics.Rubric` (a Jinja2 template)::

    judge = Judge("gpt-4o", mode="pairwise")
    judge.compare("What is 2 + 2?", "4", "5").outcome  # "a"

Pairwise comparisons are always asked in both orders, because judges prefer one
position (Zheng et al. 2023, section 3.3). Only when both orders agree does one
answer win; any disagreement counts as a tie. :func:`judge_run` applies a judge
to a stored run and records one ``judge`` decision per item, with the judge's
rationale, through the repository; run again, it keeps the decisions it already
made with the same settings instead of storing duplicates.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from maquina_nb._loop import run_sync
from maquina_nb._redact import get_logger
from maquina_nb.analysis._rubrics import DEFAULT_CRITERIA, Mode, Rubric
from maquina_nb.errors import MaquinaError
from maquina_nb.providers.base import BaseAIModel, Message, ModelRequest

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.db import Repository

__all__ = [
    "Grade",
    "Judge",
    "PairJudgment",
    "Verdict",
    "add_costs",
    "as_judge",
    "judge_run",
    "parse_score",
    "parse_verdict",
]

logger = get_logger(__name__)

VerdictValue = Literal["a", "b", "tie"]

# Scores: the "[[7]]" form first, then labelled forms ("Rating: 7/10", "Score 8"),
# then a bare "7/10". The last match wins: judges often restate the scale first.
_SCORE_PATTERNS = (
    re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?\]\]"),
    re.compile(
        r"\b(?:rating|score|grade)\b\s*(?:is|of)?\s*[:=]?\s*[\*\[\(]*\s*(\d+(?:\.\d+)?)"
        r"(?!\s*(?:-|to)\s*\d)",
        re.IGNORECASE,
    ),
    re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:/|out\s+of)\s*10\b", re.IGNORECASE),
)
_VERDICT_PATTERNS = (
    re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE),
    re.compile(
        r"\b(?:verdict|winner|better answer)\b\s*(?:is)?\s*[:=]?\s*\**\s*"
        r"(?:answer\s+|assistant\s+)?\[?(A|B|C|tie)\]?(?![\w])",
        re.IGNORECASE,
    ),
)
_VERDICT_WORDS: dict[str, VerdictValue] = {"a": "a", "b": "b", "c": "tie", "tie": "tie"}


def parse_score(text: str, *, low: float = 1, high: float = 10) -> float | None:
    """Read a judge's score from its reply, or ``None`` when there is none.

    Accepts ``Rating: [[7]]``, ``[[7.5]]``, ``Score: 8/10``, ``rating of 6``
    and ``9 out of 10``; the last score in the reply wins. A score outside
    ``[low, high]`` counts as no score.
    """
    for pattern in _SCORE_PATTERNS:
        matches = pattern.findall(text or "")
        if matches:
            value = float(matches[-1])
            return value if low <= value <= high else None
    return None


def parse_verdict(text: str) -> VerdictValue | None:
    """Read a pairwise verdict: ``"a"``, ``"b"``, ``"tie"`` or ``None`` (none found).

    Accepts ``[[A]]``, ``[[B]]``, ``[[C]]`` (tie), ``[[tie]]`` and labelled forms
    such as ``Verdict: B``; the last verdict in the reply wins.
    """
    for pattern in _VERDICT_PATTERNS:
        matches = pattern.findall(text or "")
        if matches:
            return _VERDICT_WORDS[matches[-1].lower()]
    return None


@dataclass(frozen=True, slots=True)
class Grade:
    """A judge's grade of one answer."""

    score: float | None
    """1-10, or ``None`` when the reply held no score or the call failed."""
    rationale: str
    """The judge's reply, as written."""
    error: str | None = None
    """Why there is no score: a failed call or an unreadable reply."""
    cost_usd: float | None = None
    """What the judge call cost, when the provider's price is known."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's verdict on one ordering of two answers."""

    winner: VerdictValue | None
    """``a`` (first shown), ``b`` (second shown), ``tie``, or ``None``."""
    rationale: str
    error: str | None = None
    cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class PairJudgment:
    """Both orderings of one comparison, and what they add up to.

    ``forward`` showed answer *a* first; ``backward`` showed answer *b* first and
    its verdict is already translated back, so ``"a"`` always means answer *a*.
    """

    forward: Verdict
    backward: Verdict

    @property
    def outcome(self) -> VerdictValue | None:
        """``a`` or ``b`` when both orders agree, ``tie`` otherwise, ``None`` if either failed."""
        first, second = self.forward.winner, self.backward.winner
        if first is None or second is None:
            return None
        return first if first == second else "tie"

    @property
    def consistent(self) -> bool | None:
        """Whether both orders gave the same verdict (``None`` if either failed)."""
        if self.forward.winner is None or self.backward.winner is None:
            return None
        return self.forward.winner == self.backward.winner

    @property
    def cost_usd(self) -> float | None:
        """What both judge calls cost (``None`` when neither price is known)."""
        return add_costs([self.forward.cost_usd, self.backward.cost_usd])

    @property
    def rationale(self) -> str:
        """Both replies, labelled by which answer was shown first."""
        return (
            f"[Answer a shown first]\n{self.forward.rationale}\n\n"
            f"[Answer b shown first]\n{self.backward.rationale}"
        )


@dataclass(slots=True)
class Judge:
    """A model used as a judge, with its rubric and sampling settings.

    Args:
        model: a model spec (``"gpt-4o"``, ``"anthropic:claude-sonnet-4-5"``, a
            registered custom model) or a ready :class:`BaseAIModel`.
        mode: ``pairwise`` (compare two answers, both orders) or ``single``
            (grade each answer 1-10).
        rubric: a Jinja2 template for the judge's message; ``None`` uses the
            built-in rubric of ``mode`` (see :mod:`maquina_nb.analysis._rubrics`).
        criteria: what the judge should weigh, as ``{{ criteria }}``.
        system: the judge's system prompt; ``None`` uses the built-in one, which
            asks for ``Rating: [[N]]`` or ``[[A]]``/``[[B]]``/``[[C]]``. A custom
            one must ask for those forms too, or the replies cannot be read.
        temperature: sampling temperature of the judge; 0 for repeatable grades.
        max_tokens: the bound on each judge reply.
        concurrency: judge calls in flight at once.
    """

    model: str | BaseAIModel = "gpt-4o"
    mode: Mode = "pairwise"
    rubric: str | None = None
    criteria: str = DEFAULT_CRITERIA
    system: str | None = None
    temperature: float | None = 0.0
    max_tokens: int | None = 1024
    concurrency: int = 8
    _rubric: Rubric = field(init=False, repr=False)
    _model: BaseAIModel | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self._rubric = Rubric(self.mode, self.rubric, criteria=self.criteria)
        if isinstance(self.model, BaseAIModel):
            self._model = self.model
        if self.concurrency < 1:
            raise ValueError(
                f"Judge concurrency must be at least 1, not {self.concurrency!r}."
            )

    @property
    def spec(self) -> str:
        """The judge's model spec, as stored in ``decided_by`` and vote ``rater``."""
        if isinstance(self.model, BaseAIModel):
            return self.model.spec
        return self.model

    def resolved(self) -> BaseAIModel:
        """Return the judge's model, resolving the spec on first use."""
        if self._model is None:
            from maquina_nb.providers import resolve_model

            self._model = resolve_model(str(self.model))
        return self._model

    async def _ask(self, prompt: str) -> tuple[str, str | None, float | None]:
        request = ModelRequest(
            messages=(
                Message("system", self.system or self._rubric.system),
                Message("user", prompt),
            ),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        try:
            completion = await self.resolved().generate(request)
        except MaquinaError as exc:
            logger.warning("judge %s failed: %s", self.spec, exc)
            return "", str(exc), None
        return completion.text or "", None, completion.cost_usd

    async def agrade(
        self, question: str, answer: str, *, reference: str | None = None
    ) -> Grade:
        """Grade one answer from 1 to 10 (needs ``mode="single"``)."""
        self._require("single")
        prompt = self._rubric.render(
            question=question, answer=answer, reference=reference
        )
        reply, error, cost = await self._ask(prompt)
        score = parse_score(reply) if error is None else None
        if error is None and score is None:
            error = f"The judge's reply holds no score from 1 to 10: {reply[-200:]!r}."
        return Grade(score=score, rationale=reply, error=error, cost_usd=cost)

    async def acompare(
        self,
        question: str,
        answer_a: str,
        answer_b: str,
        *,
        reference: str | None = None,
    ) -> PairJudgment:
        """Compare two answers in both orders (needs ``mode="pairwise"``)."""
        self._require("pairwise")
        forward_prompt = self._rubric.render(
            question=question, answer_a=answer_a, answer_b=answer_b, reference=reference
        )
        backward_prompt = self._rubric.render(
            question=question, answer_a=answer_b, answer_b=answer_a, reference=reference
        )
        forward, backward = await asyncio.gather(
            self._ask(forward_prompt), self._ask(backward_prompt)
        )
        return PairJudgment(
            forward=_verdict(*forward, swapped=False),
            backward=_verdict(*backward, swapped=True),
        )

    def grade(
        self, question: str, answer: str, *, reference: str | None = None
    ) -> Grade:
        """Blocking :meth:`agrade`, safe inside a running kernel."""
        return run_sync(self.agrade(question, answer, reference=reference))

    def compare(
        self,
        question: str,
        answer_a: str,
        answer_b: str,
        *,
        reference: str | None = None,
    ) -> PairJudgment:
        """Blocking :meth:`acompare`, safe inside a running kernel."""
        return run_sync(
            self.acompare(question, answer_a, answer_b, reference=reference)
        )

    async def agrade_many(
        self, tasks: Sequence[tuple[str, str, str | None]]
    ) -> list[Grade]:
        """Grade ``(question, answer, reference)`` tasks, ``concurrency`` at a time."""
        limit = asyncio.Semaphore(self.concurrency)

        async def one(task: tuple[str, str, str | None]) -> Grade:
            async with limit:
                return await self.agrade(task[0], task[1], reference=task[2])

        return list(await asyncio.gather(*(one(task) for task in tasks)))

    async def acompare_many(
        self, tasks: Sequence[tuple[str, str, str, str | None]]
    ) -> list[PairJudgment]:
        """Compare ``(question, answer_a, answer_b, reference)`` tasks in both orders."""
        # Each comparison makes two calls, so half the slots bound the calls in flight.
        limit = asyncio.Semaphore(max(1, self.concurrency // 2))

        async def one(task: tuple[str, str, str, str | None]) -> PairJudgment:
            async with limit:
                return await self.acompare(task[0], task[1], task[2], reference=task[3])

        return list(await asyncio.gather(*(one(task) for task in tasks)))

    def details(self) -> dict[str, Any]:
        """The judge's settings, as stored in a decision's ``details``."""
        return {
            "judge": self.spec,
            "mode": self.mode,
            "rubric": "built-in" if self._rubric.is_default else self._rubric.source,
            "criteria": self.criteria,
            "system": "built-in" if self.system is None else self.system,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _require(self, mode: Mode) -> None:
        if self.mode != mode:
            raise ValueError(
                f"This judge was built with mode={self.mode!r}; build one with "
                f"mode={mode!r} to {'grade single answers' if mode == 'single' else 'compare pairs'}."
            )


def _verdict(
    reply: str, error: str | None, cost: float | None, *, swapped: bool
) -> Verdict:
    if error is not None:
        return Verdict(winner=None, rationale=reply, error=error, cost_usd=cost)
    winner = parse_verdict(reply)
    if winner is None:
        return Verdict(
            winner=None,
            rationale=reply,
            error=f"The judge's reply holds no verdict [[A]], [[B]] or [[C]]: {reply[-200:]!r}.",
            cost_usd=cost,
        )
    if swapped and winner != "tie":
        winner = "b" if winner == "a" else "a"
    return Verdict(winner=winner, rationale=reply, cost_usd=cost)


def add_costs(costs: Sequence[float | None]) -> float | None:
    """Sum the known costs; ``None`` when none is known (never a made-up 0)."""
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def as_judge(judge: str | BaseAIModel | Judge, *, mode: Mode | None = None) -> Judge:
    """Turn a spec, model or :class:`Judge` into a :class:`Judge` of ``mode``."""
    if isinstance(judge, Judge):
        if mode is not None and judge.mode != mode:
            raise ValueError(
                f"A {mode} judge is needed here, but {judge.spec!r} is {judge.mode}."
            )
        return judge
    return Judge(judge, mode=mode or "pairwise")


def judge_run(
    run: Any,
    judge: str | BaseAIModel | Judge = "gpt-4o",
    *,
    mode: Mode | None = None,
    repository: Repository | None = None,
    models: Sequence[str] | None = None,
    reference: str | None = None,
    sample_index: int = 0,
    record_votes: bool = True,
    rejudge: bool = False,
) -> pd.DataFrame:
    """Let a judge pick the best response of every item of a stored run.

    Each item gets one ``decisions`` row with strategy ``judge``, ``decided_by``
    the judge's spec, the judge's replies as rationale, and the grades or
    pairwise outcomes in ``details`` (with the judge's settings and
    ``reference``). In pairwise mode every pair of models is judged in both
    orders; a response wins an item when it has the most pairwise wins (ties
    count half) and no other response has as many. With ``record_votes``, each
    ordering is also stored as a pairwise vote by rater ``judge:<spec>``, so
    position bias and judge-human agreement can be measured.

    Calling it again is safe: an item this judge already decided, with the
    same settings (spec, mode, rubric, criteria, system prompt, temperature,
    ``max_tokens``, ``reference``) over the same responses, keeps its stored
    decision. It is not asked again, costs nothing, records no new decision
    or votes, and comes back with ``reused`` set; how many were kept is
    logged at INFO. Items that were undecided, whose responses changed (say
    another model in ``models``), or judged with other settings are asked.
    ``rejudge=True`` asks every item again and stores the new decisions (and
    votes) next to the earlier ones, for example to measure how consistent
    the judge is. Two calls running at the same time may both judge an item.

    Args:
        run: a ``Run``, a run id, or an ``OrchestrationContext``.
        judge: a model spec, a model, or a configured :class:`Judge`.
        mode: ``pairwise`` or ``single`` when ``judge`` is not a :class:`Judge`.
        repository: where the run lives; default the run's own or the default database.
        models: only these model specs (default every model of the run).
        reference: a variable of the run's items holding the expected answer.
        sample_index: which sample to judge when the run drew several.
        record_votes: store pairwise orderings as votes (pairwise mode only).
        rejudge: ask the judge about every item, even those it already decided
            with these settings.

    Returns:
        One row per item, with the columns of the rule-based decision frames
        (:mod:`maquina_nb.analysis.decisions`): ``run_id``, ``item_index``,
        ``strategy`` (``judge``), ``outcome`` (``winner``, ``tie``, ``none`` when
        fewer than two responses qualified, or ``undecided`` when the judge
        failed or gave no readable verdict; only ``winner`` and ``tie`` are
        stored), ``winner_response_id``, ``winner_model_spec``, ``decided_by``,
        ``rationale``, ``details``, ``decision_id`` (the stored decision) and
        ``reused`` (True where an earlier decision was kept instead of asking).
    """
    from maquina_nb.analysis._judging import judge_stored_run

    return judge_stored_run(
        run,
        as_judge(judge, mode=mode),
        repository=repository,
        models=models,
        reference=reference,
        sample_index=sample_index,
        record_votes=record_votes,
        rejudge=rejudge,
    )
