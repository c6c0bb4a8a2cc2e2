"""Pages for people (token as bearer or Basic password): the overview `/`, the action list `/actions`, the charts
of `/insights`, and the postmortem page that tracker issues link back to. Server-rendered, no script; one
stylesheet, `/static/aftermath.css`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app import actions, findings, incidents, metrics, overview, postmortems, recurrence, review, similar
from app.api import charts, humane
from app.api.actions import page_filter
from app.api.deps import ContextDep, Reader
from app.api.params import MAX_ID, Blank, Instant
from app.db import utcnow
from app.vocabulary import ActionStatus, PostmortemStatus
from connectors.targets import TrackerKind

router = APIRouter(tags=["pages"])
HERE = FilePath(__file__).resolve().parent.parent
STYLESHEET = HERE / "static" / "aftermath.css"
templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
templates.filters.update(when=humane.when, day=humane.day)
templates.globals.update(
    since=humane.since,
    statuses=[str(s) for s in ActionStatus],
    trackers=[str(t) for t in TrackerKind],
)
HTML: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}}}
PER_PAGE = 50
ActionSort = Literal["id", "due_date", "status", "owner", "priority", "escalation_level", "postmortem", "title"]
assert set(get_args(ActionSort)) == set(actions.SORTABLE), "the page's sort keys are the domain's sortable columns"
# Column headers of the action list: (label, sort key or None when the column is not sortable).
ACTION_COLUMNS = [
    ("action", "title"),
    ("postmortem", "postmortem"),
    ("team", None),
    ("owner", "owner"),
    ("status", "status"),
    ("due", "due_date"),
    ("priority", "priority"),
    ("escalation", "escalation_level"),
    ("tracker issue", None),
]


def _render(name: str, **values: Any) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values))


@router.get("/static/aftermath.css", include_in_schema=False)
def stylesheet() -> FileResponse:
    # Public like any stylesheet: it holds no data, and a browser fetches it before it has asked for credentials.
    return FileResponse(STYLESHEET, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/", response_class=HTMLResponse, responses=HTML)
def overview_page(context: ContextDep, _: Reader) -> HTMLResponse:
    """The Monday overview: late and due-soon actions by team and owner, late reviews, escalations, recurrences."""
    now = utcnow()
    with context.read() as session:
        found = overview.overview(session, now)
        return _render(
            "overview.html", current="Overview", o=found, is_overdue=lambda a: actions.is_overdue(a, found.today)
        )


def _query(pairs: list[tuple[str, str]], **changes: str | int | None) -> str:
    """The query string of `pairs` with `changes` applied (None removes a parameter)."""
    kept = [(k, v) for k, v in pairs if k not in changes]
    kept += [(k, str(v)) for k, v in changes.items() if v is not None]
    return "?" + urlencode(kept) if kept else "?"


@router.get("/actions", response_class=HTMLResponse, responses=HTML)
def actions_page(
    request: Request,
    context: ContextDep,
    _: Reader,
    where: Annotated[actions.ActionFilter, Depends(page_filter)],
    sort: ActionSort = "due_date",
    order: Literal["asc", "desc"] = "asc",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = PER_PAGE,
) -> HTMLResponse:
    """Every action, with the API list's filters, sorted by a column, a page at a time."""
    today = utcnow().date()
    with context.read() as session:
        rows, more = actions.sorted_page(
            session,
            where,
            today=today,
            sort=sort,
            descending=order == "desc",
            offset=(page - 1) * per_page,
            limit=per_page,
        )
        named = overview.labels(session, [a.postmortem_id for a in rows])
        links = actions.finding_ids_of(session, [a.id for a in rows if a.id is not None])
    pairs = [(k, v) for k, v in request.query_params.multi_items() if v != ""]
    filters = [(k, v) for k, v in pairs if k not in ("sort", "order", "page", "per_page")]
    return _render(
        "actions.html",
        current="Actions",
        rows=rows,
        labels=named,
        links=links,
        where=where,
        sort=sort,
        order=order,
        page=page,
        more=more,
        columns=ACTION_COLUMNS,
        sort_url=lambda key: _query(
            pairs, sort=key, order="desc" if key == sort and order == "asc" else "asc", page=None
        ),
        page_url=lambda number: _query(pairs, page=number),
        csv_url="/api/v1/actions" + _query(filters, format="csv"),
        is_overdue=lambda a: actions.is_overdue(a, today),
    )


@router.get("/insights", response_class=HTMLResponse, responses=HTML)
def insights_page(
    context: ContextDep,
    _: Reader,
    service: Annotated[str | None, Query(max_length=255)] = None,
    team: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[
        Instant | None, Blank, Query(description="incidents triggered at or after (a date: 00:00 UTC)")
    ] = None,
    until: Annotated[Instant | None, Blank, Query(description="incidents triggered before")] = None,
) -> HTMLResponse:
    """MTTA/MTTR/MTTD per month, incidents by severity per month, recurrence by category, follow-through per month,
    effectiveness (app.metrics' figures)."""
    now = utcnow()
    if since is None:
        # The last twelve months, this one included: enough for a trend, few enough bars to read.
        year, month = (now.year - 1, now.month + 1) if now.month < 12 else (now.year, 1)
        since = datetime(year, month, 1, tzinfo=UTC)
    if until is not None and until <= since:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until: must be after since")
    today, service, team = now.date(), service or None, team or None  # an empty form field: no filter
    with context.read() as session:
        window = metrics.Window(since=since, until=until, service=service, team=team, today=today)
        months, by_category = metrics.by_month(session, window)
        follow = metrics.follow_through_by_month(session, window)
        effective = metrics.effectiveness(session, window)
    drawn = [
        charts.durations("MTTA", "time from trigger to first acknowledgement", months, "mtta"),
        charts.durations("MTTR", "time from trigger to final resolve", months, "mttr"),
        charts.durations("MTTD", "time from impact start to trigger", months, "mttd"),
        charts.severities(months),
        charts.recurrences(by_category),
        charts.follow_through(follow),
        charts.effectiveness(effective),
    ]
    return _render(
        "insights.html",
        current="Insights",
        charts=drawn,
        service=service or "",
        team=team or "",
        since=since,
        until=until,
        incidents=sum(m.incidents.count for m in months),
    )


@router.get("/postmortems", response_class=HTMLResponse, responses=HTML)
def postmortems_page(
    context: ContextDep,
    _: Reader,
    status: Annotated[PostmortemStatus | None, Blank, Query()] = None,
    overdue: Annotated[bool | None, Blank, Query(description="true: past the review date, unpublished")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Every postmortem, newest first: the way into the postmortem pages from the navigation."""
    today = utcnow().date()
    with context.read() as session:
        rows, more = postmortems.newest_page(
            session, status=status, overdue=overdue, today=today, offset=(page - 1) * PER_PAGE, limit=PER_PAGE
        )
        named = overview.labels(session, [p.id for p in rows if p.id is not None])
    pairs = [
        ("status", str(status)) if status else None,
        ("overdue", str(overdue).lower()) if overdue is not None else None,
    ]
    kept = [pair for pair in pairs if pair]
    return _render(
        "postmortems.html",
        current="Postmortems",
        rows=rows,
        labels=named,
        status=status,
        overdue=overdue,
        page=page,
        more=more,
        page_url=lambda number: _query(kept, page=number),
        is_overdue=lambda p: postmortems.is_overdue(p, today),
        postmortem_statuses=[str(s) for s in PostmortemStatus],
    )


@router.get("/postmortems/{postmortem_id}", response_class=HTMLResponse, responses={404: {"description": "unknown id"}})
def postmortem_page(context: ContextDep, _: Reader, postmortem_id: int = Path(ge=1, le=MAX_ID)) -> HTMLResponse:
    today = utcnow().date()
    with context.read() as session:
        postmortem = postmortems.get(session, postmortem_id)
        covered = postmortems.incidents_of(session, postmortem_id)
        lines = incidents.timelines(session, [i.id for i in covered if i.id is not None])
        action_rows = actions.of_postmortems(session, [postmortem_id])[postmortem_id]
        finding_rows = findings.of_postmortems(session, [postmortem_id])[postmortem_id]
        answers = actions.finding_ids_of(session, [a.id for a in action_rows if a.id is not None])
        return _render(
            "postmortem.html",
            postmortem_nav=postmortem,
            postmortem=postmortem,
            overdue=postmortems.is_overdue(postmortem, today),
            incidents=covered,
            timelines=lines,
            findings=finding_rows,
            recurrences=recurrence.recurrences_of(session, [postmortem_id])[postmortem_id],
            actions=action_rows,
            action_findings=answers,
            completeness=review.assess(postmortem, finding_rows, action_rows, answers),
            is_overdue=lambda a: actions.is_overdue(a, today),
            seen_before=similar.seen_before(session, postmortem),
        )
