"""REST routes through FastAPI's TestClient over a real SQLite repository."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from maquina_nb.db import Repository
from maquina_nb.server import create_app

from .conftest import MODELS, Seeded, add_run


def _walk(
    client: TestClient, url: str, key: str, **params: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(50):
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        answer = client.get(url, params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        found.extend(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("pagination did not end")


def test_health_and_openapi_docs_are_served(client: TestClient) -> None:
    health = client.get("/api/health")
    assert health.json()["status"] == "ok"
    assert health.headers["cache-control"] == "no-store"
    assert health.headers["x-frame-options"] == "DENY"
    assert health.headers["x-content-type-options"] == "nosniff"

    schema = client.get("/openapi.json").json()
    assert {
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/responses",
        "/api/runs/{run_id}/feedback",
        "/api/runs/{run_id}/decisions",
        "/api/runs/{run_id}/statistics",
        "/api/responses/{response_id}/feedback",
        "/api/models",
    } <= set(schema["paths"])

    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_list_runs_walks_keyset_pages_newest_first(
    repo: Repository, client: TestClient
) -> None:
    ids = [add_run(repo, name=f"run-{i}").run_id for i in range(5)]

    runs = _walk(client, "/api/runs", "runs", limit=2)

    assert [run["id"] for run in runs] == list(reversed(ids))
    assert runs[0]["models"] == list(MODELS)
    assert runs[0]["status"] == "complete"


def test_list_runs_filters_by_name_tag_and_model(
    repo: Repository, client: TestClient
) -> None:
    geo = add_run(repo, name="capitals", tags=("geo",)).run_id
    maths = add_run(repo, name="sums", tags=("maths",), models=("echo",)).run_id

    def ids(**params: Any) -> list[str]:
        return [
            run["id"] for run in client.get("/api/runs", params=params).json()["runs"]
        ]

    assert ids(name="capitals") == [geo]
    assert ids(tag="maths") == [maths]
    assert ids(model="echo") == [maths]
    assert ids(name="nothing-like-this") == []


def test_bad_cursor_and_limit_answer_422_naming_the_field(client: TestClient) -> None:
    answer = client.get("/api/runs", params={"cursor": "not-a-cursor"})
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["query", "cursor"]
    assert detail["input"] == "not-a-cursor"
    assert "next_cursor of the previous page" in detail["msg"]
    # Valid base64 of something that is not a cursor is the client's fault too.
    answer = client.get("/api/runs", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "cursor"]

    answer = client.get("/api/runs", params={"limit": 0})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "limit"]


def test_one_run_and_unknown_ids_answer_404(seeded: Seeded, client: TestClient) -> None:
    run = client.get(f"/api/runs/{seeded.run_id}").json()
    assert run["id"] == seeded.run_id
    assert run["template"] == "Question {{ n }}?"
    assert run["total_cost_usd"] == 0.004

    for url in (
        "/api/runs/0123456789abcdef0123456789abcdef",
        "/api/runs/nope",
        "/api/runs/nope/responses",
        "/api/runs/nope/feedback",
        "/api/runs/nope/decisions",
        "/api/runs/nope/statistics",
        "/api/responses/nope",
    ):
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert (
            "'nope'" in answer.json()["detail"]
            or "0123456789" in answer.json()["detail"]
        )


def test_responses_are_paginated_in_item_order_and_filtered(
    seeded: Seeded, client: TestClient
) -> None:
    url = f"/api/runs/{seeded.run_id}/responses"

    responses = _walk(client, url, "responses", limit=1)

    assert [(r["item_index"], r["model_spec"]) for r in responses] == sorted(
        seeded.response_ids, key=lambda key: (key[0], seeded.response_ids[key])
    )
    assert responses[0]["messages"] == [{"role": "user", "content": "Question 0?"}]
    only = _walk(client, url, "responses", model=MODELS[1])
    assert {r["model_spec"] for r in only} == {MODELS[1]}
    assert len(only) == 2
    assert _walk(client, url, "responses", status="failed") == []
    assert len(_walk(client, url, "responses", item_index=1)) == 2

    one = client.get(f"/api/responses/{responses[0]['id']}").json()
    assert one == responses[0]


def test_feedback_is_created_and_listed(seeded: Seeded, client: TestClient) -> None:
    response_id = seeded.response_ids[(0, MODELS[0])]
    url = f"/api/responses/{response_id}/feedback"

    thumbs = client.post(url, json={"kind": "thumbs", "value": 1, "rater": "ada"})
    rating = client.post(url, json={"kind": "rating", "value": 4, "rater": "bob"})
    comment = client.post(
        url, json={"kind": "comment", "comment": "Terse.", "rater": "ada"}
    )

    assert [a.status_code for a in (thumbs, rating, comment)] == [201, 201, 201]
    assert thumbs.json()["response_id"] == response_id
    listed = _walk(client, f"/api/runs/{seeded.run_id}/feedback", "feedback", limit=2)
    assert [(f["kind"], f["value"], f["rater"]) for f in listed] == [
        ("thumbs", 1, "ada"),
        ("rating", 4, "bob"),
        ("comment", None, "ada"),
    ]
    by_bob = client.get(f"/api/runs/{seeded.run_id}/feedback", params={"rater": "bob"})
    assert [f["kind"] for f in by_bob.json()["feedback"]] == ["rating"]


def test_bad_feedback_answers_422_naming_the_fields(
    seeded: Seeded, client: TestClient
) -> None:
    url = f"/api/responses/{seeded.response_ids[(0, MODELS[0])]}/feedback"

    answer = client.post(url, json={"kind": "rating", "value": 9, "rater": "ada"})
    assert answer.status_code == 422
    assert ["body", "value"] in [e["loc"] for e in answer.json()["detail"]]

    answer = client.post(url, json={"kind": "stars", "rater": "ada", "bogus": 1})
    locs = [e["loc"] for e in answer.json()["detail"]]
    assert answer.status_code == 422
    assert ["body", "kind"] in locs
    assert ["body", "bogus"] in locs

    answer = client.post(url, json={"kind": "thumbs", "value": 0, "rater": "ada"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "value"]
    assert "thumbs value must be -1 or 1" in answer.text

    answer = client.post(url, json={"kind": "comment", "comment": "  ", "rater": "ada"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "comment"]

    answer = client.post(
        url, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422

    answer = client.post(
        "/api/responses/ffffffffffffffffffffffffffffffff/feedback",
        json={"kind": "thumbs", "value": 1, "rater": "ada"},
    )
    assert answer.status_code == 404


def test_decisions_are_created_listed_and_checked(
    seeded: Seeded, client: TestClient
) -> None:
    url = f"/api/runs/{seeded.run_id}/decisions"
    winner = seeded.response_ids[(1, MODELS[1])]

    made = client.post(
        url,
        json={
            "item_index": 1,
            "strategy": "human",
            "winner_response_id": winner,
            "decided_by": "ada",
            "rationale": "clearer",
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["winner_response_id"] == winner

    wrong_item = client.post(
        url,
        json={
            "item_index": 0,
            "strategy": "human",
            "winner_response_id": winner,
            "decided_by": "ada",
        },
    )
    assert wrong_item.status_code == 422
    assert wrong_item.json()["detail"][0]["loc"] == ["body", "winner_response_id"]

    bad_strategy = client.post(
        url, json={"item_index": 0, "strategy": "coin", "decided_by": "x"}
    )
    assert bad_strategy.status_code == 422
    assert bad_strategy.json()["detail"][0]["loc"] == ["body", "strategy"]

    listed = client.get(url).json()["decisions"]
    assert [(d["item_index"], d["strategy"], d["rationale"]) for d in listed] == [
        (1, "human", "clearer")
    ]


def test_statistics_give_win_rates_from_decisions_and_feedback_counts(
    seeded: Seeded, client: TestClient
) -> None:
    run_url = f"/api/runs/{seeded.run_id}"
    for item in (0, 1):
        client.post(
            f"{run_url}/decisions",
            json={
                "item_index": item,
                "strategy": "human",
                "winner_response_id": seeded.response_ids[(item, MODELS[0])],
                "decided_by": "ada",
            },
        )
    client.post(
        f"/api/responses/{seeded.response_ids[(0, MODELS[1])]}/feedback",
        json={"kind": "thumbs", "value": -1, "rater": "ada"},
    )

    stats = client.get(f"{run_url}/statistics").json()

    assert stats["decided_items"] == 2
    assert stats["votes"] == 2
    rates = {row["model"]: row for row in stats["win_rates"]}
    assert (rates[MODELS[0]]["wins"], rates[MODELS[0]]["games"]) == (2, 2)
    assert rates[MODELS[0]]["win_rate"] == 1.0
    assert rates[MODELS[1]]["win_rate"] == 0.0
    assert 0 < rates[MODELS[0]]["ci_low"] < 1.0
    models = {row["model"]: row for row in stats["models"]}
    assert models[MODELS[1]]["thumbs_down"] == 1
    assert models[MODELS[0]]["responses"] == 2
    assert models[MODELS[0]]["input_tokens"] == 21


def test_models_never_show_a_secret(
    client: TestClient, tmp_path: Any, monkeypatch: Any
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[models.team-llama]\nspec = "openai-compatible:llama3.1"\n'
        'base_url = "http://user:hunter2-password@127.0.0.1:9/v1"\n'
        'api_key = "sk-canary-0123456789abcdef"\n'
    )
    monkeypatch.setenv("MAQUINA_NB_CONFIG", str(config))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-env-0123456789abcdef")

    answer = client.get("/api/models")

    assert answer.status_code == 200
    models = {m["name"]: m for m in answer.json()}
    assert models["team-llama"]["spec"] == "openai-compatible:llama3.1"
    assert models["team-llama"]["source"] == "config"
    assert "canary" not in answer.text
    assert "hunter2" not in answer.text


def test_client_text_is_stored_verbatim_and_served_only_as_json(
    seeded: Seeded, client: TestClient, repo: Repository
) -> None:
    script = "<script>alert('x')</script>'; DROP TABLE human_feedback; --"
    response_id = seeded.response_ids[(0, MODELS[0])]

    made = client.post(
        f"/api/responses/{response_id}/feedback",
        json={"kind": "comment", "comment": script, "rater": "robert'); --"},
    )
    hostile_filter = client.get(
        "/api/runs", params={"name": "x' OR '1'='1", "tag": "%"}
    )

    assert made.status_code == 201
    assert made.headers["content-type"] == "application/json"
    assert made.headers["x-content-type-options"] == "nosniff"
    assert made.json()["comment"] == script
    assert hostile_filter.status_code == 200
    assert hostile_filter.json()["runs"] == []
    listed = client.get(f"/api/runs/{seeded.run_id}/feedback").json()["feedback"]
    assert [f["comment"] for f in listed] == [script]


def test_oversized_bodies_answer_413(seeded: Seeded, repo: Repository) -> None:
    url = f"/api/responses/{seeded.response_ids[(0, MODELS[0])]}/feedback"
    big = {"kind": "comment", "comment": "x" * 5_000, "rater": "ada"}

    with TestClient(create_app(repo, max_body_bytes=1_000)) as small:
        declared = small.post(url, json=big)

        def chunks() -> Any:
            yield b'{"kind": "comment", "rater": "ada", "comment": "'
            for _ in range(20):
                yield b"y" * 100
            yield b'"}'

        chunked = small.post(
            url, content=chunks(), headers={"content-type": "application/json"}
        )
        fits = small.post(url, json={"kind": "thumbs", "value": 1, "rater": "ada"})

    assert declared.status_code == 413
    assert "1000 bytes" in declared.json()["detail"]
    assert chunked.status_code == 413
    assert fits.status_code == 201


def test_token_is_required_when_set(seeded: Seeded, repo: Repository) -> None:
    token = "t0ken-for-the-tests-0123456789"
    with TestClient(create_app(repo, token=token)) as guarded:
        missing = guarded.get("/api/runs")
        wrong = guarded.get(
            "/api/runs", headers={"Authorization": "Bearer nope-nope-nope"}
        )
        right = guarded.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
        health = guarded.get("/api/health")
        schema = guarded.get("/openapi.json").json()

    assert (missing.status_code, wrong.status_code, right.status_code) == (
        401,
        401,
        200,
    )
    assert missing.headers["www-authenticate"] == "Bearer"
    assert health.status_code == 200
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_token_from_the_environment(
    seeded: Seeded, repo: Repository, monkeypatch: Any
) -> None:
    monkeypatch.setenv("MAQUINA_NB_SERVER_TOKEN", "env-token-0123456789abcdef")
    with TestClient(create_app(repo)) as guarded:
        assert guarded.get("/api/runs").status_code == 401
        ok = guarded.get(
            "/api/runs", headers={"Authorization": "Bearer env-token-0123456789abcdef"}
        )
        assert ok.status_code == 200


def test_unknown_host_header_is_refused(client: TestClient) -> None:
    rebinding = client.get("/api/runs", headers={"Host": "evil.example:8765"})
    loopback = client.get("/api/runs", headers={"Host": "127.0.0.1:8765"})

    assert rebinding.status_code == 400
    assert loopback.status_code == 200


def test_a_cross_site_form_post_is_not_taken_as_json(
    seeded: Seeded, client: TestClient
) -> None:
    # What a page on another site can send without a CORS preflight.
    answer = client.post(
        f"/api/responses/{seeded.response_ids[(0, MODELS[0])]}/feedback",
        content=b'{"kind": "thumbs", "value": 1, "rater": "mallory"}',
        headers={"Content-Type": "text/plain"},
    )

    assert answer.status_code == 422
    assert client.get(f"/api/runs/{seeded.run_id}/feedback").json()["feedback"] == []


def test_statistics_count_blind_pairwise_votes(
    seeded: Seeded, client: TestClient, repo: Repository
) -> None:
    from maquina_nb.db import record_vote

    left = seeded.response_ids[(0, MODELS[1])]
    right = seeded.response_ids[(0, MODELS[0])]
    record_vote(
        repo, left_response_id=left, right_response_id=right, winner="left", rater="a"
    )
    record_vote(
        repo, left_response_id=left, right_response_id=right, winner="tie", rater="b"
    )

    stats = client.get(f"/api/runs/{seeded.run_id}/statistics").json()

    assert (stats["votes"], stats["decided_items"]) == (2, 0)
    rates = {row["model"]: row for row in stats["win_rates"]}
    assert (rates[MODELS[1]]["wins"], rates[MODELS[1]]["ties"]) == (1, 1)
    assert rates[MODELS[1]]["win_rate"] == 0.75
    assert rates[MODELS[0]]["win_rate"] == 0.25


def test_statistics_give_win_rates_from_ratings_and_thumbs(
    seeded: Seeded, client: TestClient
) -> None:
    def rate(item: int, model: str, kind: str, value: int) -> None:
        made = client.post(
            f"/api/responses/{seeded.response_ids[(item, model)]}/feedback",
            json={"kind": kind, "value": value, "rater": "ada"},
        )
        assert made.status_code == 201

    rate(0, MODELS[0], "rating", 5)
    rate(0, MODELS[1], "rating", 2)
    rate(1, MODELS[0], "thumbs", 1)
    rate(1, MODELS[1], "thumbs", 1)

    stats = client.get(f"/api/runs/{seeded.run_id}/statistics").json()

    assert stats["feedback_votes"] == 2
    rates = {row["model"]: row for row in stats["feedback_win_rates"]}
    assert (rates[MODELS[0]]["wins"], rates[MODELS[0]]["ties"]) == (1, 1)
    assert rates[MODELS[0]]["win_rate"] == 0.75
    assert stats["win_rates"] == []


def test_feedback_votes_compare_like_with_like() -> None:
    from maquina_nb.server._stats import feedback_votes

    votes = feedback_votes(
        [
            (0, "a", "rating", 4),
            (0, "a", "rating", 2),
            (0, "b", "rating", 3),  # a's mean 3 ties b's 3
            (1, "a", "rating", 5),  # only a is rated on item 1 ...
            (1, "a", "thumbs", -1),
            (1, "b", "thumbs", 1),  # ... so thumbs decide: b wins
            (2, "a", "thumbs", 1),  # a lone signal is no comparison
        ]
    )

    assert votes == [("a", "b", "tie"), ("a", "b", "model_b")]
