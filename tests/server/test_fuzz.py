"""Schema-driven fuzz of the API with schemathesis, in process over ASGI.

Every operation in the OpenAPI document gets a bounded number of generated
requests (valid and invalid). Each answer must be no server error, carry a
status the document lists, and match the documented body schema. Half of the
path ids are swapped for a seeded run's real ids so the fuzz reaches past 404.
"""

from __future__ import annotations

from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from maquina_nb.db import Repository  # noqa: E402
from maquina_nb.server import create_app  # noqa: E402

from .conftest import MODELS, add_run  # noqa: E402

_DB_DIR = Path(__import__("tempfile").mkdtemp(prefix="maquina-fuzz-"))
_REPO = Repository.from_url(f"sqlite:///{_DB_DIR / 'fuzz.db'}")
_SEEDED = add_run(_REPO)
# Starting runs is off: the fuzz is about the API's answers, not spending.
APP = create_app(_REPO, allow_start_runs=False)

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

_REAL_IDS = {
    "run_id": _SEEDED.run_id,
    "response_id": _SEEDED.response_ids[(0, MODELS[0])],
}


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_answers_match_the_schema(case: schemathesis.Case) -> None:
    params = case.path_parameters or {}
    for name, real in _REAL_IDS.items():
        if name in params and len(str(params[name])) % 2 == 0:
            params[name] = real

    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
