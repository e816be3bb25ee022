"""``orchestrate`` and ``aorchestrate`` spell out the same keywords, kept in step.

Both signatures are written out in full so every IDE shows every keyword with
its type (a shared ParamSpec signature is invisible to static Jedi, which
pylsp and jupyterlab-lsp use); these tests catch the two copies drifting apart.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from maquina_nb.orchestrator import aorchestrate, api, orchestrate


def test_both_take_the_same_parameters_with_the_same_types_and_defaults() -> None:
    assert inspect.signature(aorchestrate) == inspect.signature(orchestrate)


class _Stop(Exception):
    pass


def test_both_hand_every_keyword_to_the_planning_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A distinct object per keyword shows which ones reach _prepare, and how.
    keywords = [
        p.name
        for p in inspect.signature(orchestrate).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    values = {name: object() for name in keywords}
    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def capture(*args: Any, **kwargs: Any) -> Any:
        seen.append((args, kwargs))
        raise _Stop

    monkeypatch.setattr(api, "_prepare", capture)
    with pytest.raises(_Stop):
        orchestrate("prompt", "echo", **values)
    with pytest.raises(_Stop):
        asyncio.run(aorchestrate("prompt", "echo", **values))

    (sync_args, sync_kwargs), (async_args, async_kwargs) = seen
    assert (sync_args, sync_kwargs) == (async_args, async_kwargs)
    # name and tags go to the run itself, after planning.
    assert {k for k, v in sync_kwargs.items() if v is values.get(k)} == set(
        keywords
    ) - {"name", "tags"}
