"""Finding and action routes outside a postmortem: update a finding; list, read and update actions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app import actions, findings, verification
from app.api import present
from app.api.deps import ContextDep, Reader, Writer
from app.api.params import MAX_ID, Cursor, Limit, after_id
from app.api.schemas import (
    ActionDetail,
    ActionOut,
    ActionPatch,
    FindingOut,
    FindingPatch,
    Page,
    RefileIn,
    VerificationIn,
)
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
        changed = findings.update(session, finding, body.model_dump(exclude_unset=True), author=who.name)
        if changed & findings.SHOWN_IN_ISSUES:
            actions.follow_finding(session, finding_id)
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
    escalated: Annotated[
        bool | None, Query(description="true: actions whose escalation reached level 1 or above (past the owner)")
    ] = None,
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
            escalated=escalated,
            today=today,
            after=after_id(cursor),
            limit=limit,
        )
        return Page(items=present.action_bodies(session, rows, today), next_cursor=next_cursor)


@router.get("/actions/{action_id}", response_model=ActionDetail, responses=NOT_FOUND)
def get_action(context: ContextDep, _: Reader, action_id: Id) -> ActionDetail:
    with context.read() as session:
        return present.action_detail(session, actions.get(session, action_id), utcnow().date())


@router.patch(
    "/actions/{action_id}",
    response_model=ActionDetail,
    responses={**NOT_FOUND, 409: {"description": "a new target or a cancel for an action already filed"}},
)
def update_action(body: ActionPatch, context: ContextDep, who: Writer, action_id: Id) -> ActionDetail:
    fields = body.model_dump(exclude_unset=True, exclude={"finding_ids", "tracker", "status", "wont_do_reason"})
    with context.write() as session:
        action = actions.get(session, action_id)
        actions.update(session, action, fields, body.finding_ids, author=who.name)
        if body.tracker is not None:
            actions.retarget(session, action, body.tracker, author=who.name)
        if body.status is not None and body.wont_do_reason:
            actions.cancel(session, action, body.wont_do_reason, author=who.name)
        elif "wont_do_reason" in body.model_fields_set:
            actions.explain_wont_do(session, action, body.wont_do_reason, author=who.name)
        return present.action_detail(session, action, utcnow().date())


@router.post(
    "/actions/{action_id}/refile",
    response_model=ActionDetail,
    responses={**NOT_FOUND, 409: {"description": "the action is filed already, or cancelled"}},
)
def refile_action(context: ContextDep, who: Writer, action_id: Id, body: RefileIn | None = None) -> ActionDetail:
    """File again an action whose filing failed, optionally to another target (`tracker`)."""
    with context.write() as session:
        action = actions.get(session, action_id)
        actions.refile(session, action, body.tracker if body else None, author=who.name)
        return present.action_detail(session, action, utcnow().date())


@router.post(
    "/actions/{action_id}/verification",
    response_model=ActionDetail,
    responses={**NOT_FOUND, 409: {"description": "the action is not done: there is no fix to verify yet"}},
)
def verify_action(body: VerificationIn, context: ContextDep, who: Writer, action_id: Id) -> ActionDetail:
    """Record whether a done action's fix held against its success metric (ledger `verified`)."""
    now = utcnow()
    with context.write() as session:
        action = actions.get(session, action_id)
        verification.record(session, action, body.result, body.note, author=who.name, now=now)
        return present.action_detail(session, action, now.date())
