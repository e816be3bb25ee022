"""Storage: ORM models, engine factory, migrate-on-open, repository, exports.

``from maquina_nb.db import Repository, create_db_engine`` is the usual start::

    repo = Repository.from_url("sqlite:///results.db")
    repo.list_runs(limit=10).runs
"""

from __future__ import annotations

from maquina_nb.db.engine import clear_engine_cache, create_db_engine, make_engine
from maquina_nb.db.ids import new_id
from maquina_nb.db.models import (
    Base,
    Decision,
    HumanFeedback,
    ModelResponse,
    OrchestrationContext,
    TimestampMixin,
)
from maquina_nb.db.repository import RESPONSE_COLUMNS, Repository, RunPage
from maquina_nb.db.validation import (
    DECISION_STRATEGIES,
    FEEDBACK_KINDS,
    RESPONSE_STATUSES,
    RUN_STATUSES,
)

# pairwise_votes (revision 0002, issue 6) is imported here so that Base.metadata,
# and with it `alembic check`, always includes it.
from maquina_nb.db.votes import PairwiseVote, record_vote, votes_frame

__all__ = [
    "DECISION_STRATEGIES",
    "FEEDBACK_KINDS",
    "RESPONSE_COLUMNS",
    "RESPONSE_STATUSES",
    "RUN_STATUSES",
    "Base",
    "Decision",
    "HumanFeedback",
    "ModelResponse",
    "OrchestrationContext",
    "PairwiseVote",
    "Repository",
    "RunPage",
    "TimestampMixin",
    "clear_engine_cache",
    "create_db_engine",
    "make_engine",
    "new_id",
    "record_vote",
    "votes_frame",
]
