"""The knowledge base: full-text search, and the earlier postmortems like an incident or a postmortem."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from app import incidents, postmortems, search, similar
from app.api import present
from app.api.deps import ContextDep, Reader
from app.api.params import MAX_ID, Cursor, Limit, after_id
from app.api.schemas import Page, SearchHitOut, SimilarOut
from app.db import utcnow

router = APIRouter(prefix="/api/v1", tags=["knowledge base"])
SearchType = Literal["postmortem", "finding", "action", "incident"]
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
SimilarLimit = Annotated[int, Query(ge=1, le=50, description="how many, at most 50")]
SIMILAR_RESPONSES: dict[int | str, dict[str, object]] = {404: {"description": "unknown id"}}


@router.get("/search", response_model=Page[SearchHitOut], responses={422: {"description": "nothing to search for"}})
def search_all(
    context: ContextDep,
    _: Reader,
    q: Annotated[
        str,
        Query(
            max_length=search.MAX_QUERY,
            description='words (each also a prefix), "a phrase", OR between alternatives, -word to leave out',
        ),
    ],
    type: Annotated[SearchType | None, Query(description="only this kind of document")] = None,
    cursor: Cursor = None,
    limit: Limit = 20,
) -> Page[SearchHitOut]:
    """Postmortems, findings, actions and incidents matching `q`, best first, each with a highlighted snippet
    (HTML: the text escaped, the matches in `<mark>`). Pages end after the best 1,000 matches."""
    offset = after_id(cursor) or 0
    with context.read() as session:
        hits, following = search.search(session, q, type_=type, offset=offset, limit=limit)
    items = [SearchHitOut.model_validate(hit, from_attributes=True) for hit in hits]
    return Page(items=items, next_cursor=None if following is None else str(following))


@router.get("/postmortems/{postmortem_id}/similar", response_model=Page[SimilarOut], responses=SIMILAR_RESPONSES)
def similar_to_postmortem(
    context: ContextDep, _: Reader, postmortem_id: Id, limit: SimilarLimit = 10
) -> Page[SimilarOut]:
    """Earlier postmortems like this one, best first: same fingerprint, then same service and finding category,
    then similar text; each with what was tried (its findings, its actions with their status and verification)."""
    with context.read() as session:
        subject = similar.of_postmortem(session, postmortems.get(session, postmortem_id))
        found = similar.rank(session, subject, limit)
        return Page(items=present.similar_bodies(session, found, utcnow().date()), next_cursor=None)


@router.get("/incidents/{incident_id}/similar", response_model=Page[SimilarOut], responses=SIMILAR_RESPONSES)
def similar_to_incident(context: ContextDep, _: Reader, incident_id: Id, limit: SimilarLimit = 10) -> Page[SimilarOut]:
    """Earlier postmortems like this incident: its postmortem's, if it has one; else by its fingerprint, service
    and title."""
    with context.read() as session:
        subject = similar.of_incident(session, incidents.get(session, incident_id))
        found = similar.rank(session, subject, limit)
        return Page(items=present.similar_bodies(session, found, utcnow().date()), next_cursor=None)
