"""The REST routes: runs, responses, feedback, decisions, statistics, models.

Handlers are plain ``def`` functions: the repository is synchronous, so
FastAPI runs them in its worker threads and the event loop stays free for
WebSockets. Each answers 404 naming an unknown id and 422 naming a bad field.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from maquina_nb._redact import get_logger
from maquina_nb.errors import InvalidFieldError
from maquina_nb.server import _models, _queries, _stats
from maquina_nb.server._security import token_matches
from maquina_nb.server.schemas import (
    DecisionIn,
    DecisionOut,
    DecisionPage,
    ErrorOut,
    FeedbackIn,
    FeedbackOut,
    FeedbackPage,
    ModelOut,
    ResponseOut,
    ResponsePage,
    RunOut,
    RunPage,
    RunStartIn,
    RunStartOut,
    StatisticsOut,
)

__all__ = ["api", "field_error", "not_found"]

logger = get_logger(__name__)

_bearer = HTTPBearer(auto_error=False, description="The server's token, if it has one.")


def _state(request: Request) -> Any:
    return request.app.state.maquina


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Refuse the request (401) unless it carries the server's token, when set."""
    token = _state(request).token
    if token is None:
        return
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "This server needs its token: send 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(token, f"Bearer {credentials.credentials}"):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "The token was rejected: it is not this server's token; check it "
            "(whole, without quotes) or ask whoever runs the server.",
            headers={"WWW-Authenticate": "Bearer"},
        )


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unreadable body, or a Host not served."},
    401: {"model": ErrorOut, "description": "Missing or wrong token."},
    404: {"model": ErrorOut, "description": "Unknown id."},
    413: {"model": ErrorOut, "description": "Body over the server's limit."},
}

api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], responses=_ERRORS)

Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page.")
]
Text = Annotated[str | None, Query(max_length=200)]


def not_found(kind: str, value: str) -> HTTPException:
    """Return the 404 for an unknown ``kind`` id ``value``."""
    shown = value if len(value) <= 64 else value[:61] + "..."
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"No {kind} has the id {shown!r}; check the id."
    )


def field_error(
    loc: tuple[str | int, ...], message: str, value: Any = None
) -> HTTPException:
    """Return a 422 in FastAPI's own shape, naming the field at ``loc``."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"type": "value_error", "loc": list(loc), "msg": message, "input": value}],
    )


def _as_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _json(model: BaseModel) -> Response:
    # The hot read routes build their pydantic model once and send it as is;
    # returned as a model, FastAPI would validate it a second time.
    return Response(model.model_dump_json(), media_type="application/json")


def _run_out(row: Any) -> RunOut:
    return RunOut.model_validate(row, from_attributes=True)


def _require_run(engine: Any, run_id: str) -> Any:
    run = _queries.get_run_row(engine, run_id)
    if run is None:
        raise not_found("run", run_id)
    return run


def _run_page(
    request: Request,
    run_id: str,
    page: Callable[..., tuple[list[Any], str | None]],
    *,
    limit: int,
    cursor: str | None,
    **filters: Any,
) -> tuple[list[Any], str | None]:
    """Return one ``page`` of a known run's rows; 404 for the run, 422 for the cursor."""
    engine = _state(request).engine
    _require_run(engine, run_id)
    try:
        return page(engine, run_id, limit=limit, cursor=cursor, **filters)
    except _queries.CursorError as exc:
        raise field_error(("query", "cursor"), str(exc), cursor) from exc


# --- runs ----------------------------------------------------------------------


@api.get("/runs", response_model=RunPage, tags=["runs"])
def list_runs(
    request: Request,
    limit: Limit = 50,
    cursor: Cursor = None,
    name: Text = None,
    tag: Text = None,
    model: Text = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Response:
    """List runs, newest first, one keyset page at a time."""
    repository = _state(request).repository
    try:
        page = repository.list_runs(
            limit=limit,
            cursor=cursor,
            name=name,
            tag=tag,
            model=model,
            # A time without a zone is read as UTC, the zone of every stored time.
            since=_as_utc(since),
            until=_as_utc(until),
        )
    except InvalidFieldError as exc:
        # A limit out of range, or a cursor that does not decode; any other
        # store error is the database's (503).
        raise field_error(("query", exc.field), str(exc), exc.value) from exc
    return _json(
        RunPage(runs=[_run_out(row) for row in page.runs], next_cursor=page.next_cursor)
    )


@api.post(
    "/runs",
    response_model=RunStartOut,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["runs"],
    responses={
        403: {"model": ErrorOut, "description": "Starting runs is turned off."},
        429: {
            "model": ErrorOut,
            "description": "Too many runs started over the API are still going.",
        },
        503: {"model": ErrorOut, "description": "The run did not start in time."},
    },
)
async def start_run(request: Request, body: RunStartIn) -> RunStartOut:
    """Start a run in the background; watch it at ``events_url``."""
    from maquina_nb.server.live import StartRunError

    state = _state(request)
    if not state.allow_start_runs:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "This server does not start runs; restart it without --no-start-runs.",
        )
    try:
        run_id = await state.launcher.start(body)
    except StartRunError as exc:
        if exc.status_code != status.HTTP_422_UNPROCESSABLE_CONTENT:
            raise HTTPException(exc.status_code, exc.message) from exc
        raise field_error(exc.field, exc.message) from exc
    return RunStartOut(
        run_id=run_id,
        status="running",
        run_url=f"/api/runs/{run_id}",
        events_url=f"/api/runs/{run_id}/events",
    )


@api.get("/runs/{run_id}", response_model=RunOut, tags=["runs"])
def get_run(request: Request, run_id: str) -> Response:
    """Return one run."""
    return _json(_run_out(_require_run(_state(request).engine, run_id)))


@api.get("/runs/{run_id}/responses", response_model=ResponsePage, tags=["responses"])
def list_responses(
    request: Request,
    run_id: str,
    limit: Limit = 100,
    cursor: Cursor = None,
    model: Text = None,
    status_: Annotated[str | None, Query(alias="status", max_length=32)] = None,
    item_index: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> Response:
    """List a run's responses in item order, one keyset page at a time."""
    rows, next_cursor = _run_page(
        request,
        run_id,
        _queries.responses_page,
        limit=limit,
        cursor=cursor,
        model=model,
        status=status_,
        item_index=item_index,
    )
    return _json(
        ResponsePage(
            responses=[
                ResponseOut.model_validate(row, from_attributes=True) for row in rows
            ],
            next_cursor=next_cursor,
        )
    )


@api.get("/responses/{response_id}", response_model=ResponseOut, tags=["responses"])
def get_response(request: Request, response_id: str) -> Response:
    """Return one response."""
    row = _queries.get_response(_state(request).engine, response_id)
    if row is None:
        raise not_found("response", response_id)
    return _json(ResponseOut.model_validate(row, from_attributes=True))


# --- feedback --------------------------------------------------------------------


@api.post(
    "/responses/{response_id}/feedback",
    response_model=FeedbackOut,
    status_code=status.HTTP_201_CREATED,
    tags=["feedback"],
)
def create_feedback(
    request: Request, response_id: str, body: FeedbackIn
) -> FeedbackOut:
    """Record a thumbs, rating, comment or label on one response."""
    state = _state(request)
    if _queries.get_response(state.engine, response_id) is None:
        raise not_found("response", response_id)
    try:
        feedback_id = state.repository.record_feedback(
            response_id,
            body.kind,
            body.value,
            comment=body.comment,
            label=body.label,
            rater=body.rater,
        )
    except ValueError as exc:
        raise field_error(("body", getattr(exc, "field", "value")), str(exc)) from exc
    row = _queries.get_feedback(state.engine, feedback_id)
    return FeedbackOut.model_validate(row, from_attributes=True)


@api.get("/runs/{run_id}/feedback", response_model=FeedbackPage, tags=["feedback"])
def list_feedback(
    request: Request,
    run_id: str,
    limit: Limit = 100,
    cursor: Cursor = None,
    response_id: Text = None,
    kind: Literal["thumbs", "rating", "comment", "label"] | None = None,
    rater: Text = None,
) -> FeedbackPage:
    """List the feedback on a run's responses, oldest first."""
    rows, next_cursor = _run_page(
        request,
        run_id,
        _queries.feedback_page,
        limit=limit,
        cursor=cursor,
        response_id=response_id,
        kind=kind,
        rater=rater,
    )
    return FeedbackPage(
        feedback=[
            FeedbackOut.model_validate(row, from_attributes=True) for row in rows
        ],
        next_cursor=next_cursor,
    )


# --- decisions -------------------------------------------------------------------


@api.post(
    "/runs/{run_id}/decisions",
    response_model=DecisionOut,
    status_code=status.HTTP_201_CREATED,
    tags=["decisions"],
)
def create_decision(request: Request, run_id: str, body: DecisionIn) -> DecisionOut:
    """Record which response won an item of a run."""
    state = _state(request)
    _require_run(state.engine, run_id)

    # The winner must be one of this run's answers to this item.
    if body.winner_response_id is not None:
        winner = _queries.get_response(state.engine, body.winner_response_id)
        if (
            winner is None
            or winner.run_id != run_id
            or winner.item_index != body.item_index
        ):
            raise field_error(
                ("body", "winner_response_id"),
                f"Response {body.winner_response_id!r} is not an answer to item "
                f"{body.item_index} of run {run_id!r}; pick one of that item's responses.",
                body.winner_response_id,
            )

    try:
        decision_id = state.repository.record_decision(
            run_id,
            body.item_index,
            body.strategy,
            winner_response_id=body.winner_response_id,
            decided_by=body.decided_by,
            rationale=body.rationale,
            details=body.details,
        )
    except ValueError as exc:
        raise field_error(
            ("body", getattr(exc, "field", "strategy")), str(exc)
        ) from exc
    row = _queries.get_decision(state.engine, decision_id)
    return DecisionOut.model_validate(row, from_attributes=True)


@api.get("/runs/{run_id}/decisions", response_model=DecisionPage, tags=["decisions"])
def list_decisions(
    request: Request,
    run_id: str,
    limit: Limit = 100,
    cursor: Cursor = None,
    strategy: Literal["human", "judge", "fastest", "cheapest", "expected", "majority"]
    | None = None,
    item_index: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> DecisionPage:
    """List a run's decisions, oldest first."""
    rows, next_cursor = _run_page(
        request,
        run_id,
        _queries.decisions_page,
        limit=limit,
        cursor=cursor,
        strategy=strategy,
        item_index=item_index,
    )
    return DecisionPage(
        decisions=[
            DecisionOut.model_validate(row, from_attributes=True) for row in rows
        ],
        next_cursor=next_cursor,
    )


# --- statistics and models ---------------------------------------------------------


@api.get("/runs/{run_id}/statistics", response_model=StatisticsOut, tags=["statistics"])
def run_statistics(request: Request, run_id: str) -> StatisticsOut:
    """Per-model figures and win rates (from decisions) of one run."""
    engine = _state(request).engine
    return _stats.run_statistics(engine, _require_run(engine, run_id))


@api.get("/models", response_model=list[ModelOut], tags=["models"])
def list_models() -> list[ModelOut]:
    """The models runs may name: aliases, configured and registered models."""
    return _models.configured_models()
