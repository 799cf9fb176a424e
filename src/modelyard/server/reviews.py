"""The review queue over HTTP: `GET /v1/reviews`, `GET /v1/reviews/{id}`, and
`POST /v1/reviews` to resolve one (`accept`, `reject`, or `edit` with an answer)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.council.reviews import STATUSES, ReviewError, ReviewStatus, reviews_for
from modelyard.engine import Engine
from modelyard.errors import InvalidRequestError, ModelyardError
from modelyard.server.guard import GuardedRoute

router = APIRouter(route_class=GuardedRoute)
_RESOLVED: dict[str, ReviewStatus] = {"accept": "accepted", "reject": "rejected", "edit": "edited"}


class ReviewNotFoundError(ModelyardError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "review_not_found"


class ReviewResolvedError(ModelyardError):
    status_code = 409
    error_type = "invalid_request_error"
    code = "review_already_resolved"


class Resolve(BaseModel):
    """A resolution: who resolves which review, how, and (to edit) the new answer."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    action: Literal["accept", "reject", "edit"]
    by: str = Field(default="api", min_length=1, max_length=200)
    answer: str | None = None

    @model_validator(mode="after")
    def _edit_has_answer(self) -> Resolve:
        if (self.action == "edit") != (self.answer is not None):
            raise ValueError("'answer' is given exactly when the action is 'edit'")
        return self


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


@router.get("/v1/reviews")
async def list_reviews(request: Request, status: str | None = None, limit: int = 100) -> Any:
    """The queue, oldest first; `status` filters (pending, accepted, rejected, edited)."""
    if status is not None and status not in STATUSES:
        raise InvalidRequestError(
            f"status must be one of {', '.join(STATUSES)}, got {status!r}", param="status"
        )
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit must be between 1 and 1000", param="limit")
    store = reviews_for(_engine(request).ledger)
    wanted: ReviewStatus | None = next((s for s in STATUSES if s == status), None)
    items = await store.list(status=wanted, limit=limit)
    return {"object": "list", "data": [r.to_json() for r in items]}


@router.get("/v1/reviews/{review_id}")
async def show_review(review_id: str, request: Request) -> Any:
    try:
        review = await reviews_for(_engine(request).ledger).get(review_id)
    except ReviewError as exc:
        raise ReviewNotFoundError(str(exc), param="id") from None
    return review.to_json()


@router.post("/v1/reviews")
async def resolve_review(body: Resolve, request: Request) -> Any:
    """Resolve a pending review; who and when are recorded with it."""
    engine = _engine(request)
    store = reviews_for(engine.ledger)
    try:
        await store.get(body.id)
    except ReviewError as exc:
        raise ReviewNotFoundError(str(exc), param="id") from None
    try:
        review = await store.resolve(
            body.id, _RESOLVED[body.action], body.by, engine.executor.clock(), body.answer
        )
    except ReviewError as exc:
        raise ReviewResolvedError(str(exc), param="id") from None
    return review.to_json()
