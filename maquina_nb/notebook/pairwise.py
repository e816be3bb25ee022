"""A blind A/B voting widget: two anonymized answers, pick the better one.

:class:`PairwiseWidget` shows one :class:`~maquina_nb.analysis.pairing.BlindPair`
at a time, its sides in random order, with *Left is better*, *Tie* and *Right is
better* buttons (keys 1/2/3 or the arrow keys), *Skip*, and *Undo* for the last
vote. Every vote is stored at once as a ``pairwise_votes`` row; the widget then
moves to the next pair and, after the last one, reveals which model wrote which
answer.

Model names never reach the page before the reveal: the synced state holds
only the current pair's rendered text. Answers are rendered as Markdown with raw
HTML disabled and sanitized (:func:`maquina_nb.notebook.render.render_markdown`).
Where widgets do not render (nbconvert, GitHub) the widget shows as static HTML
of the current pair, or of the revealed summary.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from maquina_nb._redact import get_logger
from maquina_nb.analysis.pairing import BlindPair, shuffle_pairs
from maquina_nb.db.votes import VOTE_WINNERS, delete_vote, record_vote
from maquina_nb.notebook.render import render_markdown

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from maquina_nb.db import Repository

__all__ = ["PairwiseWidget"]

logger = get_logger(__name__)

_STATIC = Path(__file__).parent / "static"
_VOTE_WORDS = {"left": "left better", "right": "right better", "tie": "tie"}


class PairwiseWidget(anywidget.AnyWidget):
    """Blind pairwise voting over a list of pairs, stored as it goes.

    Args:
        pairs: the pairs to vote on, in any order.
        repository: where the votes go (a ``Repository`` or an engine).
        rater: who votes; default the configured rater name.
        shuffle: show the pairs in random order with random sides.
        seed: makes the shuffle repeatable.
        title: shown above the pair.
        on_vote: called as ``on_vote(pair, winner, vote_id)`` after each stored
            vote; ``pair`` is as shown, so ``winner`` refers to its sides.
    """

    _esm = _STATIC / "pairwise.js"
    _css = _STATIC / "pairwise.css"

    title = traitlets.Unicode("Blind A/B vote").tag(sync=True)
    position = traitlets.Int(0).tag(sync=True)
    """Index of the pair on screen."""
    total = traitlets.Int(0).tag(sync=True)
    current = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    """The pair on screen: ``prompt_html``, ``left_html``, ``right_html``."""
    revealed = traitlets.Bool(False).tag(sync=True)
    summary: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    """After the reveal: per pair, the item, both labels and the vote."""
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        pairs: Sequence[BlindPair],
        *,
        repository: Repository | Engine,
        rater: str | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        title: str = "Blind A/B vote",
        on_vote: Callable[[BlindPair, str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self._pairs = shuffle_pairs(pairs, seed=seed) if shuffle else list(pairs)
        self._repository = repository
        self._rater = rater
        self._on_vote = on_vote
        self._votes: list[tuple[BlindPair, str | None]] = []
        self._vote_ids: list[str | None] = []
        self.title = title
        self.total = len(self._pairs)
        self.on_msg(self._handle_message)
        self._show(0)

    @property
    def pairs(self) -> list[BlindPair]:
        """The pairs in the order (and with the sides) they are shown."""
        return list(self._pairs)

    @property
    def votes(self) -> list[tuple[BlindPair, str | None]]:
        """``(pair as shown, winner)`` so far; ``None`` for a skipped pair."""
        return list(self._votes)

    @property
    def done(self) -> bool:
        """Whether every pair has been voted on or skipped."""
        return self.position >= self.total

    def vote(self, winner: str) -> str:
        """Store ``winner`` (``left``, ``right`` or ``tie``) for the pair on screen.

        Returns:
            The stored vote's id.

        Raises:
            ValueError: ``winner`` is not one of the three, or every pair is done.
        """
        if winner not in VOTE_WINNERS:
            raise ValueError(f"A vote is 'left', 'right' or 'tie', not {winner!r}.")
        if self.done:
            raise ValueError(
                "Every pair has been voted on already; build a new widget."
            )
        pair = self._pairs[self.position]
        vote_id = record_vote(
            self._repository,
            left_response_id=pair.left.response_id,
            right_response_id=pair.right.response_id,
            winner=winner,  # type: ignore[arg-type]
            rater=self._rater,
            run_id=pair.run_id,
            item_index=pair.item_index,
        )
        self._votes.append((pair, winner))
        self._vote_ids.append(vote_id)
        if self._on_vote is not None:
            self._on_vote(pair, winner, vote_id)
        self._show(self.position + 1)
        return vote_id

    def skip(self) -> None:
        """Move past the pair on screen without a vote."""
        if self.done:
            return
        self._votes.append((self._pairs[self.position], None))
        self._vote_ids.append(None)
        self._show(self.position + 1)

    def undo(self) -> None:
        """Take back the last vote (or skip) and show that pair again.

        Raises:
            ValueError: nothing to undo, or the models have been revealed (a
                vote cast after seeing them would no longer be blind).
        """
        if self.revealed:
            raise ValueError(
                "The models have been revealed, so a new vote would not be blind; "
                "start a new session (ab.vote()) to vote again."
            )
        if not self._votes:
            raise ValueError("There is no vote to undo yet.")
        vote_id = self._vote_ids[-1]
        if vote_id is not None:
            delete_vote(self._repository, vote_id)
        self._votes.pop()
        self._vote_ids.pop()
        self._show(self.position - 1)

    def reveal(self) -> None:
        """Show which model wrote which answer (also happens after the last pair)."""
        rows = []
        for pair, winner in self._votes:
            rows.append(
                {
                    "item_index": pair.item_index,
                    "left": pair.left.label,
                    "right": pair.right.label,
                    "winner": winner or "skipped",
                    "vote": _VOTE_WORDS.get(winner or "", "skipped"),
                }
            )
        self.summary = rows
        self.revealed = True

    def _show(self, position: int) -> None:
        # One state message per move, so the page never draws a new pair with an
        # old position. Only the pair on screen is rendered: 1,000 pairs stay cheap.
        with self.hold_sync():
            self.error = ""
            if position >= len(self._pairs):
                self.position = len(self._pairs)
                self.current = None  # type: ignore[assignment]  # allow_none trait
                if self._pairs:
                    self.reveal()
                return
            pair = self._pairs[position]
            self.position = position
            self.current = {
                "prompt_html": render_markdown(pair.prompt),
                "left_html": render_markdown(pair.left.text),
                "right_html": render_markdown(pair.right.text),
            }

    def _handle_message(
        self, widget: Any, content: dict[str, Any], buffers: list[bytes]
    ) -> None:
        # A stale message (a double click after the page moved on) is ignored.
        if not isinstance(content, dict) or content.get("position") != self.position:
            return
        try:
            if content.get("type") == "vote":
                self.vote(str(content.get("winner")))
            elif content.get("type") == "skip":
                self.skip()
            elif content.get("type") == "undo":
                self.undo()
        except Exception as exc:
            # NOTE: IPython does not show exceptions raised in comm callbacks, so the
            # error is logged and put on the page instead of being lost.
            logger.exception("handling a pairwise vote message failed")
            # Clearing first makes a repeated, identical error redraw the page too.
            self.error = ""
            action = "undone" if content.get("type") == "undo" else "stored"
            self.error = f"The vote was not {action}: {exc}"

    def __repr__(self) -> str:
        return f"<PairwiseWidget {min(self.position, self.total)}/{self.total} pairs voted>"

    def _repr_mimebundle_(
        self, **kwargs: Any
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:  # pragma: no cover - only when the view name is unset
            return None
        data, metadata = bundle
        data = {
            **data,
            "text/plain": self._plain_text(),
            "text/html": self._static_html(),
        }
        return data, metadata

    def _plain_text(self) -> str:
        voted = sum(1 for _, winner in self._votes if winner is not None)
        return f"Blind A/B vote: {voted} of {self.total} pairs voted"

    def _static_html(self) -> str:
        # The static view is as blind as the live one until the reveal.
        title = html.escape(self.title)
        if self.revealed:
            rows = "".join(
                "<tr>"
                f"<td>{row['item_index']}</td><td>{html.escape(row['left'])}</td>"
                f"<td>{html.escape(row['right'])}</td><td>{html.escape(row['vote'])}</td>"
                "</tr>"
                for row in self.summary
            )
            return (
                f'<div class="mqp-static"><strong>{title}</strong>'
                "<table><tr><th>Item</th><th>Left</th><th>Right</th><th>Vote</th></tr>"
                f"{rows}</table></div>"
            )
        if self.current is None:
            return f'<div class="mqp-static"><strong>{title}</strong>: no pairs to vote on.</div>'
        return (
            f'<div class="mqp-static"><strong>{title}</strong> '
            f"(pair {self.position + 1} of {self.total}; run the notebook to vote)"
            f"<div>{self.current['prompt_html']}</div>"
            '<table style="table-layout:fixed;width:100%"><tr><th>Left answer</th>'
            "<th>Right answer</th></tr>"
            f'<tr><td style="vertical-align:top">{self.current["left_html"]}</td>'
            f'<td style="vertical-align:top">{self.current["right_html"]}</td></tr>'
            "</table></div>"
        )
