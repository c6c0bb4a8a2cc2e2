"""Turn domain rows into API bodies, loading related rows in batches (one query per relation, not per row)."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session

from app import actions, findings, incidents, ledger, postmortems, recurrence, similar, verification
from app.actions import Action
from app.api.schemas import (
    ActionDetail,
    ActionOut,
    FindingOut,
    IncidentOut,
    LedgerOut,
    PostmortemOut,
    RecurrenceOut,
    SimilarOut,
    TimelineOut,
)
from app.incidents import Incident
from app.postmortems import Postmortem


def incident_bodies(session: Session, rows: list[Incident]) -> list[IncidentOut]:
    lines = incidents.timelines(session, [i.id for i in rows if i.id is not None])
    return [
        IncidentOut.model_validate(
            {
                **row.model_dump(),
                "timeline": [
                    TimelineOut.model_validate({**e.model_dump(), "tags": e.snapshot.get("tags")})
                    for e in lines[row.id or 0]
                ],
            }
        )
        for row in rows
    ]


def action_bodies(session: Session, rows: list[Action], today: date) -> list[ActionOut]:
    links = actions.finding_ids_of(session, [a.id for a in rows if a.id is not None])
    return [
        ActionOut.model_validate(
            {
                **row.model_dump(),
                "tracker": row.target,
                "finding_ids": links[row.id or 0],
                "overdue": actions.is_overdue(row, today),
                "verification": verification.view(row),
            }
        )
        for row in rows
    ]


def action_detail(session: Session, row: Action, today: date) -> ActionDetail:
    assert row.id is not None
    body = action_bodies(session, [row], today)[0]
    entries = [LedgerOut.model_validate(e.model_dump()) for e in ledger.of_action(session, row.id)]
    return ActionDetail.model_validate({**body.model_dump(), "ledger": entries})


def _action_bodies_by_postmortem(session: Session, ids: list[int], today: date) -> dict[int, list[ActionOut]]:
    """The action bodies of these postmortems, by postmortem, built in one pass over all of them."""
    action_rows = actions.of_postmortems(session, ids)
    by_postmortem: dict[int, list[ActionOut]] = {i: [] for i in ids}
    for body in action_bodies(session, [a for group in action_rows.values() for a in group], today):
        by_postmortem[body.postmortem_id].append(body)
    return by_postmortem


def postmortem_bodies(session: Session, rows: list[Postmortem], today: date) -> list[PostmortemOut]:
    ids = [p.id for p in rows if p.id is not None]
    incident_ids = postmortems.incident_ids_of(session, ids)
    finding_rows = findings.of_postmortems(session, ids)
    by_postmortem = _action_bodies_by_postmortem(session, ids, today)
    repeats = recurrence.recurrences_of(session, ids)
    return [
        PostmortemOut.model_validate(
            {
                **row.model_dump(),
                "incident_ids": incident_ids[row.id or 0],
                "findings": [FindingOut.model_validate(f.model_dump()) for f in finding_rows[row.id or 0]],
                "actions": by_postmortem[row.id or 0],
                "recurrences": [
                    RecurrenceOut(
                        incident_id=i.id or 0,
                        recurrence_of=i.recurrence_of or 0,
                        triggered_at=i.triggered_at,
                        actions_all_done=i.recurred_after_actions_done,
                    )
                    for i in repeats[row.id or 0]
                ],
                "overdue": postmortems.is_overdue(row, today),
            }
        )
        for row in rows
    ]


def similar_bodies(session: Session, found: list[similar.Similar], today: date) -> list[SimilarOut]:
    ids = [s.postmortem.id for s in found if s.postmortem.id is not None]
    finding_rows = findings.of_postmortems(session, ids)
    by_postmortem = _action_bodies_by_postmortem(session, ids, today)
    return [
        SimilarOut(
            postmortem_id=s.postmortem.id or 0,
            key=s.postmortem.key,
            title=s.postmortem.title,
            status=s.postmortem.status,
            created_at=s.postmortem.created_at,
            reason=s.reason,
            score=s.score,
            findings=[FindingOut.model_validate(f.model_dump()) for f in finding_rows[s.postmortem.id or 0]],
            actions=by_postmortem[s.postmortem.id or 0],
        )
        for s in found
    ]
