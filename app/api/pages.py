"""The human-readable postmortem page that tracker issues link back to (token as bearer or Basic password)."""

from __future__ import annotations

from pathlib import Path as FilePath

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app import actions, findings, incidents, postmortems, recurrence, review, similar
from app.api.deps import ContextDep, Reader
from app.api.params import MAX_ID
from app.db import utcnow

router = APIRouter(tags=["pages"])
templates = Environment(
    loader=FileSystemLoader(FilePath(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
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
        html = templates.get_template("postmortem.html").render(
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
    return HTMLResponse(html)
