"""Finding and action routes outside a postmortem: update a finding; list, read and update actions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from app import actions, exports, findings, overview, verification
from app.api import present
from app.api.deps import ContextDep, Reader, Writer
from app.api.params import MAX_ID, Cursor, Limit, after_id
from app.api.schemas import (
    ActionDetail,
    ActionOut,
    ActionPatch,
    ActionQuery,
    FindingOut,
    FindingPatch,
    Page,
    RefileIn,
    VerificationIn,
)
from app.context import Context
from app.db import utcnow

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


def action_filter(query: Annotated[ActionQuery, Query()]) -> actions.ActionFilter:
    """The API list's filters (its CSV export's too); the /actions page reads the same model (`page_filter`)."""
    return query.to_filter()


def page_filter(request: Request) -> actions.ActionFilter:
    """The /actions page's filters: ActionQuery's, from a query string an HTML form wrote, where a field left at
    "any" or empty arrives as `name=` (no filter, not a malformed value)."""
    data: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        if value == "" or name not in ActionQuery.model_fields:
            continue
        if name == "status":
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    try:
        return ActionQuery.model_validate(data).to_filter()
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
        ) from None


ActionFilterDep = Annotated[actions.ActionFilter, Depends(action_filter)]
CSV_BATCH = 1000


@router.get(
    "/actions",
    response_model=Page[ActionOut],
    responses={200: {"content": {"text/csv": {}}, "description": "JSON, or with format=csv or Accept: text/csv, CSV"}},
)
def list_actions(
    request: Request,
    context: ContextDep,
    _: Reader,
    where: ActionFilterDep,
    cursor: Cursor = None,
    limit: Limit = 100,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(description="csv: every matching action as CSV (cursor and limit do not apply); also Accept: text/csv"),
    ] = None,
) -> Page[ActionOut] | StreamingResponse:
    today = utcnow().date()
    if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
        first = _csv_batch(context, where, today, None)
        return StreamingResponse(
            exports.lines(_csv_rows(context, where, today, first)),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="actions.csv"'},
        )
    with context.read() as session:
        rows, next_cursor = actions.list_page(session, where, today=today, after=after_id(cursor), limit=limit)
        return Page(items=present.action_bodies(session, rows, today), next_cursor=next_cursor)


def _csv_batch(
    context: Context, where: actions.ActionFilter, today: date, after: int | None
) -> tuple[list[list[str]], int | None]:
    """One batch of CSV rows in id order, read in a transaction of its own, and the id to go on after (None: done)."""
    with context.read() as session:
        rows, cursor = actions.list_page(session, where, today=today, after=after, limit=CSV_BATCH)
        keys = {p: label.key for p, label in overview.labels(session, [a.postmortem_id for a in rows]).items()}
        links = actions.finding_ids_of(session, [a.id for a in rows if a.id is not None])
        batch = [exports.action_row(a, keys.get(a.postmortem_id), links[a.id or 0], today) for a in rows]
    return batch, None if cursor is None else int(cursor)


def _csv_rows(
    context: Context, where: actions.ActionFilter, today: date, first: tuple[list[list[str]], int | None]
) -> Iterator[list[str]]:
    """Every matching action: the first batch (read before the answer started, so that a query the database refuses
    is a 4xx, not a broken download), then the rest a batch per transaction, so no long one holds the database."""
    batch, after = first
    yield from batch
    while after is not None:
        batch, after = _csv_batch(context, where, today, after)
        yield from batch


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
