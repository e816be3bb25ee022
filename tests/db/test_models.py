"""ORM models: validators, UTC round trips, JSON edits, cascades, reprs, ids."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from maquina_nb.db import (
    Decision,
    HumanFeedback,
    ModelResponse,
    OrchestrationContext,
    Repository,
    create_db_engine,
)
from maquina_nb.db.ids import id_timestamp_ms, is_valid_id, new_id, new_ids
from maquina_nb.errors import InvalidFieldError


def _run(**overrides: object) -> OrchestrationContext:
    fields: dict[str, object] = {
        "name": "r", "template": "{{ q }}", "models": ["echo:a"], "status": "running",
    }  # fmt: skip
    fields.update(overrides)
    return OrchestrationContext(**fields)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: HumanFeedback(kind="rating", value=6, rater="ada"),
            "HumanFeedback.value must be an integer from 1 to 5 for a rating, got 6",
            id="rating-range",
        ),
        pytest.param(
            lambda: HumanFeedback(kind="thumbs", value=0, rater="ada"),
            "HumanFeedback.value must be 1 or -1 for thumbs, got 0",
            id="thumbs-value",
        ),
        pytest.param(
            lambda: HumanFeedback(kind="stars", value=1, rater="ada"),
            "HumanFeedback.kind must be one of thumbs, rating, comment, label, got 'stars'",
            id="feedback-kind",
        ),
        pytest.param(
            lambda: ModelResponse(status="finished"),
            "ModelResponse.status must be one of done, cached, truncated, empty, "
            "tool_call_only, content_filtered, failed, skipped, cancelled, got 'finished'",
            id="response-status",
        ),
        pytest.param(
            lambda: ModelResponse(output_tokens=-3),
            "ModelResponse.output_tokens must be a non-negative integer or None, got -3",
            id="negative-tokens",
        ),
        pytest.param(
            lambda: ModelResponse(cost_usd=-0.5),
            "ModelResponse.cost_usd must be a non-negative number or None, got -0.5",
            id="negative-cost",
        ),
        pytest.param(
            lambda: ModelResponse(cost_usd=float("nan")),
            "ModelResponse.cost_usd must be a non-negative number or None, got nan",
            id="nan-cost",
        ),
        pytest.param(
            lambda: ModelResponse(model_spec="  "),
            "ModelResponse.model_spec must be a non-empty string, got '  '",
            id="empty-spec",
        ),
        pytest.param(
            lambda: _run(status="done"),
            "OrchestrationContext.status must be one of pending, running, complete, "
            "partial, failed, cancelled, got 'done'",
            id="run-status",
        ),
        pytest.param(
            lambda: _run(models=["echo:a", ""]),
            "OrchestrationContext.models must be a non-empty string, got ''",
            id="run-empty-model",
        ),
        pytest.param(
            lambda: Decision(strategy="coin"),
            "Decision.strategy must be one of human, judge, fastest, cheapest, "
            "expected, majority, got 'coin'",
            id="decision-strategy",
        ),
    ],
)
def test_validators_name_field_and_value(build: object, message: str) -> None:
    with pytest.raises(InvalidFieldError, match=re.escape(message + "; fix the value")):
        build()  # type: ignore[operator]


def test_feedback_needs_a_value_when_flushed(sqlite_url: str) -> None:
    repo = Repository.from_url(sqlite_url)
    run_id = repo.add_run(
        name="r", template="t", system_prompt=None, models=["echo"], parameters={},
        tags=[], item_count=1, samples=1,
    )  # fmt: skip
    (response_id,) = repo.add_responses(
        [{"run_id": run_id, "item_index": 0, "model_spec": "echo", "status": "done"}]
    )
    with Session(repo.engine) as session:
        session.add(HumanFeedback(response_id=response_id, kind="rating", rater="ada"))
        with pytest.raises(InvalidFieldError, match="got None"):
            session.flush()


def test_timestamps_round_trip_as_identical_utc(db_url: str) -> None:
    engine = create_db_engine(db_url)
    paris = dt.datetime(2026, 3, 29, 3, 30, 15, 654321, tzinfo=ZoneInfo("Europe/Paris"))
    with Session(engine, expire_on_commit=False) as session:
        run = _run(finished_at=paris)
        session.add(run)
        session.commit()
        created = run.created_at
    with Session(engine) as session:
        loaded = session.get(OrchestrationContext, run.id)
        assert loaded is not None
        assert loaded.finished_at == paris
        assert loaded.finished_at.tzinfo == dt.timezone.utc
        assert loaded.finished_at.isoformat() == "2026-03-29T01:30:15.654321+00:00"
        assert loaded.created_at == created
        assert loaded.created_at.tzinfo == dt.timezone.utc


def test_naive_datetime_is_refused(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with Session(engine) as session:
        session.add(_run(finished_at=dt.datetime(2026, 1, 1)))
        with pytest.raises(sa.exc.StatementError, match="timezone-aware datetime"):
            session.flush()


def test_json_in_place_edits_are_saved(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with Session(engine) as session:
        run = _run(parameters={"temperature": 0.1}, tags=["a"])
        session.add(run)
        session.commit()
        run_id = run.id

    with Session(engine) as session:
        run = session.get(OrchestrationContext, run_id)
        assert run is not None
        run.parameters["temperature"] = 0.9
        run.parameters["seed"] = 7
        run.tags.append("b")
        run.metadata_["note"] = "edited"
        session.commit()

    with Session(engine) as session:
        run = session.get(OrchestrationContext, run_id)
        assert run is not None
        assert run.parameters == {"temperature": 0.9, "seed": 7}
        assert run.tags == ["a", "b"]
        assert run.metadata_ == {"note": "edited"}


def _populated(repo: Repository) -> tuple[str, str, list[str]]:
    keep = repo.add_run(
        name="keep", template="t", system_prompt=None, models=["echo"], parameters={},
        tags=[], item_count=1, samples=1,
    )  # fmt: skip
    doomed = repo.add_run(
        name="doomed", template="t", system_prompt=None, models=["echo"], parameters={},
        tags=[], item_count=2, samples=1,
    )  # fmt: skip
    ids = []
    for run_id in (keep, doomed):
        ids += repo.add_responses(
            [
                {
                    "run_id": run_id,
                    "item_index": i,
                    "model_spec": "echo",
                    "status": "done",
                }
                for i in range(2)
            ]
        )
    for response_id in ids:
        repo.record_feedback(response_id, "thumbs", 1, rater="ada")
    repo.record_decision(keep, 0, "human", winner_response_id=ids[0], decided_by="ada")
    repo.record_decision(
        doomed, 0, "fastest", winner_response_id=ids[2], decided_by="rule"
    )
    return keep, doomed, ids


def _counts(repo: Repository) -> dict[str, int]:
    with repo.engine.connect() as connection:
        return {
            table: connection.exec_driver_sql(
                f"SELECT count(*) FROM {table}"
            ).scalar_one()
            for table in (
                "orchestration_contexts",
                "model_responses",
                "human_feedback",
                "decisions",
            )
        }


def test_deleting_a_run_cascades_in_the_database(repo: Repository) -> None:
    keep, doomed, _ = _populated(repo)
    repo.delete_run(doomed)
    assert _counts(repo) == {
        "orchestration_contexts": 1, "model_responses": 2, "human_feedback": 2, "decisions": 1,
    }  # fmt: skip
    assert [r.item_index for r in repo.get_run(keep).responses] == [0, 1]


def test_deleting_a_run_cascades_through_the_orm(repo: Repository) -> None:
    _, doomed, _ = _populated(repo)
    with Session(repo.engine) as session:
        run = session.get(OrchestrationContext, doomed)
        session.delete(run)
        session.commit()
    assert _counts(repo) == {
        "orchestration_contexts": 1, "model_responses": 2, "human_feedback": 2, "decisions": 1,
    }  # fmt: skip


def test_relationships_load_lazily_both_ways(repo: Repository) -> None:
    _, _, ids = _populated(repo)
    with Session(repo.engine) as session:
        response = session.get(ModelResponse, ids[0])
        assert response is not None
        assert response.run.name == "keep"
        assert [f.value for f in response.feedback] == [1]
        assert response.feedback[0].response is response
        assert [d.winner_response_id for d in response.run.decisions] == [ids[0]]
        assert response.run.decisions[0].winner is response


def test_repr_truncates_text_and_hides_secrets() -> None:
    secret = "sk-proj-" + "SECRETSECRET" * 3
    response = ModelResponse(
        id="ab" * 16, run_id="cd" * 16, item_index=3, sample_index=0,
        model_spec="openai:gpt-4o", status="failed", text="x" * 500,
        error_message=f"401 for key {secret}",
    )  # fmt: skip
    text = repr(response)
    assert text == (
        f"<ModelResponse id='{'ab' * 16}' run_id='{'cd' * 16}' item=3 sample=0 "
        f"model='openai:gpt-4o' status='failed' text='{'x' * 40}'…(500 chars)>"
    )
    feedback = HumanFeedback(kind="comment", comment=f"my key is {secret}", rater="ada")
    assert "SECRETSECRET" not in repr(feedback)
    run = _run(name=f"run with {secret}", parameters={"api_key": secret})
    assert "SECRETSECRET" not in repr(run)


def test_ids_are_hex_time_ordered_and_unique() -> None:
    many = new_ids(10_000) + [new_id() for _ in range(1000)]
    assert len(set(many)) == len(many)
    assert many == sorted(many)
    assert all(is_valid_id(value) for value in many)
    assert all(value[12] == "7" for value in many)  # UUIDv7 version nibble
    now_ms = dt.datetime.now(dt.timezone.utc).timestamp() * 1000
    assert abs(id_timestamp_ms(many[-1]) - now_ms) < 60_000
