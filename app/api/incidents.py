"""Incident routes: list, read with timeline, open a postmortem by hand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app import incidents, postmortems
from app.api import present
from app.api.deps import ContextDep, Reader, Writer
from app.api.params import MAX_ID, Cursor, Instant, Limit, after_id
from app.api.schemas import IncidentOut, Page, PostmortemOut, PostmortemPatch
from app.db import utcnow
from app.vocabulary import IncidentStatus

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", response_model=Page[IncidentOut])
def list_incidents(
    context: ContextDep,
    _: Reader,
    status: IncidentStatus | None = None,
    service: str | None = None,
    since: Instant | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[IncidentOut]:
    with context.read() as session:
        rows, next_cursor = incidents.list_page(
            session, status=status, service=service, since=since, after=after_id(cursor), limit=limit
        )
        return Page(items=present.incident_bodies(session, rows), next_cursor=next_cursor)


@router.get("/{incident_id}", response_model=IncidentOut, responses={404: {"description": "unknown id"}})
def get_incident(context: ContextDep, _: Reader, incident_id: IncidentId) -> IncidentOut:
    with context.read() as session:
        return present.incident_bodies(session, [incidents.get(session, incident_id)])[0]


@router.post(
    "/{incident_id}/postmortem",
    response_model=PostmortemOut,
    status_code=201,
    responses={
        200: {"description": "the incident already had one (the body is applied to it as a PATCH would)"},
        404: {"description": "unknown id"},
        409: {"description": "as for PATCH /postmortems/{id}"},
    },
)
def open_postmortem(
    context: ContextDep,
    who: Writer,
    response: Response,
    incident_id: IncidentId,
    body: PostmortemPatch | None = None,
) -> PostmortemOut:
    """Open the incident's postmortem by hand, with the same (optional) body as PATCH /postmortems/{id}."""
    fields = body.model_dump(exclude_unset=True, exclude={"version"}) if body else {}
    with context.write() as session:
        incident = incidents.get(session, incident_id)
        postmortem, created = postmortems.open_by_hand(
            session,
            incident,
            fields,
            author=who.name,
            review_due_days=context.mappings.triggers.review_due_days,
            expected_version=body.version if body else None,
        )
        response.status_code = 201 if created else 200
        return present.postmortem_bodies(session, [postmortem], utcnow().date())[0]
