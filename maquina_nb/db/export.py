"""DataFrame exports of runs, responses, feedback and decisions.

Column names are a public contract; each function's docstring lists them with
their dtypes. Conventions shared by every frame:

- timestamps are ``datetime64[us, UTC]``;
- counts and indexes that may be missing are nullable ``Int64`` (``<NA>``, never
  a float);
- money and seconds are ``float64`` with ``NaN`` for unknown (never 0);
- few-valued labels (model spec, provider, status …) are ``category``;
- other text is pandas' string dtype (``str``), missing as ``NaN``;
- JSON columns hold Python ``dict``/``list`` objects.

The rows are read with one query on the driver connection and converted column
by column, which is what keeps a million-row export close to the cost of
``pandas.read_sql`` (see ``benchmarks/bench_db.py``).
"""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, select, type_coerce
from sqlalchemy.types import NullType

from maquina_nb.db.models import (
    Decision,
    HumanFeedback,
    ModelResponse,
    OrchestrationContext,
)
from maquina_nb.errors import InvalidFieldError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "comparison_frame",
    "decisions_frame",
    "feedback_frame",
    "responses_frame",
    "runs_frame",
]

_RUNS = OrchestrationContext.__table__
_RESPONSES = ModelResponse.__table__
_FEEDBACK = HumanFeedback.__table__
_DECISIONS = Decision.__table__
_CHUNK_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    expr: Any
    kind: str  # str, category, int, float, bool, datetime, json


def _responses_columns(audit: bool) -> list[_Column]:
    r = _RESPONSES.c
    columns = [
        _Column("response_id", r.id, "str"),
        _Column("run_id", r.run_id, "str"),
        _Column("item_index", r.item_index, "int"),
        _Column("sample_index", r.sample_index, "int"),
        _Column("model_spec", r.model_spec, "category"),
        _Column("provider", r.provider, "category"),
        _Column("model_id", r.model_id, "category"),
        _Column("status", r.status, "category"),
        _Column("text", r.text, "str"),
        _Column("finish_reason", r.finish_reason, "category"),
        _Column("raw_finish_reason", r.raw_finish_reason, "category"),
        _Column("error_kind", r.error_kind, "category"),
        _Column("error_message", r.error_message, "str"),
        _Column("input_tokens", r.input_tokens, "int"),
        _Column("output_tokens", r.output_tokens, "int"),
        _Column("cached_tokens", r.cached_tokens, "int"),
        _Column("cost_usd", r.cost_usd, "float"),
        _Column("cost_is_estimate", r.cost_is_estimate, "bool"),
        _Column("latency_s", r.latency_s, "float"),
        _Column("ttft_s", r.ttft_s, "float"),
        _Column("cache_key", r.cache_key, "str"),
        _Column("cached_from_id", r.cached_from_id, "str"),
        _Column("variables", r.variables, "json"),
        _Column("created_at", r.created_at, "datetime"),
        _Column("updated_at", r.updated_at, "datetime"),
    ]
    if audit:
        columns += [
            _Column("request_parameters", r.request_parameters, "json"),
            _Column("messages", r.messages, "json"),
            _Column("tool_calls", r.tool_calls, "json"),
        ]
    return columns


def _statement(columns: Sequence[_Column]) -> Select[Any]:
    # NullType: no result processing; values arrive as the driver returns them
    # and are converted a whole column at a time below.
    stmt = select(*(type_coerce(c.expr, NullType()).label(c.name) for c in columns))
    return typing.cast("Select[Any]", stmt)


def _fetch_columns(
    connection: Connection, stmt: Select[Any], width: int
) -> list[list[Any]]:
    """Run ``stmt`` and return its result column by column.

    Rows are split into columns a chunk at a time, while the chunk is still in
    the CPU cache: much faster than one pass per column over a million rows,
    and the full list of row tuples never exists at once.
    """
    columns: list[list[Any]] = [[] for _ in range(width)]

    def take(chunk: Sequence[Any]) -> None:
        for position, column in enumerate(columns):
            column.extend([row[position] for row in chunk])

    compiled = stmt.compile(dialect=connection.dialect)
    params: Any = compiled.params
    if any(not isinstance(v, (str, int, type(None))) for v in params.values()):
        # Values needing type processing (datetimes): the ordinary path.
        for partition in connection.execute(stmt).partitions(_CHUNK_ROWS):
            take(partition)
        return columns

    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(compiled.string, params)
        while chunk := cursor.fetchmany(_CHUNK_ROWS):
            take(chunk)
    finally:
        cursor.close()
    return columns


def _decode_json(values: list[Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    decoded: dict[str, Any] = {}
    out = np.empty(len(values), dtype=object)
    for position, value in enumerate(values):
        if isinstance(value, str):
            # Rows of one item repeat the same text: decode it once.
            result = decoded.get(value)
            if result is None:
                result = decoded[value] = json.loads(value)
            out[position] = result
        else:
            out[position] = value  # None, or already decoded by the driver
    return out


def _categorical(values: list[Any]) -> pd.Categorical:
    import numpy as np
    import pandas as pd

    # A response column has a handful of distinct labels: find them with a set,
    # then code each value with one dict lookup (cheaper than hashing an object
    # array in pandas).
    labels = set(values)
    labels.discard(None)
    categories = sorted(str(label) for label in labels)
    code_of: dict[Any, int] = {label: categories.index(str(label)) for label in labels}
    code_of[None] = -1
    codes = np.fromiter(
        map(code_of.__getitem__, values), dtype=np.int32, count=len(values)
    )
    return pd.Categorical.from_codes(codes, categories=categories)


def _convert(values: list[Any], kind: str) -> Any:
    import numpy as np
    import pandas as pd

    if kind == "datetime":
        parsed = pd.to_datetime(
            pd.array(values, dtype=object), utc=True, format="ISO8601"
        )
        return pd.DatetimeIndex(parsed).as_unit("us").array
    if kind == "int":
        return pd.array(values, dtype="Int64")
    if kind == "float":
        return np.array(values, dtype="float64")
    if kind == "bool":
        return np.array(values, dtype=bool)
    if kind == "category":
        return _categorical(values)
    if kind == "json":
        return _decode_json(values)
    return pd.array(values, dtype="str")


def _read_frame(
    engine: Engine, columns: Sequence[_Column], stmt: Select[Any]
) -> pd.DataFrame:
    import pandas as pd

    with engine.connect() as connection:
        values = _fetch_columns(connection, stmt, len(columns))

    data = {}
    for column in columns:
        data[column.name] = _convert(values.pop(0), column.kind)
    return pd.DataFrame(data, copy=False)


def responses_frame(
    engine: Engine, run_id: str | None = None, *, audit: bool = False
) -> pd.DataFrame:
    """Return responses, one row each, in a stable order.

    Rows come by run, then item, then model in the order the run was given its
    models (models it does not list follow, by name), then sample, then id
    (time order); never in the order the answers happened to finish.

    Args:
        engine: The database.
        run_id: Only this run's responses (default: every run).
        audit: Also return the exact request (``request_parameters``,
            ``messages``) and ``tool_calls``; off by default because decoding
            them dominates the cost of a large export.

    Returns:
        A DataFrame with these columns:

        ========================  =========================  =====================
        column                    dtype                      meaning
        ========================  =========================  =====================
        response_id               str                        32-hex id
        run_id                    str
        item_index                Int64                      row of the input
        sample_index              Int64                      0 unless ``samples``>1
        model_spec                category                   ``provider:model``
        provider                  category
        model_id                  category                   exact id reported
        status                    category                   done, cached, …
        text                      str                        NaN when none
        finish_reason             category                   normalized
        raw_finish_reason         category                   as the provider said
        error_kind                category                   auth, timeout, …
        error_message             str
        input_tokens              Int64                      <NA> when unknown
        output_tokens             Int64
        cached_tokens             Int64
        cost_usd                  float64                    NaN when unknown
        cost_is_estimate          bool
        latency_s                 float64
        ttft_s                    float64                    time to first token
        cache_key                 str
        cached_from_id            str                        cache provenance
        variables                 object (dict)              the item's values
        created_at, updated_at    datetime64[us, UTC]
        (audit) request_parameters, messages, tool_calls: object (dict/list);
        ``messages`` is the whole conversation of the last call (system
        prompt, earlier user turns and the model's earlier answers)
        (audit) prompt            str                        last user turn,
                                                             placed before text
        ========================  =========================  =====================

        NOTE: rows of one item share one ``variables`` dict object (it is
        decoded once per distinct value); copy it before changing it in place.
    """
    columns = _responses_columns(audit)
    r = _RESPONSES.c
    stmt = _statement(columns).order_by(r.run_id, r.item_index, r.sample_index, r.id)
    if run_id is not None:
        stmt = stmt.where(r.run_id == run_id)
    frame = _read_frame(engine, columns, stmt)
    frame = _in_model_order(frame, _models_of_runs(engine, run_id))
    if audit:
        # Beside the answer it is for; the audit columns stay last.
        frame.insert(
            frame.columns.get_loc("text"),
            "prompt",
            _last_user_turns(frame["messages"]),
        )
    return frame


def _models_of_runs(engine: Engine, run_id: str | None) -> dict[str, list[str]]:
    """The model specs of each run (of ``run_id`` only, when given), as given."""
    c = _RUNS.c
    stmt = select(c.id, c.models)
    if run_id is not None:
        stmt = stmt.where(c.id == run_id)
    with engine.connect() as connection:
        rows = connection.execute(stmt).all()
    return {
        run: [str(spec) for spec in models] if isinstance(models, list) else []
        for run, models in rows
    }


def _in_model_order(
    frame: pd.DataFrame, models_of: dict[str, list[str]]
) -> pd.DataFrame:
    """Reorder each item's rows by the run's model order, then sample, then id.

    ``frame`` arrives ordered by run, item, sample and id (what the index
    serves); only the model's place inside an item needs the run's model list.
    """
    import numpy as np
    import pandas as pd

    if len(frame) < 2:
        return frame

    # Step 1: each row's run (in query order) and its model's place in that run.
    run_codes, runs = pd.factorize(frame["run_id"])
    specs = frame["model_spec"].cat
    labels = [str(label) for label in specs.categories]
    place = np.empty((len(runs), len(labels) + 1), dtype=np.int64)
    for row, run in enumerate(runs):
        given = {spec: n for n, spec in enumerate(models_of.get(str(run), []))}
        # Models the run does not list follow, by name (categories are sorted);
        # a row without a model spec (code -1) takes the last column.
        place[row, :-1] = [
            given.get(label, len(given) + k) for k, label in enumerate(labels)
        ]
        place[row, -1] = len(given) + len(labels)
    positions = place[run_codes, specs.codes.to_numpy()]

    # Step 2: sort by run, item, model place and sample, the query's id order
    # breaking ties; a frame already in that order is returned as it is.
    items = frame["item_index"].to_numpy(dtype=np.int64, na_value=-1)
    samples = frame["sample_index"].to_numpy(dtype=np.int64, na_value=-1)
    keys = (run_codes, items, positions, samples)
    if _ascending(keys):
        return frame
    order = np.lexsort((np.arange(len(frame)), *reversed(keys)))
    return frame.take(order).reset_index(drop=True)


def _ascending(keys: Sequence[np.ndarray[Any, Any]]) -> bool:
    """Whether consecutive rows are in lexicographic order of ``keys``."""
    import numpy as np

    first = keys[0]
    decided = np.zeros(len(first) - 1, dtype=bool)
    tied = np.ones(len(first) - 1, dtype=bool)
    for key in keys:
        decided |= tied & (key[1:] > key[:-1])
        tied &= key[1:] == key[:-1]
    return bool((decided | tied).all())


def _last_user_turns(conversations: pd.Series) -> pd.Series:
    """The last user message of each conversation (what the answer replies to)."""
    import pandas as pd

    prompts = []
    for messages in conversations:
        turns = [
            m.get("content")
            for m in (messages or [])
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        prompts.append(turns[-1] if turns else None)
    return pd.Series(prompts, index=conversations.index, dtype="str")


def runs_frame(
    engine: Engine, where: ColumnElement[bool] | None = None
) -> pd.DataFrame:
    """Return runs, newest first.

    Columns: ``run_id`` (str), ``name`` (str), ``status`` (category),
    ``template``, ``system_prompt`` (str), ``models``, ``tags`` (object: list),
    ``parameters``, ``metadata``, ``sdk_versions`` (object: dict),
    ``item_count``, ``samples`` (Int64), ``estimated_cost_usd``,
    ``max_cost_usd``, ``total_cost_usd`` (float64), ``notebook_path``,
    ``package_version`` (str), ``created_at``, ``finished_at``, ``updated_at``
    (datetime64[us, UTC]).
    """
    c = _RUNS.c
    columns = [
        _Column("run_id", c.id, "str"),
        _Column("name", c.name, "str"),
        _Column("status", c.status, "category"),
        _Column("template", c.template, "str"),
        _Column("system_prompt", c.system_prompt, "str"),
        _Column("models", c.models, "json"),
        _Column("tags", c.tags, "json"),
        _Column("parameters", c.parameters, "json"),
        _Column("metadata", c.metadata, "json"),
        _Column("sdk_versions", c.sdk_versions, "json"),
        _Column("item_count", c.item_count, "int"),
        _Column("samples", c.samples, "int"),
        _Column("estimated_cost_usd", c.estimated_cost_usd, "float"),
        _Column("max_cost_usd", c.max_cost_usd, "float"),
        _Column("total_cost_usd", c.total_cost_usd, "float"),
        _Column("notebook_path", c.notebook_path, "str"),
        _Column("package_version", c.package_version, "str"),
        _Column("created_at", c.created_at, "datetime"),
        _Column("finished_at", c.finished_at, "datetime"),
        _Column("updated_at", c.updated_at, "datetime"),
    ]
    stmt = _statement(columns).order_by(c.created_at.desc(), c.id.desc())
    if where is not None:
        stmt = stmt.where(where)
    frame = _read_frame(engine, columns, stmt)
    # Lists of tags and models must not be shared between runs.
    for name in ("models", "tags", "parameters", "metadata", "sdk_versions"):
        frame[name] = frame[name].map(lambda v: v.copy() if v is not None else v)
    return frame


def feedback_frame(engine: Engine, run_id: str | None = None) -> pd.DataFrame:
    """Return feedback, oldest first, with the response it is about.

    Columns: ``feedback_id``, ``response_id``, ``run_id`` (str), ``item_index``
    (Int64), ``model_spec`` (category), ``kind`` (category: thumbs, rating,
    comment, label), ``value`` (Int64: ±1 or 1-5), ``comment``, ``label``
    (str), ``rater`` (category), ``created_at``, ``updated_at``
    (datetime64[us, UTC]).
    """
    f, r = _FEEDBACK.c, _RESPONSES.c
    columns = [
        _Column("feedback_id", f.id, "str"),
        _Column("response_id", f.response_id, "str"),
        _Column("run_id", r.run_id, "str"),
        _Column("item_index", r.item_index, "int"),
        _Column("model_spec", r.model_spec, "category"),
        _Column("kind", f.kind, "category"),
        _Column("value", f.value, "int"),
        _Column("comment", f.comment, "str"),
        _Column("label", f.label, "str"),
        _Column("rater", f.rater, "category"),
        _Column("created_at", f.created_at, "datetime"),
        _Column("updated_at", f.updated_at, "datetime"),
    ]
    stmt = (
        _statement(columns)
        .select_from(_FEEDBACK.join(_RESPONSES, f.response_id == r.id))
        .order_by(f.created_at, f.id)
    )
    if run_id is not None:
        stmt = stmt.where(r.run_id == run_id)
    return _read_frame(engine, columns, stmt)


def decisions_frame(engine: Engine, run_id: str | None = None) -> pd.DataFrame:
    """Return decisions, by run and item, with the winning response's model.

    Columns: ``decision_id``, ``run_id`` (str), ``item_index`` (Int64),
    ``strategy`` (category: human, judge, fastest, cheapest, expected,
    majority), ``winner_response_id`` (str, NaN for a tie),
    ``winner_model_spec`` (category), ``decided_by`` (category), ``rationale``
    (str), ``details`` (object: dict), ``created_at``, ``updated_at``
    (datetime64[us, UTC]).
    """
    d, r = _DECISIONS.c, _RESPONSES.c
    columns = [
        _Column("decision_id", d.id, "str"),
        _Column("run_id", d.run_id, "str"),
        _Column("item_index", d.item_index, "int"),
        _Column("strategy", d.strategy, "category"),
        _Column("winner_response_id", d.winner_response_id, "str"),
        _Column("winner_model_spec", r.model_spec, "category"),
        _Column("decided_by", d.decided_by, "category"),
        _Column("rationale", d.rationale, "str"),
        _Column("details", d.details, "json"),
        _Column("created_at", d.created_at, "datetime"),
        _Column("updated_at", d.updated_at, "datetime"),
    ]
    stmt = (
        _statement(columns)
        .select_from(_DECISIONS.outerjoin(_RESPONSES, d.winner_response_id == r.id))
        .order_by(d.run_id, d.item_index, d.created_at, d.id)
    )
    if run_id is not None:
        stmt = stmt.where(d.run_id == run_id)
    return _read_frame(engine, columns, stmt)


def comparison_frame(
    engine: Engine, run_id: str, value: str = "text", *, models: Sequence[str] = ()
) -> pd.DataFrame:
    """Return one run as a wide table: one row per item, one column per model.

    Args:
        engine: The database.
        run_id: The run.
        value: Which :func:`responses_frame` column fills the cells (``text``,
            ``cost_usd``, ``latency_s``, ``output_tokens``, ``status`` …).
        models: Column order (the run's models); others follow, sorted.

    Returns:
        Index ``item_index`` (or ``item_index, sample_index`` when the run has
        several samples), columns named by model spec, cells holding ``value``
        with that column's dtype. When a model answered an item twice, the
        later answer wins.
    """
    allowed = [c.name for c in _responses_columns(audit=False)]
    if value not in allowed:
        raise InvalidFieldError(
            "comparison_frame", "value", value, f"one of {', '.join(allowed)}"
        )

    frame = responses_frame(engine, run_id)
    frame["model_spec"] = frame["model_spec"].astype("str")
    several_samples = bool((frame["sample_index"] > 0).any())
    index = ["item_index", "sample_index"] if several_samples else ["item_index"]
    frame = frame.sort_values("created_at", kind="stable").drop_duplicates(
        [*index, "model_spec"], keep="last"
    )
    wide = frame.pivot(index=index, columns="model_spec", values=value)

    present = list(wide.columns)
    order = [m for m in models if m in present] + sorted(
        m for m in present if m not in models
    )
    wide = wide.reindex(columns=order).sort_index()
    wide.columns.name = "model_spec"
    return wide
