"""Dead letters: what an alert source sent that could not be used, with the reason, so nothing lost goes unseen."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app import dead_letters
from app.api.deps import ContextDep, Reader
from app.api.params import Cursor, after_id
from app.api.schemas import DeadLetterOut, Page
from app.inbox import DeliveryStatus

router = APIRouter(prefix="/api/v1/dead-letters", tags=["dead letters"])


@router.get("", response_model=Page[DeadLetterOut])
def list_dead_letters(
    context: ContextDep,
    _: Reader,
    status: Annotated[
        Literal["dead_letter", "failed"] | None,
        Query(description="dead_letter: the body could not be parsed; failed: applying it raised"),
    ] = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Cursor = None,
    # Bodies run up to 1 MiB each: a smaller page than other lists.
    limit: Annotated[int, Query(ge=1, le=100, description="page size, at most 100")] = 50,
) -> Page[DeadLetterOut]:
    """Oldest first. Once the cause is fixed, `aftermath replay-dead-letters` parses them again."""
    with context.read() as session:
        rows, next_cursor = dead_letters.list_page(
            session,
            status=DeliveryStatus(status) if status else None,
            source=source,
            after=after_id(cursor),
            limit=limit,
        )
        return Page(items=[DeadLetterOut.model_validate(row.model_dump()) for row in rows], next_cursor=next_cursor)
