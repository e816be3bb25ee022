"""Argument checks of the Python API, matching what ``%%orchestrate`` and the server accept.

Each bad value is a :class:`~maquina_nb.errors.ConfigurationError` in one
sentence naming the argument and the value, raised before a run is recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from maquina_nb.errors import ConfigurationError

__all__ = ["check_parameters", "normalize_tags"]

_MAX_TEMPERATURE = 2.0


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_parameters(
    *,
    temperature: Any = None,
    max_tokens: Any = None,
    top_p: Any = None,
    stop: Any = None,
    seed: Any = None,
) -> list[str] | None:
    """Check the sampling parameters; return ``stop`` as a list (a str is one sequence).

    Raises:
        ConfigurationError: a value of the wrong type or out of range.
    """
    if temperature is not None and not (
        _is_number(temperature) and 0 <= temperature <= _MAX_TEMPERATURE
    ):
        raise ConfigurationError(
            f"temperature must be a number from 0 to 2, not {temperature!r}."
        )
    if max_tokens is not None and not (_is_whole(max_tokens) and max_tokens >= 1):
        raise ConfigurationError(
            f"max_tokens must be a whole number of at least 1, not {max_tokens!r}."
        )
    if top_p is not None and not (_is_number(top_p) and 0 <= top_p <= 1):
        raise ConfigurationError(f"top_p must be a number from 0 to 1, not {top_p!r}.")
    if seed is not None and not _is_whole(seed):
        raise ConfigurationError(f"seed must be a whole number, not {seed!r}.")
    if stop is None:
        return None
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, Iterable) or isinstance(sequences, (bytes, dict)):
        raise ConfigurationError(
            f"stop must be a string or a list of strings, not {stop!r}."
        )
    sequences = list(sequences)
    if not all(isinstance(s, str) and s for s in sequences):
        raise ConfigurationError(
            f"stop must be a string or a list of non-empty strings, not {stop!r}."
        )
    return sequences


def normalize_tags(tags: Any) -> list[str]:
    """Return ``tags`` as a list of strings; a single string is one tag.

    Raises:
        ConfigurationError: not a string or an iterable of non-empty strings.
    """
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, Iterable) or isinstance(tags, (bytes, dict)):
        raise ConfigurationError(
            f"tags must be a string or a list of non-empty strings, not {tags!r}."
        )
    listed = list(tags)
    if not all(isinstance(t, str) and t.strip() for t in listed):
        raise ConfigurationError(
            f"tags must be a string or a list of non-empty strings, not {tags!r}."
        )
    return listed
