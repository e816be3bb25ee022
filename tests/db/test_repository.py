"""Repository: runs, bulk responses, feedback, decisions, paging, cache, exports."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from maquina_nb import __version__
from maquina_nb.db import RESPONSE_COLUMNS, OrchestrationContext, Repository
from maquina_nb.errors import InvalidFieldError, StoreError

UTC = dt.timezone.utc


def _add_run(repo: Repository, name: str = "run", **overrides: object) -> str:
    fields: dict[str, object] = {
        "name": name, "template": "Q: {{ q }}", "system_prompt": "be brief",
        "models": ["echo:a", "echo:b"], "parameters": {"temperature": 0.0},
        "tags": ["t1"], "item_count": 2, "samples": 1,
    }  # fmt: skip
    fields.update(overrides)
    return repo.add_run(**fields)  # type: ignore[arg-type]


def _response(run_id: str, item: int, spec: str, **extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": run_id, "item_index": item, "model_spec": spec, "status": "done",
        "provider": "echo", "text": f"{spec} says {item}",
    }  # fmt: skip
    row.update(extra)
    return row


def test_add_and_get_run_records_versions(repo: Repository) -> None:
    run_id = _add_run(repo, notebook_path="/home/ada/n.ipynb", metadata={"k": 1})
    run = repo.get_run(run_id)
    assert (run.name, run.status, run.models, run.tags) == (
        "run", "running", ["echo:a", "echo:b"], ["t1"],
    )  # fmt: skip
    assert run.package_version == __version__
    assert set(run.sdk_versions) >= {"python", "openai", "anthropic", "sqlalchemy"}
    assert run.notebook_path == "/home/ada/n.ipynb"
    assert run.metadata_ == {"k": 1}
    assert run.responses == []


def test_get_run_missing_names_the_id(repo: Repository) -> None:
    message = (
        "No run with id 'nope' in this database; Repository.list_runs() shows the "
        "stored ones (check MAQUINA_DB_URL if it should be here)."
    )
    with pytest.raises(StoreError, match=re.escape(message)):
        repo.get_run("nope")
    with pytest.raises(StoreError, match=re.escape(message)):
        repo.delete_run("nope")
    with pytest.raises(StoreError, match=re.escape(message)):
        repo.update_run("nope", status="complete")


def test_update_run_changes_fields(repo: Repository) -> None:
    run_id = _add_run(repo)
    finished = dt.datetime(2026, 12, 4, 18, 0, 0, 1, tzinfo=UTC)
    repo.update_run(
        run_id, status="complete", finished_at=finished, total_cost_usd=0.5,
        metadata={"done": True},
    )  # fmt: skip
    run = repo.get_run(run_id)
    assert (run.status, run.finished_at, run.total_cost_usd, run.metadata_) == (
        "complete", finished, 0.5, {"done": True},
    )  # fmt: skip
    assert run.updated_at >= run.created_at
    with pytest.raises(StoreError, match=r"unknown field\(s\) \['colour'\]"):
        repo.update_run(run_id, colour="red")
    with pytest.raises(InvalidFieldError, match=r"OrchestrationContext\.status"):
        repo.update_run(run_id, status="exploded")
    with pytest.raises(InvalidFieldError, match="must be a timezone-aware datetime"):
        repo.update_run(run_id, finished_at=dt.datetime(2026, 1, 1))
    with pytest.raises(InvalidFieldError, match="must be a timezone-aware datetime"):
        repo.add_responses(
            [_response(run_id, 0, "echo:a", created_at=dt.datetime(2026, 1, 1))]
        )


def test_add_responses_fills_defaults_and_keeps_order(repo: Repository) -> None:
    run_id = _add_run(repo)
    given_id = "f" * 32
    ids = repo.add_responses(
        [
            _response(run_id, 1, "echo:b", id=given_id, input_tokens=5, cost_usd=0.25,
                      cost_is_estimate=True, variables={"q": "é"}, tool_calls=[{"n": 1}]),
            _response(run_id, 0, "echo:a", messages=[{"role": "user", "content": "Q: 1"}]),
        ]
    )  # fmt: skip
    assert ids[0] == given_id
    assert len(ids[1]) == 32
    run = repo.get_run(run_id)
    first, second = run.responses  # ordered by item
    assert (first.id, first.sample_index, first.request_parameters, first.variables) == (
        ids[1], 0, {}, {},
    )  # fmt: skip
    assert first.messages == [{"role": "user", "content": "Q: 1"}]
    assert first.tool_calls is None
    assert (second.input_tokens, second.cost_usd, second.cost_is_estimate) == (
        5,
        0.25,
        True,
    )
    assert second.variables == {"q": "é"}
    assert second.tool_calls == [{"n": 1}]
    assert first.created_at.tzinfo == UTC
    assert first.created_at == second.created_at == first.updated_at


def test_add_responses_rejects_bad_rows_and_writes_nothing(repo: Repository) -> None:
    run_id = _add_run(repo)
    good = _response(run_id, 0, "echo:a")
    with pytest.raises(
        InvalidFieldError,
        match=re.escape(
            "ModelResponse.input_tokens must be a non-negative integer or None, got -1"
        ),
    ):
        repo.add_responses([good, _response(run_id, 1, "echo:a", input_tokens=-1)])
    with pytest.raises(StoreError, match=re.escape("unknown key(s) ['colour']")):
        repo.add_responses([good, {**good, "colour": "red"}])
    with pytest.raises(StoreError, match="Check that the run exists"):
        repo.add_responses([_response("0" * 32, 0, "echo:a")])
    assert repo.get_run(run_id).responses == []
    assert repo.add_responses([]) == []
    assert set(RESPONSE_COLUMNS) >= {"text", "ttft_s", "cached_from_id", "cache_key"}


def test_concurrent_threads_share_one_repository(repo: Repository) -> None:
    run_id = _add_run(repo)
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            for batch in range(5):
                ids = repo.add_responses(
                    [
                        _response(run_id, thread * 100 + batch * 10 + i, "echo:a")
                        for i in range(10)
                    ]
                )
                repo.record_feedback(ids[0], "rating", 4, rater=f"t{thread}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(repo.responses_frame(run_id)) == 200
    assert len(repo.feedback_frame(run_id)) == 20


def _runs_with_times(repo: Repository) -> list[str]:
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    specs = [
        ("alpha", ["echo:a"], ["x"], base),
        ("beta", ["echo:b"], ["y"], base + dt.timedelta(days=1)),
        ("alpha-2", ["echo:a", "echo:b"], ["x", "y"], base + dt.timedelta(days=1)),
        ("gamma", ["echo:c"], [], base + dt.timedelta(days=2)),
        ("alpha", ["echo:c"], ["x"], base + dt.timedelta(days=3)),
    ]
    ids = []
    for name, models, tags, created in specs:
        run_id = _add_run(repo, name, models=models, tags=tags)
        with Session(repo.engine) as session:
            run = session.get(OrchestrationContext, run_id)
            assert run is not None
            run.created_at = created
            session.commit()
        ids.append(run_id)
    return ids


def test_list_runs_pages_newest_first_without_gaps(repo: Repository) -> None:
    ids = _runs_with_times(repo)
    # Newest first; the two runs created at the same instant ordered by id, descending.
    expected = [ids[4], ids[3], ids[2], ids[1], ids[0]]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = repo.list_runs(limit=2, cursor=cursor)
        seen += [run.id for run in page.runs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    with pytest.raises(InvalidFieldError, match=r"list_runs\.cursor") as caught:
        repo.list_runs(cursor="garbage!")
    assert caught.value.field == "cursor"
    assert caught.value.value == "garbage!"
    assert "next_cursor of the previous page" in str(caught.value)
    # Base64 that decodes, but not to a cursor of ours.
    with pytest.raises(InvalidFieldError, match=r"list_runs\.cursor"):
        repo.list_runs(cursor="bm90LWEtY3Vyc29y")
    with pytest.raises(InvalidFieldError, match=r"list_runs\.limit"):
        repo.list_runs(limit=0)


def test_list_runs_gives_detached_runs_like_get_run(repo: Repository) -> None:
    run_id = _add_run(repo, notebook_path="/n.ipynb", metadata={"k": [1, 2]})
    repo.update_run(run_id, status="complete", total_cost_usd=0.25)

    (listed,) = repo.list_runs().runs
    stored = repo.get_run(run_id)
    state = sa_inspect(listed)
    assert state.detached
    columns = [attr.key for attr in OrchestrationContext.__mapper__.column_attrs]
    assert not state.unloaded & set(columns)
    for key in columns:
        assert getattr(listed, key) == getattr(stored, key), key
    assert listed.metadata_ == {"k": [1, 2]}
    assert listed.created_at.tzinfo is not None
    assert "status='complete'" in repr(listed)

    # A listed run can be changed through the repository as before.
    repo.update_run(listed.id, tags=[*listed.tags, "more"])
    assert repo.get_run(run_id).tags == ["t1", "more"]


@pytest.mark.parametrize(
    ("filters", "positions"),
    [
        pytest.param({"name": "alpha"}, [4, 0], id="name"),
        pytest.param({"name": "alpha*"}, [4, 2, 0], id="name-glob"),
        pytest.param({"tag": "y"}, [2, 1], id="tag"),
        pytest.param({"model": "echo:a"}, [2, 0], id="model"),
        pytest.param(
            {
                "since": dt.datetime(2026, 1, 2, tzinfo=UTC),
                "until": dt.datetime(2026, 1, 3, tzinfo=UTC),
            },
            [2, 1],
            id="dates",
        ),
        pytest.param(
            {"name": "alpha", "tag": "x", "model": "echo:c"}, [4], id="combined"
        ),
    ],
)
def test_list_runs_filters(
    repo: Repository, filters: dict[str, object], positions: list[int]
) -> None:
    ids = _runs_with_times(repo)
    page = repo.list_runs(**filters)  # type: ignore[arg-type]
    assert [run.id for run in page.runs] == [ids[p] for p in positions]
    assert page.next_cursor is None
    frame = repo.runs_frame(**filters)  # type: ignore[arg-type]
    assert list(frame["run_id"]) == [ids[p] for p in positions]


def test_find_cached_returns_newest_reusable_answer(repo: Repository) -> None:
    run_id = _add_run(repo)
    _, new, _, _, _ = repo.add_responses(
        [
            _response(run_id, 0, "echo:a", cache_key="k1", text="old"),
            _response(run_id, 1, "echo:a", cache_key="k1", text="new"),
            _response(run_id, 2, "echo:a", cache_key="k2", status="truncated", finish_reason="length"),
            _response(run_id, 3, "echo:a", cache_key="k3", status="failed", error_kind="timeout"),
            _response(run_id, 4, "echo:a", cache_key="k4", status="cached", cached_from_id="x" * 32),
        ]
    )  # fmt: skip
    found = repo.find_cached(["k1", "k2", "k3", "k4", "k5"])
    assert list(found) == ["k1"]
    assert (found["k1"].id, found["k1"].text) == (new, "new")
    assert repo.find_cached([]) == {}


def test_feedback_and_decisions_need_existing_rows(repo: Repository) -> None:
    with pytest.raises(
        StoreError,
        match=re.escape("Could not store the HumanFeedback for response 'missing'"),
    ):
        repo.record_feedback("missing", "thumbs", 1, rater="ada")
    with pytest.raises(
        StoreError, match=re.escape("Could not store the Decision for run 'missing'")
    ):
        repo.record_decision("missing", 0, "human", decided_by="ada")
    with pytest.raises(InvalidFieldError, match=r"HumanFeedback\.value"):
        repo.record_feedback("missing", "rating", 9, rater="ada")


def _filled(repo: Repository) -> tuple[str, list[str]]:
    run_id = _add_run(repo)
    ids = repo.add_responses(
        [
            _response(run_id, 0, "echo:a", input_tokens=3, output_tokens=4, cost_usd=0.5,
                      latency_s=1.5, ttft_s=0.25, variables={"q": 1}, finish_reason="stop"),
            _response(run_id, 0, "echo:b", status="failed", text=None, error_kind="timeout",
                      error_message="took too long", variables={"q": 1}),
            _response(run_id, 1, "echo:a", variables={"q": 2}, cost_is_estimate=True),
            _response(run_id, 1, "echo:b", variables={"q": 2}, output_tokens=0),
        ]
    )  # fmt: skip
    return run_id, ids


def test_responses_frame_columns_dtypes_and_values(repo: Repository) -> None:
    run_id, ids = _filled(repo)
    _add_run(repo, "other")
    frame = repo.responses_frame(run_id)
    assert list(frame.columns) == [
        "response_id", "run_id", "item_index", "sample_index", "model_spec", "provider",
        "model_id", "status", "text", "finish_reason", "raw_finish_reason", "error_kind",
        "error_message", "input_tokens", "output_tokens", "cached_tokens", "cost_usd",
        "cost_is_estimate", "latency_s", "ttft_s", "cache_key", "cached_from_id",
        "variables", "created_at", "updated_at",
    ]  # fmt: skip
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    assert dtypes["item_index"] == dtypes["input_tokens"] == "Int64"
    assert (
        dtypes["model_spec"] == dtypes["status"] == dtypes["error_kind"] == "category"
    )
    assert dtypes["cost_usd"] == "float64"
    assert dtypes["cost_is_estimate"] == "bool"
    assert dtypes["created_at"] == "datetime64[us, UTC]"
    assert dtypes["text"] == dtypes["response_id"] == "str"

    expected = pd.DataFrame(
        {
            "response_id": pd.array(ids, dtype="str"),
            "model_spec": pd.Categorical(["echo:a", "echo:b", "echo:a", "echo:b"]),
            "status": pd.Categorical(["done", "failed", "done", "done"]),
            "text": pd.array(["echo:a says 0", np.nan, "echo:a says 1", "echo:b says 1"], dtype="str"),
            "input_tokens": pd.array([3, None, None, None], dtype="Int64"),
            "output_tokens": pd.array([4, None, None, 0], dtype="Int64"),
            "cost_usd": [0.5, np.nan, np.nan, np.nan],
            "cost_is_estimate": [False, False, True, False],
            "ttft_s": [0.25, np.nan, np.nan, np.nan],
            "variables": pd.Series([{"q": 1}, {"q": 1}, {"q": 2}, {"q": 2}], dtype=object),
        }
    )  # fmt: skip
    got = (
        frame[list(expected.columns)]
        .sort_values(["response_id"])
        .reset_index(drop=True)
    )
    expected = expected.sort_values(["response_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    stored = repo.get_run(run_id).responses[0].created_at
    assert frame["created_at"].iloc[0] == pd.Timestamp(stored)

    audit = repo.responses_frame(run_id, audit=True)
    assert list(audit.columns[-3:]) == ["request_parameters", "messages", "tool_calls"]
    assert len(repo.responses_frame()) == 4


def test_empty_frames_keep_their_columns_and_dtypes(repo: Repository) -> None:
    frame = repo.responses_frame("0" * 32)
    assert frame.empty
    assert str(frame.dtypes["created_at"]) == "datetime64[us, UTC]"
    assert str(frame.dtypes["input_tokens"]) == "Int64"
    assert list(repo.feedback_frame().columns)[:3] == [
        "feedback_id",
        "response_id",
        "run_id",
    ]
    assert repo.decisions_frame().empty
    assert repo.runs_frame().empty


def test_feedback_and_decision_frames(repo: Repository) -> None:
    run_id, ids = _filled(repo)
    repo.record_feedback(ids[0], "rating", 5, rater="ada")
    repo.record_feedback(ids[0], "comment", comment="crisp", rater="bo")
    repo.record_feedback(ids[3], "label", label="wrong", rater="ada")
    repo.record_decision(run_id, 0, "human", winner_response_id=ids[0], decided_by="ada",
                         rationale="only answer", details={"votes": 2})  # fmt: skip
    repo.record_decision(run_id, 1, "judge", decided_by="judge:echo")

    feedback = repo.feedback_frame(run_id)
    assert feedback[["response_id", "model_spec", "kind", "value", "comment", "label", "rater"]].astype(object).where(feedback.notna(), None).values.tolist() == [
        [ids[0], "echo:a", "rating", 5, None, None, "ada"],
        [ids[0], "echo:a", "comment", None, "crisp", None, "bo"],
        [ids[3], "echo:b", "label", None, None, "wrong", "ada"],
    ]  # fmt: skip
    assert str(feedback.dtypes["value"]) == "Int64"

    decisions = repo.decisions_frame(run_id)
    assert list(
        decisions["winner_model_spec"]
        .astype(object)
        .where(decisions["winner_model_spec"].notna(), None)
    ) == ["echo:a", None]
    assert list(decisions["strategy"]) == ["human", "judge"]
    assert decisions["details"].tolist() == [{"votes": 2}, {}]


def _order(
    frame: pd.DataFrame, names: dict[str, str]
) -> list[tuple[str, int, str, int]]:
    return [
        (names[run], int(item), str(spec), int(sample))
        for run, item, spec, sample in zip(
            frame["run_id"],
            frame["item_index"],
            frame["model_spec"],
            frame["sample_index"],
            strict=True,
        )
    ]


def test_responses_frame_follows_the_given_model_order_not_finish_order(
    repo: Repository,
) -> None:
    # Stored in the order the answers finished: the run's second model first.
    first = _add_run(repo, models=["zeta", "alpha"], samples=2)
    finished = [
        (1, "alpha", 0), (0, "alpha", 1), (0, "zeta", 1), (0, "alpha", 0),
        (1, "zeta", 0), (0, "zeta", 0), (0, "legacy", 0),
    ]  # fmt: skip
    repo.add_responses(
        [_response(first, item, spec, sample_index=s) for item, spec, s in finished]
    )
    second = _add_run(repo, models=["alpha", "zeta"])
    repo.add_responses([_response(second, 0, "zeta"), _response(second, 0, "alpha")])

    # Item, then the models as given (unlisted ones after), then sample.
    names = {first: "first", second: "second"}
    expected_first = [
        ("first", 0, "zeta", 0), ("first", 0, "zeta", 1), ("first", 0, "alpha", 0),
        ("first", 0, "alpha", 1), ("first", 0, "legacy", 0), ("first", 1, "zeta", 0),
        ("first", 1, "alpha", 0),
    ]  # fmt: skip
    assert _order(repo.responses_frame(first), names) == expected_first
    assert _order(repo.responses_frame(first, audit=True), names) == expected_first
    assert _order(repo.responses_frame(), names) == [
        *expected_first,
        ("second", 0, "alpha", 0),
        ("second", 0, "zeta", 0),
    ]
    assert list(repo.responses_frame(first).index) == list(range(7))


def test_comparison_frame_is_items_by_models(repo: Repository) -> None:
    run_id, _ = _filled(repo)
    wide = repo.comparison_frame(run_id)
    expected = pd.DataFrame(
        {
            "echo:a": ["echo:a says 0", "echo:a says 1"],
            "echo:b": [np.nan, "echo:b says 1"],
        },
        index=pd.Index([0, 1], dtype="Int64", name="item_index"),
    )
    expected.columns.name = "model_spec"
    pd.testing.assert_frame_equal(wide, expected, check_dtype=False)
    costs = repo.comparison_frame(run_id, value="output_tokens")
    assert costs.loc[1, "echo:b"] == 0
    with pytest.raises(InvalidFieldError, match=r"comparison_frame\.value"):
        repo.comparison_frame(run_id, value="nonsense")


def test_in_memory_database_works_across_calls() -> None:
    repo = Repository.from_url("sqlite://")
    run_id = _add_run(repo)
    repo.add_responses([_response(run_id, 0, "echo:a")])
    assert [run.id for run in repo.list_runs().runs] == [run_id]
    assert len(repo.responses_frame(run_id)) == 1


@pytest.mark.parametrize(
    "value",
    [
        {"temperature": 0.2, "max_tokens": 256, "stop": ["\n\n"]},
        [{"role": "user", "content": '¿Qué tal? 日本語 "quoted" \\ back'}],
        {"nested": {"list": [1, 2.5, -0.0, None, True, False], "big": 10**20}},
        {"nan": float("nan"), "inf": float("inf")},
        "plain",
        [],
        {},
    ],
)
def test_bulk_json_text_matches_json_dumps(value: object) -> None:
    import json

    from maquina_nb.db._bulk import _dumps

    assert _dumps(value) == json.dumps(value)


def test_relative_sqlite_path_stays_put_after_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    repo = Repository.from_url("sqlite:///results.db")
    run_id = _add_run(repo)
    monkeypatch.chdir(tmp_path / "b")
    repo.engine.dispose()  # the next connection is opened after the chdir
    repo.add_responses([_response(run_id, 0, "echo:a")])
    assert len(repo.responses_frame(run_id)) == 1
    assert not (tmp_path / "b" / "results.db").exists()
