"""Find an A/B test's runs in the database again (``load_ab_test``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from maquina_nb._redact import get_logger
from maquina_nb.analysis.ab import _TAG, ABTest, PairMode
from maquina_nb.errors import StoreError

if TYPE_CHECKING:
    from maquina_nb.db import Repository

__all__ = ["load_stored_test"]

logger = get_logger(__name__)


def load_stored_test(name: str, repository: Repository, *, pair: PairMode) -> ABTest:
    """Rebuild the newest stored A/B test named ``name`` (see ``load_ab_test``)."""
    # The newest run named "<name>:<variant>" carries the test's own tag.
    prefix = f"{name}:"
    newest = repository.list_runs(
        limit=1, name=f"{name.replace('*', '')}:*", tag=_TAG
    ).runs
    tags = newest[0].tags if newest else []
    test_tag = next((t for t in tags if t.startswith(f"{_TAG}:")), None)
    if test_tag is None:
        raise StoreError(
            f"No A/B test named {name!r} is stored in {repository!r}; check the "
            "name given to ab_test(), or pass db= for another database."
        )

    # All runs of that test, first variant first, each with its responses.
    stored = list(reversed(repository.list_runs(limit=1000, tag=test_tag).runs))
    runs = {
        run.name[len(prefix) :]: repository.get_run(run.id)
        for run in stored
        if run.name.startswith(prefix)
    }
    variants = {variant: run.template for variant, run in runs.items()}
    logger.info("A/B test %s loaded from runs %s", name, [r.id for r in stored])
    return ABTest(
        variants=variants,
        models=list(stored[0].models),
        runs=runs,  # type: ignore[arg-type]
        repository=repository,
        pair=pair,
    )
