"""Rule-based decisions (fastest, cheapest, expected answer, majority) and storing them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest

from maquina_nb.analysis import (
    AnalysisError,
    decide_cheapest,
    decide_expected,
    decide_fastest,
    decide_majority,
    match_expected,
    mcnemar_test,
    normalize_answer,
    store_decisions,
)
from maquina_nb.analysis.answers import extract_answer, match_answer

MODELS = ["anthropic:claude", "ollama:llama", "openai:gpt-4o"]


def values(series: pd.Series) -> list[object]:
    """The column as a list, with missing values (None or NaN) as None."""
    return [None if pd.isna(v) else v for v in series]


def responses_frame(run_id: str = "r1") -> pd.DataFrame:
    """Two items, three models, in the layout of Repository.responses_frame()."""
    rows = [
        # item 0: expected "Paris"
        ("a0", 0, "anthropic:claude", "done", "The answer is Paris.", 0.0030, 1.20, 0.30),
        ("b0", 0, "ollama:llama", "done", "paris", 0.0, 0.90, 0.50),
        ("c0", 0, "openai:gpt-4o", "cached", "Lyon", 0.0020, 0.10, 0.05),
        # item 1: expected "1,000"
        ("a1", 1, "anthropic:claude", "done", "Answer: 1000", 0.0010, 2.00, 0.40),
        ("b1", 1, "ollama:llama", "failed", None, None, 0.20, None),
        ("c1", 1, "openai:gpt-4o", "done", "Answer: 1,000", 0.0010, 2.00, 0.20),
    ]  # fmt: skip
    frame = pd.DataFrame(
        rows,
        columns=["response_id", "item_index", "model_spec", "status", "text",
                 "cost_usd", "latency_s", "ttft_s"],
    )  # fmt: skip
    frame.insert(1, "run_id", run_id)
    frame["item_index"] = frame["item_index"].astype("Int64")
    frame["sample_index"] = pd.array([0] * len(frame), dtype="Int64")
    frame["model_spec"] = frame["model_spec"].astype("category")
    frame["status"] = frame["status"].astype("category")
    answers = {0: {"question": "Capital of France?", "answer": "Paris"},
               1: {"question": "Ten times a hundred?", "answer": "1,000"}}  # fmt: skip
    frame["variables"] = [answers[i] for i in frame["item_index"]]
    return frame


# --- answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("The Eiffel Tower.", "eiffel tower", id="articles-punctuation"),
        pytest.param("1,000 apples", "1000 apples", id="thousands"),
        pytest.param("It is 3.5!", "it is 3.5", id="decimal-kept"),
        pytest.param("  PARIS\n", "paris", id="case-space"),
        pytest.param("ﬁne", "fine", id="nfkc"),
        pytest.param(None, "", id="none"),
    ],
)
def test_normalize_answer(text: str | None, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("answer", "expected", "rule", "result"),
    [
        pytest.param("Paris ", "Paris", "exact", True, id="exact-strips"),
        pytest.param("paris", "Paris", "exact", False, id="exact-case"),
        pytest.param("The paris.", "Paris", "normalized", True, id="normalized"),
        pytest.param("It is 42.", "4", "contains", False, id="contains-whole-words"),
        pytest.param("It is 42.", "42", "contains", True, id="contains"),
        pytest.param("x = 42", r"\b4\d\b", "regex", True, id="regex"),
        pytest.param(None, "x", "exact", False, id="no-answer"),
        pytest.param("x", None, "normalized", False, id="no-expected"),
    ],
)
def test_match_answer(
    answer: str | None, expected: str | None, rule: str, result: bool
) -> None:
    assert match_answer(answer, expected, rule) is result  # type: ignore[arg-type]


def test_extract_answer_and_bad_patterns() -> None:
    assert extract_answer("Reasoning...\nAnswer: B", r"Answer:\s*(\w+)") == "B"
    assert extract_answer("no marker", r"Answer:\s*(\w+)") is None
    assert extract_answer("abc", str.upper) == "ABC"
    with pytest.raises(AnalysisError, match=re.escape("pattern '(' is not a valid")):
        extract_answer("x", "(")


# --- the strategies ---------------------------------------------------------------------


def test_decide_fastest_skips_cached_and_failed() -> None:
    decisions = decide_fastest(responses_frame())

    assert list(decisions["outcome"]) == ["winner", "tie"]
    assert values(decisions["winner_response_id"]) == ["b0", None]
    assert decisions.loc[0, "rationale"] == (
        "ollama:llama has the lowest latency_s: ollama:llama 0.900 s, anthropic:claude 1.200 s."
    )
    assert decisions.loc[1, "details"]["values"] == {"a1": 2.0, "c1": 2.0}
    assert set(decisions["strategy"]) == {"fastest"}
    assert set(decisions["decided_by"]) == {"rule:fastest"}
    by_first_token = decide_fastest(responses_frame(), metric="ttft_s")
    assert values(by_first_token["winner_response_id"]) == ["a0", "c1"]


def test_decide_cheapest_counts_zero_cost_and_skips_unknown() -> None:
    frame = responses_frame()

    decisions = decide_cheapest(frame)

    assert values(decisions["winner_model_spec"]) == ["ollama:llama", None]
    assert list(decisions["outcome"]) == ["winner", "tie"]
    unknown = decide_cheapest(frame.assign(cost_usd=float("nan")))
    assert list(unknown["outcome"]) == ["none", "none"]


def test_decide_cheapest_ignores_answers_reused_from_the_cache() -> None:
    frame = responses_frame()
    cached = frame["response_id"] == "c0"
    frame["cost_usd"] = frame["cost_usd"].where(~cached, 0.0)
    frame = frame[frame["response_id"] != "b0"]

    decisions = decide_cheapest(frame)

    assert values(decisions["winner_model_spec"])[0] == "anthropic:claude"


@pytest.mark.parametrize(
    ("match", "winners", "outcomes"),
    [
        pytest.param("exact", [None, None], ["none", "none"], id="exact"),
        pytest.param("normalized", ["b0", None], ["winner", "none"], id="normalized"),
        pytest.param("contains", [None, None], ["tie", "tie"], id="contains"),
    ],
)
def test_decide_expected_reads_the_expected_answer_from_item_variables(
    match: str, winners: list[str | None], outcomes: list[str]
) -> None:
    decisions = decide_expected(responses_frame(), "answer", match=match)  # type: ignore[arg-type]

    assert values(decisions["winner_response_id"]) == winners
    assert list(decisions["outcome"]) == outcomes
    assert set(decisions["decided_by"]) == {f"rule:expected-{match}"}


def test_decide_expected_with_extraction_and_mapping() -> None:
    decisions = decide_expected(
        responses_frame(),
        {0: "Paris", 1: "1000"},
        extract=r"(?:Answer|answer is):?\s*(.+)",
    )

    # item 0: claude "Paris." and llama "paris" (no marker: unextracted -> None)
    assert list(decisions["outcome"]) == ["winner", "tie"]
    assert decisions.loc[0, "winner_response_id"] == "a0"
    assert decisions.loc[1, "details"]["answers"] == {"a1": "1000", "c1": "1,000"}


def test_decide_expected_regex_and_missing_variable() -> None:
    decisions = decide_expected(
        responses_frame(), {0: r"^[Ll]yon$", 1: r"1,?000"}, match="regex"
    )

    assert values(decisions["winner_response_id"]) == ["c0", None]
    assert list(decisions["outcome"]) == ["winner", "tie"]
    with pytest.raises(
        AnalysisError, match=r"no variable 'gold'.*\['answer', 'question'\]"
    ):
        decide_expected(responses_frame(), "gold")


def test_match_expected_feeds_mcnemar() -> None:
    marked = match_expected(responses_frame(), "answer", match="contains")

    table = mcnemar_test(marked)

    pair = table[
        (table.model_a == "anthropic:claude") & (table.model_b == "openai:gpt-4o")
    ].iloc[0]
    assert (pair.n_items, pair.both_correct, pair.only_a, pair.only_b) == (2, 1, 1, 0)


def test_decide_majority_needs_agreement() -> None:
    frame = responses_frame()

    decisions = decide_majority(frame)
    extracted = decide_majority(frame, extract=r"(\w+)\.?$")

    # Without extraction: item 0 answers differ; item 1 "answer 1000" twice -> agree.
    assert list(decisions["outcome"]) == ["none", "winner"]
    assert decisions.loc[1, "winner_response_id"] == "a1"
    assert decisions.loc[1, "details"]["agreeing"] == ["a1", "c1"]
    # With extraction, item 0: "Paris" (claude) and "paris" (llama) agree 2 of 3.
    assert extracted.loc[0, "winner_response_id"] == "a0"
    assert extracted.loc[0, "rationale"].startswith("2 of 3 responses agree on 'paris'")
    strict = decide_majority(
        frame.assign(status="done"), extract=r"(\w+)\.?$", strict=True
    )
    assert list(strict["outcome"]) == ["winner", "none"]


def test_decisions_reject_frames_without_needed_columns() -> None:
    with pytest.raises(AnalysisError, match=r"lacks the column\(s\) \['latency_s'\]"):
        decide_fastest(responses_frame().drop(columns="latency_s"))
    with pytest.raises(AnalysisError, match="metric must be"):
        decide_fastest(responses_frame(), metric="cost_usd")


# --- storing through the real repository -------------------------------------------------


def stored_run(repository) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    run_id = repository.add_run(
        name="decisions test", template="{{ question }}", system_prompt=None,
        models=MODELS, parameters={}, tags=["test"], item_count=2, samples=1,
    )  # fmt: skip
    frame = responses_frame(run_id)
    rows = []
    for record in frame.to_dict("records"):
        provider, model_id = record["model_spec"].split(":")
        rows.append(
            {
                "run_id": run_id,
                "item_index": int(record["item_index"]),
                "sample_index": 0,
                "model_spec": record["model_spec"],
                "provider": provider,
                "model_id": model_id,
                "status": record["status"],
                "text": record["text"],
                "cost_usd": None if pd.isna(record["cost_usd"]) else record["cost_usd"],
                "latency_s": record["latency_s"],
                "ttft_s": None if pd.isna(record["ttft_s"]) else record["ttft_s"],
                "variables": record["variables"],
            }
        )
    ids = repository.add_responses(rows)
    return run_id, dict(zip(frame["response_id"], ids, strict=True))


def check_round_trip(repository) -> None:  # type: ignore[no-untyped-def]
    run_id, ids = stored_run(repository)
    responses = repository.responses_frame(run_id)

    decisions = pd.concat(
        [
            decide_fastest(responses),
            decide_expected(responses, "answer"),
            decide_majority(responses),
        ],
        ignore_index=True,
    )
    stored = store_decisions(repository, run_id, decisions)

    back = repository.decisions_frame(run_id)
    assert sorted(back["decision_id"]) == sorted(stored["decision_id"])
    merged = back.merge(
        stored[["decision_id", "winner_response_id"]],
        on="decision_id",
        suffixes=("", "_ours"),
    )
    assert (
        merged["winner_response_id"].fillna("")
        == merged["winner_response_id_ours"].fillna("")
    ).all()
    fastest = back[back["strategy"] == "fastest"].sort_values("item_index")
    assert list(fastest["winner_response_id"].fillna("-")) == [ids["b0"], "-"]
    assert list(fastest["winner_model_spec"].astype(object).fillna("-")) == [
        "ollama:llama",
        "-",
    ]
    assert set(back["decided_by"].astype(str)) == {
        "rule:fastest",
        "rule:expected-normalized",
        "rule:majority",
    }
    expected = back[back["strategy"] == "expected"].sort_values("item_index").iloc[0]
    assert expected["details"]["expected"] == "Paris"
    assert (
        expected["rationale"]
        == "ollama:llama matched the expected answer 'Paris' (normalized)."
    )
    with pytest.raises(AnalysisError, match="holds rows of run"):
        store_decisions(repository, run_id, decisions.assign(run_id="someone-else"))
    repository.delete_run(run_id)


@pytest.fixture
def sqlite_repository(tmp_path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from maquina_nb.db import Repository

    return Repository.from_url(f"sqlite:///{tmp_path / 'decisions.db'}")


def test_store_decisions_round_trip_sqlite(sqlite_repository) -> None:  # type: ignore[no-untyped-def]
    check_round_trip(sqlite_repository)


@pytest.mark.postgres
def test_store_decisions_round_trip_postgres(pg_url: str) -> None:
    from maquina_nb.db import Repository

    check_round_trip(Repository.from_url(pg_url))
