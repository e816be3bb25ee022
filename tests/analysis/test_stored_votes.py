"""The statistics read the votes the database stores (db.votes.votes_frame)."""

from __future__ import annotations

import pandas as pd
import pytest

from maquina_nb.analysis import (
    fit_bradley_terry,
    position_bias,
    rater_agreement,
    sign_test,
    swap_consistency,
    win_rates,
)


def test_statistics_accept_the_stored_votes_frame(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from maquina_nb.db import Repository
    from maquina_nb.db.votes import record_vote, votes_frame

    repository = Repository.from_url(f"sqlite:///{tmp_path / 'votes.db'}")
    models = ["echo:x", "echo:y", "echo:z"]
    run_id = repository.add_run(
        name="votes", template="{{ q }}", system_prompt=None, models=models,
        parameters={}, tags=[], item_count=3, samples=1,
    )  # fmt: skip
    rows = [
        {"run_id": run_id, "item_index": item, "sample_index": 0, "model_spec": spec,
         "provider": "echo", "model_id": spec.split(":")[1], "status": "done", "text": f"{spec} {item}"}
        for item in range(3)
        for spec in models
    ]  # fmt: skip
    ids = dict(
        zip(
            [(r["item_index"], r["model_spec"]) for r in rows],
            repository.add_responses(rows),
            strict=True,
        )
    )

    # ann and a judge vote on every pair, each pair seen in both orders by the judge.
    for item in range(3):
        for left, right, winner in [("echo:x", "echo:y", "left"), ("echo:y", "echo:z", "left"),
                                    ("echo:z", "echo:x", "right")]:  # fmt: skip
            record_vote(repository, left_response_id=ids[(item, left)],
                        right_response_id=ids[(item, right)], winner=winner, rater="ann")  # fmt: skip
            record_vote(repository, left_response_id=ids[(item, left)],
                        right_response_id=ids[(item, right)], winner=winner, rater="judge:j")  # fmt: skip
            mirrored = {"left": "right", "right": "left"}[winner] if item < 2 else "tie"
            record_vote(repository, left_response_id=ids[(item, right)],
                        right_response_id=ids[(item, left)], winner=mirrored, rater="judge:j")  # fmt: skip

    votes = votes_frame(repository, run_id)

    rates = win_rates(votes).set_index("model")
    assert (
        rates.loc["echo:x", "win_rate"]
        > rates.loc["echo:y", "win_rate"]
        > rates.loc["echo:z", "win_rate"]
    )
    fit = fit_bradley_terry(votes)
    assert list(fit["model"]) == ["echo:x", "echo:y", "echo:z"]
    signs = sign_test(votes, item="item_index")
    assert list(signs["n_decided"]) == [3, 3, 3]
    agreement = rater_agreement(votes, reference="judge:j")
    assert agreement.loc[0, "n"] == 9
    # The judge's latest vote per (item, pair) counts: the mirrored one, a tie on item 2.
    assert agreement.loc[0, "observed_agreement"] == pytest.approx(6 / 9)
    consistency = swap_consistency(votes, rater="rater").set_index("rater")
    assert consistency.loc["judge:j", "n_pairs"] == 9
    assert consistency.loc["judge:j", "consistent"] == 6
    assert consistency.loc["judge:j", "mixed"] == 3
    assert consistency.loc["ann", "n_pairs"] == 0
    assert position_bias(votes, by="rater")["rater"].tolist() == ["ann", "judge:j"]
    assert isinstance(votes["winner"].dtype, pd.StringDtype)
