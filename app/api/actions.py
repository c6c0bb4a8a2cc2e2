"""Finding and action routes outside a postmortem: update a finding; list, read and update actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app import actions, findings
from app.api import present
from app.api.deps import ContextDep, Reader, Writer
from app.api.params import MAX_ID, Cursor, Limit, after_id
from app.api.schemas import ActionDetail, ActionOut, ActionPatch, FindingOut, FindingPatch, Page
from app.db import utcnow
from app.vocabulary import ActionStatus
from connectors.targets import TrackerKind

router = APIRouter(prefix="/api/v1", tags=["actions"])
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"description": "unknown id"}}


@router.patch("/findings/{finding_id}", response_model=FindingOut, responses=NOT_FOUND)
def update_finding(body: FindingPatch, context: ContextDep, who: Writer, finding_id: Id) -> FindingOut:
    with context.write() as session:
        finding = findings.get(session, finding_id)
        findings.update(session, finding, body.model_dump(exclude_unset=True), author=who.name)
        return FindingOut.model_validate(finding.model_dump())


@router.get("/actions", response_model=Page[ActionOut])
def list_actions(
    context: ContextDep,
    _: Reader,
    status: Annotated[list[ActionStatus] | None, Query(description="repeat for several")] = None,
    owner: str | None = None,
    overdue: bool | None = None,
    postmortem_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    tracker: Annotated[TrackerKind | None, Query(description="the kind of tracker the action is filed in")] = None,
    finding_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[ActionOut]:
    today = utcnow().date()
    with context.read() as session:
        rows, next_cursor = actions.list_page(
            session,
            status=list(status) if status else None,
            owner=owner,
            overdue=overdue,
            postmortem_id=postmortem_id,
            tracker=tracker,
            finding_id=finding_id,
            today=today,
            after=after_id(cursor),
            limit=limit,
        )
        return Page(items=present.action_bodies(session, rows, today), next_cursor=next_cursor)


@router.get("/actions/{action_id}", response_model=ActionDetail, responses=NOT_FOUND)
def get_action(context: ContextDep, _: Reader, action_id: Id) -> ActionDetail:
    with context.read() as session:
        return present.action_detail(session, actions.get(session, action_id), utcnow().date())


@router.patch("/actions/{action_id}", response_model=ActionDetail, responses=NOT_FOUND)
def update_action(body: ActionPatch, context: ContextDep, who: Writer, action_id: Id) -> ActionDetail:
    fields = body.model_dump(exclude_unset=True, exclude={"finding_ids"})
    with context.write() as session:
        action = actions.get(session, action_id)
        actions.update(session, action, fields, body.finding_ids, author=who.name)
        return present.action_detail(session, action, utcnow().date())
