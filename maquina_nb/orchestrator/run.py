"""The result of one orchestration: :class:`Run`, its responses and totals."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from maquina_nb._money import usd
from maquina_nb._redact import get_logger

if TYPE_CHECKING:
    import pandas as pd

    from maquina_nb.db import Repository
    from maquina_nb.templating import TemplateItem

__all__ = [
    "ANSWERED_STATUSES",
    "Response",
    "Run",
    "RunTotals",
    "last_run",
    "percentile",
]

logger = get_logger(__name__)

#: Response statuses that carry an answer from a model (fresh or cached).
ANSWERED_STATUSES = frozenset(
    {"done", "cached", "truncated", "empty", "tool_call_only", "content_filtered"}
)


@dataclass(frozen=True, slots=True)
class Response:
    """One model's answer to one item (one sample of it), as stored.

    The fields are the ``model_responses`` columns (docs/INTERNALS.md) without
    the timestamps.
    """

    id: str
    run_id: str
    item_index: int
    sample_index: int
    model_spec: str
    provider: str
    model_id: str | None
    request_parameters: dict[str, Any]
    messages: list[dict[str, str]]
    """The messages of the last call, system prompt first. For sequential
    (MT-Bench) items the model's earlier answers are in here as assistant turns."""
    variables: dict[str, Any] | None
    text: str | None
    """The answer; for sequential items the answer to the last turn; for a
    cancelled or failed stream, the partial text received."""
    status: str
    finish_reason: str | None
    raw_finish_reason: str | None
    error_kind: str | None
    error_message: str | None
    tool_calls: list[dict[str, Any]] | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    cost_is_estimate: bool
    latency_s: float | None
    ttft_s: float | None
    cache_key: str | None
    cached_from_id: str | None

    @property
    def ok(self) -> bool:
        """Whether the response carries a model's answer."""
        return self.status in ANSWERED_STATUSES

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Response:
        """Build a response from a row dict (``model_responses`` column names)."""
        values: dict[str, Any] = {f.name: row.get(f.name) for f in fields(cls)}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the response as a plain dict of column values."""
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the ``q``-th percentile (0 to 100) by linear interpolation, or ``None``."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Counts, spend, tokens and latency percentiles of a run."""

    responses: int
    answered: int
    """Responses with a model's answer (fresh or cached, truncated included)."""
    failed: int
    skipped: int
    cancelled: int
    cached: int
    truncated: int
    cost_usd: float | None
    """Sum of known costs (cached answers cost 0); ``None`` when no cost is
    known and some answered response has an unknown cost. A run with no
    answered response (all failed, skipped or cancelled) costs 0."""
    cost_is_partial: bool
    """Some answered responses had an unknown cost."""
    input_tokens: int
    output_tokens: int
    latency_p50_s: float | None
    """Percentiles over responses that have a latency (a cached answer keeps
    the latency of the answer it reuses)."""
    latency_p90_s: float | None
    latency_p99_s: float | None

    @classmethod
    def from_responses(cls, responses: Iterable[Response]) -> RunTotals:
        """Add up ``responses``."""
        responses = list(responses)
        counts = {
            "failed": 0,
            "skipped": 0,
            "cancelled": 0,
            "cached": 0,
            "truncated": 0,
        }
        answered = 0
        cost = 0.0
        cost_known = False
        cost_partial = False  # an answered response with an unknown cost
        input_tokens = output_tokens = 0
        latencies: list[float] = []
        for response in responses:
            if response.status in counts:
                counts[response.status] += 1
            if response.ok:
                answered += 1
            if response.cost_usd is not None:
                cost += response.cost_usd
                cost_known = True
            elif response.ok:
                cost_partial = True
            input_tokens += response.input_tokens or 0
            output_tokens += response.output_tokens or 0
            if response.latency_s is not None and response.status not in ("skipped",):
                latencies.append(response.latency_s)
        return cls(
            responses=len(responses),
            answered=answered,
            # Nothing answered, nothing unpriced: that spent nothing, not "unknown".
            cost_usd=cost if cost_known or not cost_partial else None,
            cost_is_partial=cost_partial and cost_known,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_p50_s=percentile(latencies, 50),
            latency_p90_s=percentile(latencies, 90),
            latency_p99_s=percentile(latencies, 99),
            **counts,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the totals as a plain dict."""
        return asdict(self)


class Run:
    """One finished (or cancelled) orchestration.

    Attributes:
        id: the run's id in the database.
        name: the name given to the run, if any.
        status: ``complete`` (every response answered), ``partial`` (some
            failed or were skipped), ``failed`` (none answered) or ``cancelled``.
        items: the rendered items, in order.
        models: the model specs, in column order.
        responses: one :class:`Response` per (item, model, sample), in item,
            sample, model order.
        totals: counts, cost, tokens and latency percentiles.
        estimated_cost_usd: the pre-flight estimate (``None`` if unknown).
        max_cost_usd: the budget the run ran under, if any.
        duration_s: wall time from the first request to the last write.
        unsaved: how many responses could not be written to the database.
        notice: one or two sentences on why the run is not what was asked
            (``max_cost`` stopped it, responses could not be saved), or
            ``None``; also sent on ``RunFinished`` (``extra["notice"]``).

    In a notebook with the extension loaded (``%load_ext maquina_nb``) a run
    shown as a cell's result is the static comparison table
    (:mod:`maquina_nb.notebook.run_display`); elsewhere it is its ``repr``.
    """

    def __init__(
        self,
        *,
        id: str,
        name: str | None,
        status: str,
        items: Sequence[TemplateItem],
        models: Sequence[str],
        responses: Sequence[Response],
        estimated_cost_usd: float | None,
        max_cost_usd: float | None,
        duration_s: float,
        repository: Repository | None,
        unsaved: int = 0,
        notice: str | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.status = status
        self.items = list(items)
        self.models = list(models)
        self.responses = list(responses)
        self.totals = RunTotals.from_responses(self.responses)
        self.estimated_cost_usd = estimated_cost_usd
        self.max_cost_usd = max_cost_usd
        self.duration_s = duration_s
        self.unsaved = unsaved
        self.notice = notice
        self._repository = repository

    def __repr__(self) -> str:
        cost = "unknown" if self.totals.cost_usd is None else usd(self.totals.cost_usd)
        items = _count(len(self.items), "item")
        models = _count(len(self.models), "model")
        return (
            f"<Run {self.id} {self.status}: {items} \N{MULTIPLICATION SIGN} {models}, "
            f"{self.totals.answered}/{self.totals.responses} answered, "
            f"{self.totals.failed} failed, cost {cost}>"
        )

    def response(self, item_index: int, model: str, sample_index: int = 0) -> Response:
        """Return the response of ``model`` to item ``item_index``.

        Raises:
            KeyError: no such response in this run.
        """
        for response in self.responses:
            if (response.item_index, response.model_spec, response.sample_index) == (
                item_index,
                model,
                sample_index,
            ):
                return response
        raise KeyError(
            f"Run {self.id!r} has no response for item {item_index}, model {model!r}, "
            f"sample {sample_index}; its models are {self.models!r}."
        )

    def _require_repository(self) -> Repository:
        if self._repository is None:
            from maquina_nb.errors import StoreError

            raise StoreError(
                f"Run {self.id!r} has no database attached; load it with "
                "Repository.get_run() instead."
            )
        if self.unsaved:
            logger.warning(
                "run %s: %d responses were not saved and are missing from the frame",
                self.id,
                self.unsaved,
            )
        return self._repository

    def to_pandas(self) -> pd.DataFrame:
        """Return one row per response, as stored.

        The frame is the database export (``Repository.responses_frame``), so
        a run read back later gives the same frame. Rows come by item, then
        model in the order the run was given them, then sample (never in the
        order the answers finished). Columns, in order:
        ``response_id``, ``run_id`` (str); ``item_index``, ``sample_index``
        (Int64); ``model_spec``, ``provider``, ``model_id``, ``status``
        (category); ``text`` (str; partial text on cancelled rows);
        ``finish_reason``, ``raw_finish_reason``, ``error_kind`` (category);
        ``error_message`` (str); ``input_tokens``, ``output_tokens``,
        ``cached_tokens`` (Int64, missing when not reported); ``cost_usd``
        (float64, NaN when unknown; 0 for cached answers); ``cost_is_estimate``
        (bool); ``latency_s``, ``ttft_s`` (float64 seconds); ``cache_key``,
        ``cached_from_id`` (str); ``variables`` (dict); ``created_at``,
        ``updated_at`` (datetime64[us, UTC]); ``request_parameters`` (dict);
        ``messages`` (list of ``{"role", "content"}`` dicts: the conversation
        of the last call, system prompt first; for multi-turn items it holds
        the model's earlier answers as ``assistant`` turns); ``tool_calls``
        (list or None); ``prompt`` (str: the last user turn, the one ``text``
        answers). This is ``Repository.responses_frame(run_id, audit=True)``.
        """
        return self._require_repository().responses_frame(self.id, audit=True)

    def comparison(self, value: str = "text") -> pd.DataFrame:
        """Return the items x models table of ``value`` (default the answer text)."""
        return self._require_repository().comparison_frame(self.id, value=value)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


_last_lock = threading.Lock()
_last: Run | None = None


def last_run() -> Run | None:
    """Return the most recent run of this process (finished or cancelled)."""
    with _last_lock:
        return _last


def remember(run: Run) -> None:
    """Make ``run`` the one :func:`last_run` returns."""
    global _last
    with _last_lock:
        _last = run
