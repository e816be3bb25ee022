"""Fixtures for the server tests: a seeded SQLite repository and a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from maquina_nb.db import Repository

MODELS = ("openai:gpt-4o", "anthropic:claude-sonnet-4-5")


@dataclass
class Seeded:
    """A finished run with two items answered by two models."""

    run_id: str
    response_ids: dict[tuple[int, str], str]


def response_row(run_id: str, item: int, model: str, **extra: Any) -> dict[str, Any]:
    provider, _, model_id = model.partition(":")
    row: dict[str, Any] = {
        "run_id": run_id,
        "item_index": item,
        "sample_index": 0,
        "model_spec": model,
        "provider": provider,
        "model_id": model_id,
        "request_parameters": {"temperature": None, "max_tokens": 64},
        "messages": [{"role": "user", "content": f"Question {item}?"}],
        "variables": {"n": item},
        "text": f"{model} answers {item}",
        "status": "done",
        "finish_reason": "stop",
        "input_tokens": 10 + item,
        "output_tokens": 5,
        "cost_usd": 0.001,
        "latency_s": 0.2 + item / 10,
        "ttft_s": 0.05,
    }
    row.update(extra)
    return row


def add_run(
    repo: Repository,
    *,
    name: str = "capitals",
    models: tuple[str, ...] = MODELS,
    tags: tuple[str, ...] = ("geo",),
    items: int = 2,
    status: str = "complete",
) -> Seeded:
    run_id = repo.add_run(
        name=name,
        template="Question {{ n }}?",
        system_prompt=None,
        models=list(models),
        parameters={"max_tokens": 64},
        tags=list(tags),
        item_count=items,
        samples=1,
        status=status,
    )
    rows = [response_row(run_id, i, m) for i in range(items) for m in models]
    ids = repo.add_responses(rows)
    if status != "running":
        from datetime import datetime, timezone

        repo.update_run(
            run_id, finished_at=datetime.now(timezone.utc), total_cost_usd=0.004
        )
    keys = [(row["item_index"], row["model_spec"]) for row in rows]
    return Seeded(run_id, dict(zip(keys, ids, strict=True)))


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def repo(db_url: str) -> Repository:
    from maquina_nb.db import Repository

    return Repository.from_url(db_url)


@pytest.fixture
def seeded(repo: Repository) -> Seeded:
    return add_run(repo)


@pytest.fixture
def client(repo: Repository) -> Iterator[TestClient]:
    from maquina_nb.server import create_app

    with TestClient(create_app(repo)) as test_client:
        yield test_client
