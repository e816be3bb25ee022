"""Speed of pairwise votes: storing a click, exporting votes, opening the widget.

Figures are ratios against the raw library measured in the same run:

- ``record_vote`` (one vote, its own transaction, both responses checked) against a
  bare SQLAlchemy Core insert of the same row in its own transaction;
- ``votes_frame`` on 100,000 votes against ``pandas.read_sql`` of the same join;
- ``PairwiseWidget`` construction over 1,000 pairs (it renders only the pair on
  screen), in milliseconds.

Run with ``python -m benchmarks.bench_votes`` (or ``python -m benchmarks``).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from benchmarks.bench_analysis import timed
from maquina_nb.analysis.pairing import BlindPair, PairOption
from maquina_nb.db import Repository
from maquina_nb.db.ids import new_id
from maquina_nb.db.votes import PairwiseVote, record_vote, votes_frame
from maquina_nb.notebook.pairwise import PairwiseWidget

N_ITEMS = 500
N_VOTES = 100_000
N_CLICKS = 300
N_PAIRS = 1_000


def _seed(repository: Repository) -> tuple[str, list[tuple[str, str]]]:
    run_id = repository.add_run(
        name="bench-votes",
        template="{{ q }}",
        system_prompt=None,
        models=["echo:a", "echo:b"],
        parameters={},
        tags=[],
        item_count=N_ITEMS,
        samples=1,
    )
    rows = [
        {
            "run_id": run_id,
            "item_index": i,
            "sample_index": 0,
            "model_spec": model,
            "text": f"answer {i} from {model}",
            "status": "done",
        }
        for i in range(N_ITEMS)
        for model in ("echo:a", "echo:b")
    ]
    ids = repository.add_responses(rows)
    return run_id, [(ids[2 * i], ids[2 * i + 1]) for i in range(N_ITEMS)]


def _bulk_votes(engine: sa.Engine, run_id: str, pairs: list[tuple[str, str]]) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    winners = ("left", "right", "tie")
    rows = [
        {
            "id": new_id(),
            "run_id": run_id,
            "item_index": n % N_ITEMS,
            "left_response_id": pairs[n % N_ITEMS][n % 2],
            "right_response_id": pairs[n % N_ITEMS][1 - n % 2],
            "winner": winners[n % 3],
            "rater": f"rater-{n % 7}",
            "created_at": now,
            "updated_at": now,
        }
        for n in range(N_VOTES)
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(PairwiseVote.__table__), rows)


def main() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        repository = Repository.from_url(f"sqlite:///{Path(folder) / 'votes.db'}")
        engine = repository.engine
        run_id, pairs = _seed(repository)

        # 1. One click: record_vote against a bare Core insert, each in its own transaction.
        table = PairwiseVote.__table__

        def raw_click(n: int) -> None:
            now = dt.datetime.now(dt.timezone.utc)
            left, right = pairs[n % N_ITEMS]
            with engine.begin() as connection:
                connection.execute(
                    sa.insert(table),
                    {
                        "id": new_id(), "run_id": run_id, "item_index": n % N_ITEMS,
                        "left_response_id": left, "right_response_id": right,
                        "winner": "left", "rater": "bench", "created_at": now,
                        "updated_at": now,
                    },
                )  # fmt: skip

        def ours_click(n: int) -> None:
            left, right = pairs[n % N_ITEMS]
            record_vote(
                repository,
                left_response_id=left,
                right_response_id=right,
                winner="left",
                rater="bench",
            )

        raw_s, _ = timed(lambda: [raw_click(n) for n in range(N_CLICKS)], repeat=1)
        ours_s, _ = timed(lambda: [ours_click(n) for n in range(N_CLICKS)], repeat=1)
        figures.update(
            click_ms=ours_s / N_CLICKS * 1000, click_raw_ms=raw_s / N_CLICKS * 1000
        )
        print(f"record_vote, {N_CLICKS} clicks, one transaction each (SQLite)")
        print(f"  maquina_nb   {figures['click_ms']:7.2f} ms/vote")
        print(
            f"  Core insert  {figures['click_raw_ms']:7.2f} ms/vote   -> ratio {ours_s / raw_s:4.2f}"
        )

        # 2. Export: votes_frame against pandas.read_sql of the same join.
        with engine.begin() as connection:
            connection.execute(sa.delete(table))
        _bulk_votes(engine, run_id, pairs)
        query = """
            SELECT v.id, v.run_id, v.item_index, l.model_spec AS model_a,
                   r.model_spec AS model_b, v.winner, v.left_response_id,
                   v.right_response_id, v.rater, v.created_at
            FROM pairwise_votes v
            JOIN model_responses l ON l.id = v.left_response_id
            JOIN model_responses r ON r.id = v.right_response_id
            WHERE v.run_id = :run_id
            ORDER BY v.created_at, v.id
        """
        read_s, raw = timed(
            lambda: pd.read_sql(sa.text(query), engine, params={"run_id": run_id}),
            repeat=3,
        )
        frame_s, frame = timed(lambda: votes_frame(repository, run_id), repeat=3)
        assert len(frame) == len(raw) == N_VOTES
        figures.update(export_s=frame_s, export_read_sql_s=read_s)
        print(f"votes_frame, {N_VOTES:,} votes")
        print(f"  maquina_nb   {frame_s * 1000:7.1f} ms")
        print(
            f"  read_sql     {read_s * 1000:7.1f} ms   -> ratio {frame_s / read_s:4.2f}"
        )

        # 3. The voting widget over 1,000 pairs.
        blind = [
            BlindPair(
                run_id,
                i % N_ITEMS,
                f"Question {i}",
                PairOption(f"a{i}", "echo:a", "x " * 200),
                PairOption(f"b{i}", "echo:b", "y " * 200),
            )
            for i in range(N_PAIRS)
        ]
        widget_s, _ = timed(
            lambda: PairwiseWidget(blind, repository=repository, seed=0), repeat=5
        )
        figures.update(widget_ms=widget_s * 1000)
        print(
            f"PairwiseWidget over {N_PAIRS:,} pairs: {widget_s * 1000:.1f} ms to build"
        )
        engine.dispose()
    return figures


if __name__ == "__main__":
    os.environ.setdefault("MAQUINA_NB_RATER", "bench")
    main()
