"""Pairs of responses to show side by side, blind, for a vote.

A :class:`BlindPair` holds two responses to the same item and the names of what
produced them (a model spec, or an A/B test's ``variant · model`` label). The
names stay in the kernel until a voting session reveals them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "USABLE_STATUSES",
    "BlindPair",
    "PairOption",
    "make_pairs",
    "prompt_text",
    "shared_prompt",
    "shuffle_pairs",
]

#: Response statuses worth showing to a rater or a judge.
USABLE_STATUSES = frozenset({"done", "cached", "truncated"})


@dataclass(frozen=True, slots=True)
class PairOption:
    """One side of a pair: a stored response and the name of what produced it."""

    response_id: str
    label: str
    """What produced it: a model spec, or ``variant · model`` in an A/B test."""
    text: str


@dataclass(frozen=True, slots=True)
class BlindPair:
    """Two responses to one item, in the order they are to be shown."""

    run_id: str
    """The run the vote is stored under."""
    item_index: int
    prompt: str
    """The request both responses answer, as text."""
    left: PairOption
    right: PairOption

    def swapped(self) -> BlindPair:
        """Return the same pair with its sides exchanged."""
        return BlindPair(
            self.run_id, self.item_index, self.prompt, self.right, self.left
        )


def prompt_text(messages: Sequence[Mapping[str, Any]] | None) -> str:
    """Render stored chat messages as the request a rater or judge reads.

    One user turn comes back as itself; a conversation comes back as a labelled
    transcript, so the last question reads in its context. The system prompt is
    left out: it is the same for both sides of a pair.
    """
    turns = [m for m in (messages or ()) if m.get("role") != "system"]
    if len(turns) == 1:
        return str(turns[0].get("content", ""))
    lines = [
        f"[{str(m.get('role', 'user')).capitalize()}]\n{m.get('content', '')}"
        for m in turns
    ]
    return "\n\n".join(lines)


def _user_turns(messages: Sequence[Mapping[str, Any]] | None) -> list[str]:
    return [
        str(m.get("content", "")) for m in messages or () if m.get("role") == "user"
    ]


def shared_prompt(
    first: Sequence[Mapping[str, Any]] | None,
    second: Sequence[Mapping[str, Any]] | None,
    variables: Mapping[str, Any] | None = None,
) -> str:
    """Return the request two answers share, as shown to a rater or a judge.

    Identical requests come back as :func:`prompt_text`. Conversations that
    differ only in each model's own earlier answers (MT-Bench's second turn)
    come back as the user's turns, since an earlier answer would name its
    author. Otherwise (two prompt variants) the item's ``variables`` stand in.
    """
    left, right = prompt_text(first), prompt_text(second)
    if left == right:
        return left

    questions = _user_turns(first)
    if len(questions) > 1 and questions == _user_turns(second):
        return "\n\n".join(
            f"**Turn {n}**: {text}" for n, text in enumerate(questions, start=1)
        )

    if not variables:
        return "(The two answers were asked with different prompts.)"
    return "\n\n".join(f"**{name}**: {value}" for name, value in variables.items())


def make_pairs(
    run_id: str,
    item_index: int,
    prompt: str,
    options: Iterable[PairOption],
    *,
    keep: Callable[[PairOption, PairOption], bool] | None = None,
) -> list[BlindPair]:
    """Return every pair of ``options`` for one item (each unordered pair once).

    Args:
        run_id: the run the votes are stored under.
        item_index: the item the options answer.
        prompt: the request, as text.
        options: the responses, one per contestant.
        keep: when given, only pairs for which ``keep(first, second)`` is true
            (same model, different prompt variant, say).
    """
    pairs = []
    for first, second in itertools.combinations(list(options), 2):
        if keep is not None and not keep(first, second):
            continue
        pairs.append(BlindPair(run_id, item_index, prompt, first, second))
    return pairs


def shuffle_pairs(
    pairs: Sequence[BlindPair], *, seed: int | None = None
) -> list[BlindPair]:
    """Return ``pairs`` in random order, each with its sides swapped at random.

    Random sides stop a rater learning that one model always sits on the left;
    random order stops them learning which item comes next.
    """
    rng = random.Random(seed)
    shown = [pair.swapped() if rng.random() < 0.5 else pair for pair in pairs]
    rng.shuffle(shown)
    return shown
