"""Postmortem routes: list, read, versioned update, revisions, and the findings and actions recorded under one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from app import actions, findings, postmortems, review
from app.api import present
from app.api.deps import ContextDep, Reader, Writer
from app.api.params import MAX_ID, Cursor, Limit, after_id
from app.api.schemas import (
    ActionIn,
    ActionOut,
    ConflictOut,
    FindingIn,
    FindingOut,
    Page,
    PostmortemOut,
    PostmortemPatch,
    RevisionOut,
)
from app.db import utcnow
from app.vocabulary import PostmortemStatus

router = APIRouter(prefix="/api/v1/postmortems", tags=["postmortems"])
PostmortemId = Annotated[int, Path(ge=1, le=MAX_ID)]
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"description": "unknown id"}}


@router.get("", response_model=Page[PostmortemOut])
def list_postmortems(
    context: ContextDep,
    _: Reader,
    status: PostmortemStatus | None = None,
    overdue: bool | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page[PostmortemOut]:
    today = utcnow().date()
    with context.read() as session:
        rows, next_cursor = postmortems.list_page(
            session, status=status, overdue=overdue, today=today, after=after_id(cursor), limit=limit
        )
        return Page(items=present.postmortem_bodies(session, rows, today), next_cursor=next_cursor)


@router.get("/{postmortem_id}", response_model=PostmortemOut, responses=NOT_FOUND)
def get_postmortem(context: ContextDep, _: Reader, postmortem_id: PostmortemId) -> PostmortemOut:
    with context.read() as session:
        return present.postmortem_bodies(session, [postmortems.get(session, postmortem_id)], utcnow().date())[0]


@router.patch(
    "/{postmortem_id}",
    response_model=PostmortemOut,
    responses={
        **NOT_FOUND,
        409: {
            "model": ConflictOut,
            "description": "version moved on, a status move that is not allowed, or a move to published while the "
            "minimum viable report lacks something (`missing` lists what)",
        },
    },
)
def update_postmortem(
    body: PostmortemPatch, context: ContextDep, who: Writer, postmortem_id: PostmortemId
) -> PostmortemOut:
    fields = body.model_dump(exclude_unset=True, exclude={"version"})
    with context.write() as session:
        postmortem = postmortems.get(session, postmortem_id)
        review.update(session, postmortem, fields, author=who.name, expected_version=body.version)
        return present.postmortem_bodies(session, [postmortem], utcnow().date())[0]


@router.get("/{postmortem_id}/revisions", response_model=Page[RevisionOut], responses=NOT_FOUND)
def list_revisions(
    context: ContextDep, _: Reader, postmortem_id: PostmortemId, cursor: Cursor = None, limit: Limit = 100
) -> Page[RevisionOut]:
    with context.read() as session:
        postmortems.get(session, postmortem_id)
        rows, next_cursor = postmortems.revisions(session, postmortem_id, after=after_id(cursor), limit=limit)
        return Page(items=[RevisionOut.model_validate(r.model_dump()) for r in rows], next_cursor=next_cursor)


@router.post("/{postmortem_id}/findings", response_model=FindingOut, status_code=201, responses=NOT_FOUND)
def add_finding(body: FindingIn, context: ContextDep, who: Writer, postmortem_id: PostmortemId) -> FindingOut:
    with context.write() as session:
        postmortem = postmortems.get(session, postmortem_id)
        finding = findings.add(session, postmortem, body.model_dump(), author=who.name)
        return FindingOut.model_validate(finding.model_dump())


@router.post(
    "/{postmortem_id}/actions",
    response_model=ActionOut,
    status_code=201,
    responses={**NOT_FOUND, 422: {"description": "no finding, or a finding of another postmortem"}},
)
def add_action(body: ActionIn, context: ContextDep, who: Writer, postmortem_id: PostmortemId) -> ActionOut:
    fields = body.model_dump(exclude={"finding_ids", "tracker"})
    with context.write() as session:
        postmortem = postmortems.get(session, postmortem_id)
        action = actions.add(
            session, context.mappings, postmortem, fields, body.finding_ids, body.tracker, author=who.name
        )
        return present.action_bodies(session, [action], utcnow().date())[0]
