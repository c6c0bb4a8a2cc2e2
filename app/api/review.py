"""The review's own routes: what a postmortem's minimum viable report still lacks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app import postmortems, review
from app.api.deps import ContextDep, Reader
from app.api.params import MAX_ID
from app.api.schemas import CompletenessOut, MissingOut

router = APIRouter(prefix="/api/v1/postmortems", tags=["postmortems"])


@router.get(
    "/{postmortem_id}/completeness", response_model=CompletenessOut, responses={404: {"description": "unknown id"}}
)
def get_completeness(
    context: ContextDep, _: Reader, postmortem_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> CompletenessOut:
    """What the postmortem still lacks before it can be published, computed from its data now (nothing is stored)."""
    with context.read() as session:
        assessed = review.of(session, postmortems.get(session, postmortem_id))
    missing = [MissingOut.model_validate(m.body()) for m in assessed.missing]
    return CompletenessOut(complete=assessed.complete, missing=missing)
