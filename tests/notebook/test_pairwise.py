"""The blind pairwise voting widget: blindness, stored votes, reveal, fallback, XSS."""

from __future__ import annotations

import json

import pytest
from _html_checks import C32_PAYLOADS, assert_inert

from maquina_nb.analysis.pairing import BlindPair, PairOption, shuffle_pairs
from maquina_nb.db import Repository
from maquina_nb.db.votes import votes_frame
from maquina_nb.notebook.pairwise import PairwiseWidget

MODELS = ("replay:gpt-4", "replay:gpt-3.5-turbo")


@pytest.fixture
def repository(tmp_path: object) -> Repository:
    return Repository.from_url(f"sqlite:///{tmp_path}/pairwise.db")


def _pairs(
    repository: Repository, texts: list[tuple[str, str]]
) -> tuple[str, list[BlindPair]]:
    run_id = repository.add_run(
        name="pairwise", template="{{ q }}", system_prompt=None, models=list(MODELS),
        parameters={}, tags=[], item_count=len(texts), samples=1,
    )  # fmt: skip
    rows = [
        {
            "run_id": run_id,
            "item_index": i,
            "sample_index": 0,
            "model_spec": m,
            "text": t,
            "status": "done",
        }
        for i, pair in enumerate(texts)
        for m, t in zip(MODELS, pair, strict=True)
    ]
    ids = repository.add_responses(rows)
    pairs = [
        BlindPair(
            run_id,
            i,
            f"Question {i}",
            PairOption(ids[2 * i], MODELS[0], texts[i][0]),
            PairOption(ids[2 * i + 1], MODELS[1], texts[i][1]),
        )
        for i in range(len(texts))
    ]
    return run_id, pairs


def _click(widget: PairwiseWidget, content: dict[str, object]) -> None:
    # What the page's model.send() delivers to the kernel.
    widget._handle_custom_msg(content, [])


def test_pairwise_state_stays_blind_until_reveal(repository: Repository) -> None:
    _, pairs = _pairs(repository, [("Paris is the capital.", "Lyon."), ("4", "5")])
    widget = PairwiseWidget(pairs, repository=repository, seed=1)

    state = json.dumps(widget.get_state(), default=str)
    assert all(model not in state for model in MODELS)
    assert widget.current is not None
    assert widget.revealed is False

    widget.vote("left")
    widget.vote("tie")

    assert widget.done
    assert widget.revealed is True
    assert widget.current is None
    shown = widget.pairs
    assert widget.summary == [
        {
            "item_index": p.item_index,
            "left": p.left.label,
            "right": p.right.label,
            "winner": w,
            "vote": v,
        }
        for p, w, v in zip(shown, ["left", "tie"], ["left better", "tie"], strict=True)
    ]


def test_pairwise_clicks_store_votes_with_shown_sides(repository: Repository) -> None:
    run_id, pairs = _pairs(repository, [("a0", "b0"), ("a1", "b1"), ("a2", "b2")])
    widget = PairwiseWidget(pairs, repository=repository, rater="ada", seed=7)
    shown = widget.pairs

    _click(widget, {"type": "vote", "winner": "right", "position": 0})
    _click(
        widget, {"type": "vote", "winner": "left", "position": 0}
    )  # stale double click
    _click(widget, {"type": "skip", "position": 1})
    _click(widget, {"type": "vote", "winner": "left", "position": 2})

    votes = votes_frame(repository, run_id)
    assert votes[["item_index", "model_a", "model_b", "winner", "rater"]].to_dict("records") == [
        {"item_index": shown[0].item_index, "model_a": shown[0].left.label, "model_b": shown[0].right.label, "winner": "model_b", "rater": "ada"},
        {"item_index": shown[2].item_index, "model_a": shown[2].left.label, "model_b": shown[2].right.label, "winner": "model_a", "rater": "ada"},
    ]  # fmt: skip
    assert list(votes["left_response_id"]) == [
        shown[0].left.response_id,
        shown[2].left.response_id,
    ]
    assert [w for _, w in widget.votes] == ["right", None, "left"]
    assert widget.summary[1]["vote"] == "skipped"


def test_shuffle_pairs_randomizes_sides_and_order_repeatably() -> None:
    pairs = [
        BlindPair(
            "r", i, "q", PairOption(f"a{i}", "A", "x"), PairOption(f"b{i}", "B", "y")
        )
        for i in range(40)
    ]
    shown = shuffle_pairs(pairs, seed=3)

    assert shown == shuffle_pairs(pairs, seed=3)
    assert sorted(p.item_index for p in shown) == list(range(40))
    left_labels = [p.left.label for p in shown]
    assert 10 < left_labels.count("A") < 30
    assert [p.item_index for p in shown] != list(range(40))
    for pair in shown:
        assert {pair.left.response_id, pair.right.response_id} == {
            f"a{pair.item_index}",
            f"b{pair.item_index}",
        }


def test_pairwise_renders_model_text_inert(repository: Repository) -> None:
    _, pairs = _pairs(repository, [(" ".join(C32_PAYLOADS), "**bold** and `code`")])
    widget = PairwiseWidget(pairs, repository=repository, shuffle=False)

    assert_inert(widget.current["left_html"])
    assert_inert(widget.current["prompt_html"])
    assert_inert(widget._repr_mimebundle_()[0]["text/html"])
    assert "<strong>bold</strong>" in widget.current["right_html"]
    assert "<code>code</code>" in widget.current["right_html"]


def test_pairwise_mimebundle_has_blind_fallbacks(repository: Repository) -> None:
    _, pairs = _pairs(repository, [("left text", "right text")])
    widget = PairwiseWidget(pairs, repository=repository, shuffle=False)

    data, _ = widget._repr_mimebundle_()
    assert data["text/plain"] == "Blind A/B vote: 0 of 1 pairs voted"
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "left text" in data["text/html"]
    assert all(model not in data["text/html"] for model in MODELS)

    widget.vote("right")
    data, _ = widget._repr_mimebundle_()
    assert data["text/plain"] == "Blind A/B vote: 1 of 1 pairs voted"
    assert "replay:gpt-4" in data["text/html"]
    assert "right better" in data["text/html"]


def test_pairwise_failed_store_shows_error_and_keeps_pair(
    repository: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    run_id, pairs = _pairs(repository, [("x", "y")])
    widget = PairwiseWidget(pairs, repository=repository, shuffle=False)
    repository.delete_run(run_id)

    _click(widget, {"type": "vote", "winner": "tie", "position": 0})

    assert widget.error.startswith("The vote was not stored: No response with id")
    assert widget.position == 0
    assert widget.current is not None
    assert [r.name for r in caplog.records if r.levelname == "ERROR"] == [
        "maquina_nb.notebook.pairwise"
    ]


def test_pairwise_rejects_bad_winner_and_voting_past_the_end(
    repository: Repository,
) -> None:
    _, pairs = _pairs(repository, [("x", "y")])
    widget = PairwiseWidget(pairs, repository=repository)
    with pytest.raises(ValueError, match="'left', 'right' or 'tie', not 'both'"):
        widget.vote("both")
    widget.vote("tie")
    with pytest.raises(ValueError, match="voted on already"):
        widget.vote("left")


def test_pairwise_with_no_pairs(repository: Repository) -> None:
    widget = PairwiseWidget([], repository=repository)
    assert widget.total == 0
    assert widget.done
    assert "no pairs" in widget._repr_mimebundle_()[0]["text/html"]


def test_pairwise_undo_deletes_the_vote_and_shows_the_pair_again(
    repository: Repository,
) -> None:
    run_id, pairs = _pairs(repository, [("a0", "b0"), ("a1", "b1")])
    widget = PairwiseWidget(pairs, repository=repository, shuffle=False)

    _click(widget, {"type": "vote", "winner": "left", "position": 0})
    assert len(votes_frame(repository, run_id)) == 1
    _click(widget, {"type": "undo", "position": 1})

    assert widget.position == 0
    assert widget.votes == []
    assert votes_frame(repository, run_id).empty
    assert "a0" in widget.current["left_html"]

    # A skip can be undone too; nothing was stored for it.
    widget.skip()
    widget.undo()
    assert widget.position == 0
    with pytest.raises(ValueError, match="no vote to undo"):
        widget.undo()

    # Once the models are revealed, votes can no longer be taken back.
    widget.vote("right")
    widget.vote("tie")
    with pytest.raises(ValueError, match="would not be blind"):
        widget.undo()
    assert list(votes_frame(repository, run_id)["winner"]) == ["model_b", "tie"]
