"""The judge: rubric checks, robust parsing, both-order pairwise, stored decisions.

The judge model is the real ``openai`` SDK talking to ``FakeLLMServer`` on
127.0.0.1; the server's ``responder`` plays a scripted judge that reads the
prompt it was sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest

from maquina_nb.analysis._rubrics import Rubric
from maquina_nb.analysis.judge import Judge, judge_run, parse_score, parse_verdict
from maquina_nb.errors import TemplateError
from maquina_nb.testing import FakeLLMServer
from maquina_nb.testing._wire import Reply

# --- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param("Solid answer.\nRating: [[7]]", 7.0, id="brackets"),
        pytest.param("Rating: [[7.5]]", 7.5, id="decimal"),
        pytest.param("Score: 8/10", 8.0, id="slash-ten"),
        pytest.param("I would give it a rating of 6.", 6.0, id="rating-of"),
        pytest.param("Overall: 9 out of 10", 9.0, id="out-of"),
        pytest.param("score: **4**", 4.0, id="markdown-bold"),
        pytest.param("On a 1 to 10 scale ... Rating: [[3]]", 3.0, id="scale-first"),
        pytest.param("First [[2]], on reflection [[5]]", 5.0, id="last-wins"),
        pytest.param("Rating: [[11]]", None, id="out-of-range"),
        pytest.param("Rating: [[0]]", None, id="zero"),
        pytest.param("A thoughtful answer with no number.", None, id="none"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_score_reads_common_formats(reply: str, expected: float | None) -> None:
    assert parse_score(reply) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param("Explanation.\n[[A]]", "a", id="a"),
        pytest.param("so the verdict is [[b]]", "b", id="b-lower"),
        pytest.param("[[C]]", "tie", id="c-is-tie"),
        pytest.param("Final verdict: [[tie]]", "tie", id="tie-word"),
        pytest.param("Verdict: B", "b", id="labelled"),
        pytest.param(
            "Answer A is fine. Answer B is better. [[B]]", "b", id="prose-then-mark"
        ),
        pytest.param("Both are fine.", None, id="none"),
    ],
)
def test_parse_verdict_reads_common_formats(reply: str, expected: str | None) -> None:
    assert parse_verdict(reply) == expected


# --- rubric --------------------------------------------------------------------


def test_rubric_rejects_unknown_variable_up_front() -> None:
    with pytest.raises(TemplateError, match=re.escape("uses 'answer_c'")):
        Rubric("pairwise", "Compare {{ answer_a }} and {{ answer_c }}")


def test_rubric_rejects_syntax_error() -> None:
    with pytest.raises(TemplateError, match="does not parse"):
        Rubric("single", "Grade {{ answer ")


def test_rubric_renders_reference_only_when_given() -> None:
    rubric = Rubric("single", criteria="brevity")
    without = rubric.render(question="Q?", answer="Ans")
    with_ref = rubric.render(question="Q?", answer="Ans", reference="42")

    assert "brevity" in without
    assert "Expected answer" not in without
    assert "[Expected answer]\n42\n" in with_ref


def test_rubric_keeps_json_braces_in_answers_as_text() -> None:
    rubric = Rubric("single")
    rendered = rubric.render(question="Give JSON", answer='{"a": {{1}}}')
    assert '{"a": {{1}}}' in rendered


# --- a scripted judge behind the real openai SDK -----------------------------------


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def _judge(fake: FakeLLMServer, **kwargs: object) -> Judge:
    from maquina_nb.providers import resolve_model

    model = resolve_model(
        "openai:gpt-4o", base_url=fake.openai_base_url, api_key="sk-test-judge"
    )
    return Judge(model, **kwargs)  # type: ignore[arg-type]


def _answers(prompt: str) -> tuple[str, str]:
    first = prompt.split("[Answer A]\n", 1)[1].split("\n[End of answer A]", 1)[0]
    second = prompt.split("[Answer B]\n", 1)[1].split("\n[End of answer B]", 1)[0]
    return first, second


def _fair_judge(request: object) -> Reply:
    """Prefers whichever answer says 'Paris', wherever it is shown."""
    first, second = _answers(request.prompt)  # type: ignore[attr-defined]
    if ("Paris" in first) == ("Paris" in second):
        return Reply(text="Both equally good. [[C]]")
    return Reply(
        text="The answer naming Paris is right. [[A]]"
        if "Paris" in first
        else "Only the second is right. [[B]]"
    )


def test_compare_asks_both_orders_and_agreeing_verdicts_win(
    fake: FakeLLMServer,
) -> None:
    fake.responder = _fair_judge
    judge = _judge(fake)

    judgment = judge.compare("Capital of France?", "Lyon.", "Paris.")

    assert judgment.forward.winner == "b"
    assert judgment.backward.winner == "b"
    assert judgment.outcome == "b"
    assert judgment.consistent is True
    prompts = sorted(_answers(r.prompt) for r in fake.requests_for())
    assert prompts == [("Lyon.", "Paris."), ("Paris.", "Lyon.")]
    system = fake.requests_for()[0].body["messages"][0]
    assert system["role"] == "system"
    assert "[[A]]" in system["content"]
    assert fake.requests_for()[0].body["temperature"] == 0


def test_compare_position_biased_judge_gives_tie(fake: FakeLLMServer) -> None:
    fake.responder = lambda request: Reply(text="The first one. [[A]]")
    judge = _judge(fake)

    judgment = judge.compare("Capital of France?", "Lyon.", "Paris.")

    assert judgment.forward.winner == "a"
    assert judgment.backward.winner == "b"  # "[[A]]" with b shown first means b
    assert judgment.outcome == "tie"
    assert judgment.consistent is False


def test_compare_unreadable_reply_is_undecided_not_a_tie(fake: FakeLLMServer) -> None:
    fake.responder = lambda request: Reply(text="I cannot decide.")
    judgment = _judge(fake).compare("Q", "x", "y")

    assert judgment.outcome is None
    assert judgment.forward.error is not None
    assert "no verdict" in judgment.forward.error


def test_grade_parses_score_and_keeps_rationale(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(text="Accurate but terse.\nRating: [[6]]"))
    grade = _judge(fake, mode="single").grade(
        "Capital of France?", "Paris.", reference="Paris"
    )

    assert grade.score == 6.0
    assert grade.rationale == "Accurate but terse.\nRating: [[6]]"
    assert grade.error is None
    assert grade.cost_usd is not None
    assert grade.cost_usd > 0  # gpt-4o priced from the usage the server reported
    assert "[Expected answer]\nParis\n" in fake.requests_for()[0].prompt


def test_grade_failed_call_is_reported_not_raised(fake: FakeLLMServer) -> None:
    fake.responder = lambda request: Reply(
        status=400, error_type="invalid_request_error"
    )
    grade = _judge(fake, mode="single").grade("Q", "A")

    assert grade.score is None
    assert grade.error


def test_judge_mode_mismatch_says_what_to_do(fake: FakeLLMServer) -> None:
    with pytest.raises(ValueError, match="mode='single'"):
        _judge(fake).grade("Q", "A")


def test_custom_rubric_reaches_the_judge(fake: FakeLLMServer) -> None:
    fake.enqueue(Reply(text="[[9]]"))
    judge = _judge(
        fake,
        mode="single",
        rubric="Is this polite? {{ answer }}",
        system="Rate politeness; end with Rating: [[N]].",
    )

    assert judge.grade("Q", "Thank you!").score == 9.0
    assert fake.requests_for()[0].prompt == "Is this polite? Thank you!"
    assert fake.requests_for()[0].body["messages"][0] == {
        "role": "system",
        "content": "Rate politeness; end with Rating: [[N]].",
    }
    assert judge.details()["rubric"] == "Is this polite? {{ answer }}"


# --- on a stored run: decisions and votes ------------------------------------------


def _seed_run(
    repository: object, answers: dict[str, list[str | None]]
) -> tuple[str, dict[tuple[int, str], str]]:
    models = list(answers)
    n_items = len(next(iter(answers.values())))
    run_id = repository.add_run(  # type: ignore[attr-defined]
        name="judge-test",
        template="{{ q }}",
        system_prompt=None,
        models=models,
        parameters={},
        tags=[],
        item_count=n_items,
        samples=1,
    )
    rows = []
    for model, texts in answers.items():
        for item_index, text in enumerate(texts):
            rows.append(
                {
                    "run_id": run_id,
                    "item_index": item_index,
                    "sample_index": 0,
                    "model_spec": model,
                    "provider": model.split(":")[0],
                    "messages": [
                        {
                            "role": "user",
                            "content": f"Question {item_index}: capital of France?",
                        }
                    ],
                    "variables": {"q": f"Question {item_index}", "expected": "Paris"},
                    "text": text,
                    "status": "failed" if text is None else "done",
                }
            )
    ids = repository.add_responses(rows)  # type: ignore[attr-defined]
    keys = [(row["item_index"], row["model_spec"]) for row in rows]
    return run_id, dict(zip(keys, ids, strict=True))


@pytest.fixture
def repository(tmp_path: object) -> object:
    from maquina_nb.db import Repository

    return Repository.from_url(f"sqlite:///{tmp_path}/judge.db")  # type: ignore[operator]


def test_judge_run_pairwise_records_decisions_and_votes(
    fake: FakeLLMServer, repository: object
) -> None:
    from maquina_nb.db.votes import votes_frame

    fake.responder = _fair_judge
    run_id, ids = _seed_run(
        repository,
        {"echo:good": ["Paris.", "Paris!"], "echo:bad": ["Lyon.", "Paris, of course."]},
    )
    judge = _judge(fake)

    result = judge_run(run_id, judge, repository=repository)  # type: ignore[arg-type]

    expected = pd.DataFrame(
        {
            "run_id": [run_id, run_id],
            "item_index": pd.array([0, 1], dtype="Int64"),
            "outcome": ["winner", "tie"],
            "winner_response_id": [ids[(0, "echo:good")], None],
            "winner_model_spec": ["echo:good", None],
        }
    )
    pd.testing.assert_frame_equal(result[expected.columns], expected)

    decisions = repository.decisions_frame(run_id)  # type: ignore[attr-defined]
    assert list(decisions["strategy"]) == ["judge", "judge"]
    assert set(decisions["decided_by"]) == {judge.spec}
    first = decisions.sort_values("item_index").iloc[0]
    assert "Paris" in first["rationale"]
    details = first["details"]
    assert details["mode"] == "pairwise"
    assert details["judge_cost_usd"] > 0
    assert details["comparisons"][0]["consistent"] is True

    votes = votes_frame(repository, run_id)  # type: ignore[arg-type]
    assert len(votes) == 4  # two items, both orders
    assert set(votes["rater"]) == {f"judge:{judge.spec}"}
    item0 = votes[votes["item_index"] == 0].sort_values("model_a")
    assert list(item0["winner"]) == [
        "model_b",
        "model_a",
    ]  # echo:good wins in both positions


def test_judge_run_single_grades_and_ties_on_equal_scores(
    fake: FakeLLMServer, repository: object
) -> None:
    def grader(request: object) -> Reply:
        prompt = request.prompt  # type: ignore[attr-defined]
        return Reply(
            text="Right. Rating: [[9]]"
            if "Paris" in prompt.split("[Answer]")[1]
            else "Wrong. Rating: [[2]]"
        )

    fake.responder = grader
    run_id, ids = _seed_run(
        repository, {"echo:a": ["Paris", "Lyon"], "echo:b": ["Nice", "Lille"]}
    )

    result = judge_run(
        run_id, _judge(fake, mode="single"), repository=repository, reference="expected"
    )  # type: ignore[arg-type]

    assert list(result["outcome"]) == ["winner", "tie"]
    assert result.loc[0, "winner_response_id"] == ids[(0, "echo:a")]
    decisions = repository.decisions_frame(run_id).sort_values("item_index")  # type: ignore[attr-defined]
    assert decisions.iloc[0]["details"]["scores"] == {
        ids[(0, "echo:a")]: 9.0,
        ids[(0, "echo:b")]: 2.0,
    }
    assert all("[Expected answer]\nParis" in r.prompt for r in fake.requests_for())


def test_judge_run_unknown_reference_column_names_the_columns(
    fake: FakeLLMServer, repository: object
) -> None:
    run_id, _ = _seed_run(repository, {"echo:a": ["x"], "echo:b": ["y"]})
    with pytest.raises(KeyError, match="'answer'"):
        judge_run(run_id, _judge(fake), repository=repository, reference="answer")  # type: ignore[arg-type]


def test_judge_run_reports_items_it_could_not_decide(
    fake: FakeLLMServer, repository: object
) -> None:
    # Item 0: one answer failed, so nothing to compare. Item 1: the judge rambles.
    fake.responder = lambda request: Reply(text="Hard to say.")
    run_id, _ = _seed_run(repository, {"echo:a": [None, "x"], "echo:b": ["y", "z"]})
    judge = _judge(fake)

    result = judge_run(run_id, judge, repository=repository)  # type: ignore[arg-type]

    assert list(result["outcome"]) == ["none", "undecided"]
    assert list(result["strategy"]) == ["judge", "judge"]
    assert list(result["decided_by"]) == [judge.spec, judge.spec]
    assert result["decision_id"].isna().all()
    assert "no verdict" in result.loc[1, "rationale"]
    assert repository.decisions_frame(run_id).empty  # type: ignore[attr-defined]
    assert len(fake.requests_for()) == 2  # item 1 only, both orders


def test_judge_run_returns_the_stored_decision_ids(
    fake: FakeLLMServer, repository: object
) -> None:
    fake.responder = _fair_judge
    run_id, _ = _seed_run(
        repository, {"echo:a": ["Paris"], "echo:b": ["Rome"], "echo:c": ["Paris."]}
    )

    result = judge_run(run_id, _judge(fake), repository=repository, record_votes=False)  # type: ignore[arg-type]

    stored = repository.decisions_frame(run_id)  # type: ignore[attr-defined]
    assert list(result["decision_id"]) == list(stored["decision_id"])
    # a and c both name Paris: each beats b, they tie with each other.
    assert result.loc[0, "outcome"] == "tie"
    assert result.loc[0, "details"]["scores"] == {
        stored.loc[0, "details"]["comparisons"][0]["response_a"]: 1.5,
        stored.loc[0, "details"]["comparisons"][0]["response_b"]: 0.0,
        stored.loc[0, "details"]["comparisons"][1]["response_b"]: 1.5,
    }
    assert len(fake.requests_for()) == 6  # three pairs, both orders


def test_judge_run_on_a_run_object_uses_its_database(
    fake: FakeLLMServer, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.orchestrator import orchestrate

    monkeypatch.setenv("MAQUINA_NB_PROGRESS", "0")
    monkeypatch.chdir(tmp_path)  # the default database would land here
    fake.responder = lambda request: Reply(text="Same answer twice. [[C]]")
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    run = orchestrate(
        "Say {{ word }}", ["echo:one", "echo:two"], over=[{"word": "hi"}], db=url
    )

    result = judge_run(run, _judge(fake))

    assert list(result["outcome"]) == ["tie"]
    from maquina_nb.db import Repository

    assert len(Repository.from_url(url).decisions_frame(run.id)) == 1
    assert not (tmp_path / "maquina.db").exists()  # type: ignore[operator]


# --- judging a run again --------------------------------------------------------


def test_judge_run_again_keeps_its_decisions_instead_of_storing_duplicates(
    fake: FakeLLMServer, repository: object
) -> None:
    from maquina_nb.db.votes import votes_frame

    fake.responder = _fair_judge
    run_id, _ = _seed_run(
        repository,
        {"echo:good": ["Paris.", "Paris!"], "echo:bad": ["Lyon.", "Paris, of course."]},
    )
    first = judge_run(run_id, _judge(fake), repository=repository)  # type: ignore[arg-type]
    asked = len(fake.requests_for())

    again = judge_run(run_id, _judge(fake), repository=repository)  # type: ignore[arg-type]

    assert len(fake.requests_for()) == asked  # the judge was not asked again
    assert len(repository.decisions_frame(run_id)) == 2  # type: ignore[attr-defined]
    assert len(votes_frame(repository, run_id)) == 4  # type: ignore[arg-type]
    assert list(first["reused"]) == [False, False]
    assert list(again["reused"]) == [True, True]
    shared = [c for c in first.columns if c != "reused"]
    pd.testing.assert_frame_equal(again[shared], first[shared])


def test_judge_run_with_rejudge_asks_and_stores_again(
    fake: FakeLLMServer, repository: object
) -> None:
    from maquina_nb.db.votes import votes_frame

    fake.responder = _fair_judge
    run_id, _ = _seed_run(repository, {"echo:a": ["Paris"], "echo:b": ["Rome"]})
    first = judge_run(run_id, _judge(fake), repository=repository)  # type: ignore[arg-type]

    again = judge_run(run_id, _judge(fake), repository=repository, rejudge=True)  # type: ignore[arg-type]

    assert len(fake.requests_for()) == 4  # one pair, both orders, twice
    assert list(again["reused"]) == [False]
    assert again.loc[0, "decision_id"] != first.loc[0, "decision_id"]
    assert len(repository.decisions_frame(run_id)) == 2  # type: ignore[attr-defined]
    assert len(votes_frame(repository, run_id)) == 4  # type: ignore[arg-type]


def test_judge_run_asks_again_when_settings_or_responses_differ(
    fake: FakeLLMServer, repository: object
) -> None:
    fake.responder = lambda request: Reply(text="Fine. Rating: [[7]]")
    run_id, _ = _seed_run(
        repository, {"echo:a": ["Paris"], "echo:b": ["Rome"], "echo:c": ["Nice"]}
    )
    judge_run(run_id, _judge(fake, mode="single"), repository=repository)  # type: ignore[arg-type]
    asked = len(fake.requests_for())  # three answers graded

    calls = [
        # Another criterion is another question.
        {"judge": _judge(fake, mode="single", criteria="brevity")},
        # So is grading against the expected answer.
        {"judge": _judge(fake, mode="single"), "reference": "expected"},
        # And another set of responses.
        {"judge": _judge(fake, mode="single"), "models": ["echo:a", "echo:b"]},
    ]
    for options in calls:
        result = judge_run(run_id, repository=repository, **options)  # type: ignore[arg-type]
        assert list(result["reused"]) == [False], options

    assert len(fake.requests_for()) == asked + 3 + 3 + 2
    assert len(repository.decisions_frame(run_id)) == 4  # type: ignore[attr-defined]

    # Each of those is now kept in turn.
    for options in calls:
        result = judge_run(run_id, repository=repository, **options)  # type: ignore[arg-type]
        assert list(result["reused"]) == [True], options
    assert len(fake.requests_for()) == asked + 8


def test_judge_run_again_asks_only_the_items_left_undecided(
    fake: FakeLLMServer, repository: object
) -> None:
    run_id, ids = _seed_run(
        repository, {"echo:a": ["Paris", "Paris"], "echo:b": ["Rome", "Rome"]}
    )

    def rambles_on_item_1(request: object) -> Reply:
        if "Question 1" in request.prompt:  # type: ignore[attr-defined]
            return Reply(text="Hard to say.")
        return _fair_judge(request)

    fake.responder = rambles_on_item_1
    first = judge_run(run_id, _judge(fake), repository=repository)  # type: ignore[arg-type]
    assert list(first["outcome"]) == ["winner", "undecided"]

    fake.responder = _fair_judge
    asked = len(fake.requests_for())
    again = judge_run(run_id, _judge(fake), repository=repository)  # type: ignore[arg-type]

    assert [r.prompt for r in fake.requests_for()[asked:]] == [
        r.prompt for r in fake.requests_for()[asked:] if "Question 1" in r.prompt
    ]
    assert len(fake.requests_for()) == asked + 2
    assert list(again["reused"]) == [True, False]
    assert list(again["outcome"]) == ["winner", "winner"]
    assert list(again["winner_response_id"]) == [ids[(0, "echo:a")], ids[(1, "echo:a")]]
    assert len(repository.decisions_frame(run_id)) == 2  # type: ignore[attr-defined]
