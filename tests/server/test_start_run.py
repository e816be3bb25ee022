"""POST /api/runs: a run executed by the orchestrator, watched over the WebSocket."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from maquina_nb.db import Repository
from maquina_nb.server import create_app

from .test_events import _drain


def test_started_run_is_stored_and_streamed(
    repo: Repository, client: TestClient
) -> None:
    started = client.post(
        "/api/runs",
        json={
            "template": "Capital of {{ country }}?",
            "models": ["echo", "echo:second"],
            "over": [{"country": "France"}, {"country": "Peru"}, {"country": "Chad"}],
            "system": "Answer in one word.",
            "parameters": {"temperature": 0, "max_tokens": 16},
            "name": "api-run",
            "tags": ["from-api"],
        },
    )
    assert started.status_code == 202, started.text
    body = started.json()
    run_id = body["run_id"]
    assert body["events_url"] == f"/api/runs/{run_id}/events"

    with client.websocket_connect(body["events_url"]) as ws:
        events, code = _drain(ws, limit=500)

    assert code == 1000
    assert events[0]["type"] == "run_started"
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["status"] == "complete"
    finished = [e for e in events if e["type"] == "response_finished"]
    assert len(finished) == 6

    run = client.get(f"/api/runs/{run_id}").json()
    assert (run["name"], run["tags"], run["status"]) == (
        "api-run",
        ["from-api"],
        "complete",
    )
    responses = client.get(f"/api/runs/{run_id}/responses").json()["responses"]
    assert len(responses) == 6
    assert {r["variables"]["country"] for r in responses} == {"France", "Peru", "Chad"}
    assert {r["request_parameters"]["temperature"] for r in responses} == {0}
    by_key = {(e["item_index"], e["model"]): e["text"] for e in finished}
    assert {(r["item_index"], r["model_spec"]): r["text"] for r in responses} == by_key


def _start(client: TestClient, **body: Any) -> Any:
    return client.post(
        "/api/runs", json={"template": "Hi {{ name }}", "models": ["echo"], **body}
    )


def test_unknown_model_answers_422_naming_its_index(client: TestClient) -> None:
    answer = _start(client, models=["echo", "opnai:gpt-4o"], over=[{"name": "x"}])

    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "models", 1]
    assert "opnai:gpt-4o" in error["msg"]


def test_template_with_an_undefined_variable_answers_422(client: TestClient) -> None:
    answer = _start(client, over=[{"other": 1}])

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "template"]
    assert "name" in answer.json()["detail"][0]["msg"]


def _template_error(client: TestClient, **body: Any) -> str:
    answer = _start(client, **body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "template"]
    return str(error["msg"])


def test_an_undefined_variable_is_explained_in_the_requests_terms(
    client: TestClient,
) -> None:
    over_rows = _template_error(client, over=[{"other": 1}, {"other": 2}])
    no_rows = _template_error(client)
    empty_rows = _template_error(client, over=[])

    # Notebook advice (DataFrame methods, Python names) means nothing here.
    for message in (over_rows, no_rows, empty_rows):
        assert "df." not in message
        assert "assign" not in message
        assert "Define the variable" not in message
        assert "over=" not in message
        assert "'name'" in message
    assert "add a 'name' key to each row of `over`" in over_rows
    assert "'other'" in over_rows
    assert "send `over`" in no_rows
    assert "`over` has no rows" in empty_rows


def test_other_template_errors_keep_their_own_words(client: TestClient) -> None:
    message = _template_error(client, template="Hi {{ name ", over=[{"name": 1}])

    assert "syntax error" in message


def test_bad_run_bodies_name_every_field_at_fault(client: TestClient) -> None:
    answer = client.post(
        "/api/runs",
        json={
            "models": [],
            "samples": 0,
            "parameters": {"temperature": 9},
            "colour": "red",
        },
    )

    assert answer.status_code == 422
    locs = [error["loc"] for error in answer.json()["detail"]]
    for loc in (
        ["body", "template"],
        ["body", "models"],
        ["body", "samples"],
        ["body", "parameters", "temperature"],
        ["body", "colour"],
    ):
        assert loc in locs


def test_starting_runs_can_be_turned_off(repo: Repository) -> None:
    with TestClient(create_app(repo, allow_start_runs=False)) as client:
        answer = _start(client, over=[{"name": "x"}])
    assert answer.status_code == 403
    assert "--no-start-runs" in answer.json()["detail"]


def test_a_template_cannot_reach_the_servers_own_variables(client: TestClient) -> None:
    for template in (
        "{{ body }}",
        "{{ kwargs }}",
        "{{ repository }}",
        "{{ on_event }}",
    ):
        answer = client.post(
            "/api/runs", json={"template": template, "models": ["echo"]}
        )

        assert answer.status_code == 422, (template, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", "template"]


def test_a_model_without_a_key_on_the_server_answers_422(client: TestClient) -> None:
    answer = client.post(
        "/api/runs", json={"template": "hi", "models": ["echo", "gpt-4o"]}
    )

    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "models", 1]
    assert "no usable API key for 'gpt-4o' (missing)" in error["msg"]


def test_a_run_over_budget_is_refused_before_anything_is_sent(
    client: TestClient, monkeypatch: Any
) -> None:
    from maquina_nb.providers.settings import clear_configured, configure_model

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-budget-not-a-real-key")
    # Port 9 (discard) on loopback: if anything were sent, it would fail loudly.
    configure_model("priced", spec="openai:gpt-4o", base_url="http://127.0.0.1:9/v1")
    try:
        answer = client.post(
            "/api/runs",
            json={
                "template": "Explain {{ topic }} at length.",
                "models": ["priced"],
                "over": [{"topic": f"t{i}"} for i in range(10)],
                "parameters": {"max_tokens": 2000},
                "max_cost_usd": 0.0001,
            },
        )
    finally:
        clear_configured()

    assert answer.status_code == 422
    error = answer.json()["detail"][0]
    assert error["loc"] == ["body", "max_cost_usd"]
    assert "estimated to cost" in error["msg"]
    assert client.get("/api/runs").json()["runs"] == []


def test_a_blank_model_spec_is_named_by_its_index(client: TestClient) -> None:
    answer = client.post(
        "/api/runs", json={"template": "hi", "models": ["echo", "   "]}
    )

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "models", 1]


def test_runs_beyond_the_active_limit_answer_429(repo: Repository) -> None:
    from maquina_nb.providers.settings import clear_configured, configure_model

    configure_model("slow-echo", spec="echo?latency=30")
    try:
        with TestClient(create_app(repo, max_active_runs=1)) as client:
            first = _start(client, models=["slow-echo"], over=[{"name": "a"}])
            second = _start(client, over=[{"name": "b"}])

            assert first.status_code == 202, first.text
            assert second.status_code == 429
            message = second.json()["detail"]
            assert "already running 1 runs" in message
            assert "--max-active-runs" in message
    finally:
        clear_configured()

    # The server's shutdown cancelled the slow run; it kept its place in the store.
    run = repo.get_run(first.json()["run_id"])
    assert run is not None
    assert run.status == "cancelled"


def test_a_finished_run_frees_its_place(repo: Repository) -> None:
    with TestClient(create_app(repo, max_active_runs=1)) as client:
        for name in ("a", "b", "c"):
            started = _start(client, over=[{"name": name}])
            assert started.status_code == 202, started.text
            with client.websocket_connect(started.json()["events_url"]) as ws:
                _drain(ws, limit=100)


def test_sampling_parameters_are_stored_with_the_run(
    repo: Repository, client: TestClient
) -> None:
    parameters = {"temperature": 0.2, "top_p": 0.9, "stop": ["END"], "seed": 11}
    started = _start(client, over=[{"name": "x"}], parameters=parameters)
    assert started.status_code == 202, started.text
    with client.websocket_connect(started.json()["events_url"]) as ws:
        _drain(ws, limit=100)

    responses = client.get(f"/api/runs/{started.json()['run_id']}/responses").json()
    stored = responses["responses"][0]["request_parameters"]
    assert {name: stored[name] for name in parameters} == parameters


def test_a_bad_top_p_answers_422_naming_the_field(client: TestClient) -> None:
    answer = _start(client, parameters={"top_p": 3})

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "parameters", "top_p"]
