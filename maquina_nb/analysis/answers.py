"""Compare short answers: normalization, extraction and matching rules.

Used by the expected-answer and majority decisions. ``normalize_answer`` folds
case and Unicode compatibility forms, drops punctuation and the English
articles *a*, *an*, *the*, and collapses whitespace, so that ``"The Eiffel
Tower."`` and ``"eiffel tower"`` compare equal. Thousands separators inside
numbers are removed first (``"1,000"`` -> ``"1000"``), while decimal points are
kept (``"3.5"`` stays ``"3.5"``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Literal

from maquina_nb.analysis._votes import AnalysisError

__all__ = [
    "Extractor",
    "MatchRule",
    "extract_answer",
    "match_answer",
    "normalize_answer",
]

MatchRule = Literal["exact", "normalized", "regex", "contains"]
Extractor = str | re.Pattern[str] | Callable[[str], str | None] | None

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_WHITESPACE = re.compile(r"\s+")
_POINT_MARK = "\x00"


def normalize_answer(text: str | None) -> str:
    """Return ``text`` folded for comparison (see the module docstring)."""
    if text is None:
        return ""
    folded = unicodedata.normalize("NFKC", str(text)).casefold()
    folded = _THOUSANDS.sub("", folded)
    folded = _DECIMAL_POINT.sub(_POINT_MARK, folded)

    # Drop punctuation and symbols (Unicode categories P* and S*).
    # The decimal-point mark is a control character, so it survives this step.
    kept = [" " if unicodedata.category(ch)[0] in "PS" else ch for ch in folded]
    folded = "".join(kept).replace(_POINT_MARK, ".")
    folded = _ARTICLES.sub(" ", folded)
    return _WHITESPACE.sub(" ", folded).strip()


def extract_answer(text: str | None, extractor: Extractor) -> str | None:
    """Pull the final answer out of a longer reply.

    Args:
        text: The reply.
        extractor: ``None`` (the whole reply), a regular expression (the first
            group if it has one, else the whole match, of its first match), or a
            callable returning the answer or None.

    Returns:
        The answer, or None when the reply is empty or the pattern does not match.
    """
    if text is None:
        return None
    if extractor is None:
        return text
    if callable(extractor) and not isinstance(extractor, re.Pattern):
        return extractor(text)
    pattern = _compile(extractor, "extract")
    found = pattern.search(text)
    if found is None:
        return None
    return found.group(1) if pattern.groups else found.group(0)


def _compile(pattern: str | re.Pattern[str], what: str) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise AnalysisError(
            f"The {what} pattern {pattern!r} is not a valid regular expression "
            f"({exc}); fix it or escape it with re.escape()."
        ) from exc


def match_answer(answer: str | None, expected: str | None, rule: MatchRule) -> bool:
    """Return whether ``answer`` matches ``expected`` under ``rule``.

    - ``exact``: equal after stripping surrounding whitespace;
    - ``normalized``: equal after :func:`normalize_answer`;
    - ``regex``: ``expected`` is a regular expression found anywhere in the answer;
    - ``contains``: the normalized expected answer appears in the normalized
      answer as whole words (so ``"4"`` does not match ``"42"``).

    A missing answer or expected value never matches.
    """
    if answer is None or expected is None:
        return False
    if rule == "exact":
        return answer.strip() == expected.strip()
    if rule == "normalized":
        return normalize_answer(answer) == normalize_answer(expected)
    if rule == "regex":
        return _compile(expected, "expected-answer").search(answer) is not None
    if rule == "contains":
        needle = normalize_answer(expected)
        return bool(needle) and f" {needle} " in f" {normalize_answer(answer)} "
    raise AnalysisError(
        f"Unknown match rule {rule!r}; use 'exact', 'normalized', 'regex' or 'contains'."
    )
