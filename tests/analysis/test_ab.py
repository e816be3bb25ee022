"""ab_test: variants and models on the same items, blind pairs, votes, statistics."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from scipy import stats

from maquina_nb.analysis.ab import ab_test
from maquina_nb.analysis.judge import Judge
from maquina_nb.db import Repository
from maquina_nb.providers.offline import mt_bench_questions
from maquina_nb.testing import FakeLLMServer
from maquina_nb.testing._wire import Reply

VARIANTS = {"A": "Briefly: {{ question }}", "B": "In depth: {{ question }}"}


@pytest.fixture(autouse=True)
def _no_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAQUINA_NB_PROGRESS", "0")


@pytest.fixture
def repository(tmp_path: object) -> Repository:
    return Repository.from_url(f"sqlite:///{tmp_path}/ab.db")


@pytest.fixture
def questions() -> pd.DataFrame:
    return pd.DataFrame({"question": [f"What is {n} + {n}?" for n in range(6)]})


def test_ab_test_runs_each_variant_on_the_same_items(
    repository: Repository, questions: pd.DataFrame
) -> None:
    ab = ab_test(VARIANTS, "echo", over=questions, db=repository, name="brevity")

    assert list(ab.runs) == ["A", "B"]
    assert [c.label for c in ab.contestants] == ["A", "B"]
    assert [r.name for r in ab.runs.values()] == ["brevity:A", "brevity:B"]
    assert len(ab.pairs) == 6
    for pair in ab.pairs:
        assert pair.run_id == ab.anchor_run_id
        assert (pair.left.label, pair.right.label) == ("A", "B")
        assert pair.left.text == f"Briefly: {questions.question[pair.item_index]}"
        assert pair.right.text == f"In depth: {questions.question[pair.item_index]}"
        # The rater sees the item's variables, not either variant's prompt.
        assert pair.prompt == f"**question**: {questions.question[pair.item_index]}"


def test_ab_summary_from_blind_votes_matches_scipy(
    repository: Repository, questions: pd.DataFrame
) -> None:
    ab = ab_test(VARIANTS, "echo", over=questions, db=repository)
    widget = ab.vote(rater="ada", seed=5)

    # A rater who prefers the brief answer on five items and calls one a tie.
    for _ in range(widget.total):
        pair = widget.pairs[widget.position]
        if pair.item_index == 0:
            widget.vote("tie")
        else:
            widget.vote("left" if pair.left.label == "A" else "right")

    votes = ab.votes()
    assert len(votes) == 6
    assert set(votes["model_a"]) | set(votes["model_b"]) == {"A", "B"}
    assert set(votes["spec_a"]) == {"echo"}
    assert (votes.loc[votes["winner"] == "model_a", "model_a"] == "A").all()
    assert (votes.loc[votes["winner"] == "model_b", "model_b"] == "A").all()

    summary = ab.summary()
    assert len(summary) == 1
    row = summary.iloc[0]
    assert (row["contestant_a"], row["contestant_b"]) == ("A", "B")
    assert (row["votes"], row["wins_a"], row["wins_b"], row["ties"]) == (6, 5, 0, 1)
    assert row["win_rate_a"] == pytest.approx(5.5 / 6)
    assert (row["items"], row["items_a"], row["items_b"]) == (6, 5, 0)
    assert row["p_value"] == pytest.approx(stats.binomtest(5, 5).pvalue)
    assert row["conclusion"] == "A better (p=0.0625)" or row["conclusion"].startswith(
        "no significant"
    )
    # 5 of 5 decided items: p = 0.0625 is not below 0.05.
    assert row["conclusion"] == "no significant difference (p=0.0625)"

    rates = ab.win_rates()
    assert list(rates["model"]) == ["A", "B"]
    assert rates.loc[0, "win_rate"] == pytest.approx(5.5 / 6)


def test_ab_summary_without_votes_is_empty_and_says_how_to_vote(
    repository: Repository,
    questions: pd.DataFrame,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from maquina_nb.analysis._ab_summary import SUMMARY_COLUMNS

    ab = ab_test(VARIANTS, "echo", over=questions, db=repository)
    caplog.clear()

    with caplog.at_level("WARNING", logger="maquina_nb"):
        summary = ab.summary()
        by_rater = ab.summary(rater="ada")
        by_judge = ab.summary(rater="judge:claude")

    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert summary.empty
    assert list(by_rater.columns) == list(SUMMARY_COLUMNS)
    assert by_rater.empty
    assert by_judge.empty
    logger = "maquina_nb.analysis.ab"
    assert caplog.record_tuples == [
        (
            logger,
            30,
            "The A/B test has no votes yet, so its summary is empty; vote with "
            "ab.vote() (or let a judge model vote with ab.judge(MODEL)), then call "
            "ab.summary() again.",
        ),
        (
            logger,
            30,
            "The A/B test has no votes by rater 'ada', so its summary is empty; vote "
            "with ab.vote(rater='ada'), or call ab.summary() without rater= for "
            "everyone's.",
        ),
        (
            logger,
            30,
            "The A/B test has no votes by rater 'judge:claude', so its summary is "
            "empty; let that judge vote with ab.judge('claude'), or call "
            "ab.summary() without rater= for everyone's.",
        ),
    ]

    # Once there are votes, the summary says nothing more.
    ab.record_vote(ab.pairs[0], "left", rater="ada")
    caplog.clear()
    with caplog.at_level("WARNING", logger="maquina_nb"):
        assert len(ab.summary()) == 1
    assert caplog.record_tuples == []


def test_ab_models_only_over_mt_bench_with_replay(repository: Repository) -> None:
    items = pd.DataFrame(mt_bench_questions()[:3])
    items["question"] = items["turns"].str[0]

    ab = ab_test(
        {"mt-bench": "{{ question }}"},
        ["replay:gpt-4", "replay:gpt-3.5-turbo"],
        over=items,
        db=repository,
    )

    assert [c.label for c in ab.contestants] == ["replay:gpt-4", "replay:gpt-3.5-turbo"]
    assert len(ab.pairs) == 3
    pair = ab.pairs[0]
    assert pair.prompt == items["question"][0]  # same prompt on both sides: shown as is
    assert pair.left.text != pair.right.text


@pytest.mark.parametrize(
    ("mode", "per_item"), [("all", 6), ("variants", 2), ("models", 2)]
)
def test_ab_pair_modes(
    repository: Repository, questions: pd.DataFrame, mode: str, per_item: int
) -> None:
    ab = ab_test(
        VARIANTS,
        ["echo:one", "echo:two"],
        over=questions.head(2),
        db=repository,
        pair=mode,
    )  # type: ignore[arg-type]

    assert [c.label for c in ab.contestants] == [
        "A · echo:one",
        "A · echo:two",
        "B · echo:one",
        "B · echo:two",
    ]
    assert len(ab.pairs) == 2 * per_item
    by = {c.label: c for c in ab.contestants}
    for pair in ab.pairs:
        left, right = by[pair.left.label], by[pair.right.label]
        if mode == "variants":
            assert left.model == right.model
            assert left.variant != right.variant
        if mode == "models":
            assert left.variant == right.variant


def test_ab_test_needs_two_contestants(repository: Repository) -> None:
    with pytest.raises(ValueError, match="needs two things to compare"):
        ab_test({"A": "{{ question }}"}, "echo", db=repository)


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def test_ab_judge_votes_in_both_orders(
    repository: Repository, questions: pd.DataFrame, fake: FakeLLMServer
) -> None:
    from maquina_nb.providers import resolve_model

    def prefers_brief(request: object) -> Reply:
        prompt = request.prompt  # type: ignore[attr-defined]
        first = prompt.split("[Answer A]\n", 1)[1]
        return Reply(
            text="The brief one. [[A]]"
            if first.startswith("Briefly")
            else "The brief one. [[B]]"
        )

    fake.responder = prefers_brief
    judge = Judge(
        resolve_model(
            "openai:gpt-4o", base_url=fake.openai_base_url, api_key="sk-test-judge"
        )
    )

    ab = ab_test(VARIANTS, "echo", over=questions, db=repository, judge=judge)

    assert len(fake.requests_for()) == 12  # six pairs, both orders
    rater = f"judge:{judge.spec}"
    votes = ab.votes(rater=rater)
    assert len(votes) == 12
    assert sorted(votes["model_a"].value_counts().to_dict().items()) == [
        ("A", 6),
        ("B", 6),
    ]
    winners = votes.apply(
        lambda v: v["model_a"] if v["winner"] == "model_a" else v["model_b"], axis=1
    )
    assert set(winners) == {"A"}

    decisions = repository.decisions_frame(ab.anchor_run_id)
    assert len(decisions) == 6
    assert set(decisions["strategy"]) == {"judge"}
    assert set(decisions["decided_by"]) == {judge.spec}
    assert all(d["consistent"] is True for d in decisions["details"])
    a_ids = {r.id for r in ab.runs["A"].responses}
    assert set(decisions["winner_response_id"]) <= a_ids

    summary = ab.summary(rater=rater)
    assert summary.loc[0, "items_a"] == 6
    assert summary.loc[0, "p_value"] == pytest.approx(stats.binomtest(6, 6).pvalue)
    assert summary.loc[0, "conclusion"].startswith("A better")
    assert ab.summary(rater="nobody").empty


def test_summarize_orients_counts_to_the_given_order() -> None:
    from maquina_nb.analysis._ab_summary import summarize

    # "Z" beats "A" on items 0-3, loses item 4, ties item 5; Z listed first.
    winners = ["model_a", "model_b", "model_a", "model_b", "model_a", "tie"]
    votes = pd.DataFrame(
        {
            "item_index": range(6),
            "model_a": ["Z", "A", "Z", "A", "A", "Z"],
            "model_b": ["A", "Z", "A", "Z", "Z", "A"],
            "winner": winners,
        }
    )

    table = summarize(votes, ["Z", "A"])

    row = table.iloc[0]
    assert (row["contestant_a"], row["contestant_b"]) == ("Z", "A")
    assert (row["wins_a"], row["wins_b"], row["ties"]) == (4, 1, 1)
    assert (row["items_a"], row["items_b"]) == (4, 1)
    assert row["win_rate_a"] == pytest.approx(4.5 / 6)
    assert row["p_value"] == pytest.approx(stats.binomtest(4, 5).pvalue)
    assert row["conclusion"] == f"no significant difference (p={row['p_holm']:.3g})"


def test_ab_two_turn_items_show_only_the_user_turns(repository: Repository) -> None:
    conversations = [{"turns": q["turns"]} for q in mt_bench_questions()[:2]]

    ab = ab_test(
        {"mt-bench": conversations}, ["replay:gpt-4", "replay:claude-v1"], db=repository
    )

    assert len(ab.pairs) == 2
    first = mt_bench_questions()[0]["turns"]
    pair = next(p for p in ab.pairs if p.item_index == 0)
    assert pair.prompt == f"**Turn 1**: {first[0]}\n\n**Turn 2**: {first[1]}"
    # Each side answered the second turn after its own first answer.
    assert pair.left.text != pair.right.text


def test_ab_vote_resumes_where_the_rater_stopped(
    repository: Repository, questions: pd.DataFrame
) -> None:
    ab = ab_test(VARIANTS, "echo", over=questions, db=repository)
    first = ab.vote(rater="ada", seed=1)
    for _ in range(4):
        first.vote("left")

    # A new session (say, after a kernel restart) shows only the two left over.
    again = ab.vote(rater="ada", seed=2)
    voted = {
        frozenset((p.left.response_id, p.right.response_id)) for p, _ in first.votes
    }
    assert again.total == 2
    assert all(
        frozenset((p.left.response_id, p.right.response_id)) not in voted
        for p in again.pairs
    )
    # Another rater, or resume=False, sees every pair.
    assert ab.vote(rater="bob").total == 6
    assert ab.vote(rater="ada", resume=False).total == 6


def _pair_keys(pairs: list[object]) -> list[tuple[object, ...]]:
    return sorted(
        (p.item_index, p.left.response_id, p.right.response_id) for p in pairs
    )  # type: ignore[attr-defined]


def test_load_ab_test_brings_back_runs_pairs_and_votes(
    repository: Repository, questions: pd.DataFrame
) -> None:
    from maquina_nb.analysis.ab import load_ab_test
    from maquina_nb.errors import StoreError

    ab_test(VARIANTS, "echo", over=questions.head(2), db=repository, name="wording")
    ab = ab_test(VARIANTS, "echo", over=questions, db=repository, name="wording")
    widget = ab.vote(rater="ada", seed=0)
    for _ in range(3):
        widget.vote("right")

    loaded = load_ab_test("wording", db=repository)

    assert loaded.run_ids == ab.run_ids  # the newest test of that name
    assert loaded.variants == VARIANTS
    assert [c.label for c in loaded.contestants] == ["A", "B"]
    assert _pair_keys(loaded.pairs) == _pair_keys(ab.pairs)
    pd.testing.assert_frame_equal(loaded.votes(), ab.votes())
    assert loaded.vote(rater="ada").total == 3
    with pytest.raises(StoreError, match="No A/B test named 'other'"):
        load_ab_test("other", db=repository)


def test_ab_failed_answers_are_left_out_of_the_pairs(
    repository: Repository, questions: pd.DataFrame
) -> None:
    from maquina_nb.errors import ProviderResponseError
    from maquina_nb.providers import register_model
    from maquina_nb.providers.registry import unregister_model

    @register_model("flaky-ab")
    async def flaky(request: object) -> str:
        prompt = request.messages[-1].content  # type: ignore[attr-defined]
        if "2 + 2" in prompt:
            raise ProviderResponseError("boom", provider="custom", model="flaky-ab")
        return f"flaky: {prompt}"

    try:
        ab = ab_test(
            {"q": "{{ question }}"}, ["echo", "flaky-ab"], over=questions, db=repository
        )
    finally:
        unregister_model("flaky-ab")

    assert sorted(p.item_index for p in ab.pairs) == [0, 1, 3, 4, 5]
    failed = [r for r in ab.runs["q"].responses if r.status == "failed"]
    assert [(r.item_index, r.model_spec) for r in failed] == [(2, "flaky-ab")]
