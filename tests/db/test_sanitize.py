"""Text and JSON the databases cannot hold are cleaned at the storage boundary.

NUL characters (PostgreSQL text cannot hold them) and lone surrogates (not
UTF-8) become U+FFFD; non-finite floats in JSON (not JSON at all, and refused
by PostgreSQL's jsonb) become null. Both backends store the same values.
"""

from __future__ import annotations

import json
import math

import sqlalchemy as sa

from maquina_nb.db import Repository


def _run(repo: Repository, **fields: object) -> str:
    values: dict[str, object] = {
        "name": "sanitize",
        "template": "{{ q }}",
        "system_prompt": None,
        "models": ["echo"],
        "parameters": {},
        "tags": [],
        "item_count": 1,
        "samples": 1,
    }
    values.update(fields)
    return repo.add_run(**values)  # type: ignore[arg-type]


def _response(run_id: str, **fields: object) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": run_id,
        "item_index": 0,
        "model_spec": "echo",
        "provider": "echo",
        "status": "done",
    }
    row.update(fields)
    return row


def test_nul_and_non_finite_values_are_stored_cleaned(repo: Repository) -> None:
    run_id = _run(repo)

    (response_id,) = repo.add_responses(
        [
            _response(
                run_id,
                text="before\x00after",
                error_message="x\x00y",
                variables={"q": math.inf, "r": -math.inf, "s": "a\x00b", "n": math.nan},
                messages=[{"role": "user", "content": "hi\x00there"}],
            )
        ]
    )

    stored = next(r for r in repo.get_run(run_id).responses if r.id == response_id)
    assert stored.text == "before\ufffdafter"
    assert stored.error_message == "x\ufffdy"
    assert stored.variables == {"q": None, "r": None, "s": "a\ufffdb", "n": None}
    assert stored.messages == [{"role": "user", "content": "hi\ufffdthere"}]


def test_lone_surrogates_are_stored_as_replacement_characters(
    repo: Repository,
) -> None:
    run_id = _run(repo)

    repo.add_responses([_response(run_id, text="a\ud800b", variables={"q": "\udc80"})])

    (stored,) = repo.get_run(run_id).responses
    assert (stored.text, stored.variables) == ("a\ufffdb", {"q": "\ufffd"})


def test_stored_json_is_valid_json(repo: Repository) -> None:
    run_id = _run(repo, metadata={"score": math.inf})
    repo.add_responses([_response(run_id, variables={"q": math.inf})])

    with repo.engine.connect() as connection:
        raw = connection.execute(
            sa.text("SELECT CAST(variables AS TEXT) FROM model_responses")
        ).scalar_one()

    def _refuse(name: str) -> None:
        raise ValueError(name)

    assert json.loads(raw, parse_constant=_refuse) == {"q": None}
    assert repo.get_run(run_id).metadata_ == {"score": None}


def test_run_and_feedback_text_with_nul_is_stored(repo: Repository) -> None:
    run_id = _run(repo, name="run\x00name", system_prompt="be\x00brief", tags=["t\x00"])
    (response_id,) = repo.add_responses([_response(run_id, text="ok")])

    repo.record_feedback(response_id, "comment", comment="nice\x00one", rater="bob\x00")
    repo.update_run(run_id, status="complete", metadata={"note": "a\x00b"})

    run = repo.get_run(run_id)
    assert (run.name, run.system_prompt, run.tags) == (
        "run\ufffdname",
        "be\ufffdbrief",
        ["t\ufffd"],
    )
    assert run.metadata_ == {"note": "a\ufffdb"}
    (feedback,) = run.responses[0].feedback
    assert (feedback.comment, feedback.rater) == ("nice\ufffdone", "bob\ufffd")
