"""Comments on tracker issues: overdue reminders and "this failure recurred" notes, sent from durable jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from app import jobs, ledger
from app.actions import Action
from app.context import Context
from app.incidents import Incident
from app.jobs import Done, Job, JobKind, Outcome
from app.postmortems import Postmortem
from app.vocabulary import CLOSED, ActionStatus, LedgerKind, LedgerSource, VerificationState
from connectors.markup import Document, Link, Strong, paragraph
from connectors.tracker import PermanentError


def queue_reminders(session: Session, interval: float, now: datetime) -> int:
    """Queue one reminder per overdue, filed, unfinished action not reminded within `interval` seconds.

    Stamping `last_reminded_at` in the same transaction as the job is what keeps restarts and several
    workers from reminding twice.
    """
    if interval <= 0:
        return 0
    query = select(Action).where(
        Action.due_date < now.date(),  # type: ignore[operator]
        Action.status.not_in(CLOSED),  # type: ignore[attr-defined]
        Action.tracker_key.is_not(None),  # type: ignore[union-attr]
        (Action.last_reminded_at.is_(None)) | (Action.last_reminded_at <= now - timedelta(seconds=interval)),  # type: ignore[union-attr,operator]
    )
    count = 0
    for action in session.exec(query).all():
        action.last_reminded_at = now
        session.add(action)
        jobs.enqueue(
            session,
            JobKind.COMMENT,
            action_id=action.id,
            payload={"reason": "reminder"},
            dedup_key=f"reminder:{action.id}:{now.isoformat()}",
            sort_date=action.due_date,
        )
        count += 1
    return count


def comment_text(session: Session, public_url: str, action: Action, payload: dict[str, object]) -> Document:
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    anchor = f"{public_url}/postmortems/{postmortem.id}#action-{action.id}"
    if payload.get("reason") == "recurred":
        incident = session.get(Incident, int(str(payload["incident_id"])))
        assert incident is not None
        link = incident.url or f"{public_url}/api/v1/incidents/{incident.id}"
        when = incident.triggered_at.isoformat() if incident.triggered_at else "just now"
        if action.status == ActionStatus.DONE:
            state = f"was done, but the failure came back before its fix was verified as held ({action.success_metric})"
        else:
            state = f"is still {action.status}"
        return Document.of(
            paragraph(Strong("This failure recurred:"), " ", Link(incident.title, link), f", triggered {when}."),
            paragraph(f"This action from {postmortem.key} {state}: ", Link(anchor, anchor)),
        )
    if payload.get("reason") == "verification_due":
        metric = action.success_metric or "no success metric was given"
        return Document.of(
            paragraph(
                Strong("Verification due:"),
                f" this action from {postmortem.key} was done; did the fix hold? Its success metric: {metric}. "
                f"Owner ({action.owner or 'unassigned'}), please record the outcome (held or failed) at ",
                Link(anchor, anchor),
            )
        )
    return Document.of(
        paragraph(
            Strong("Reminder:"),
            f" this action from {postmortem.key} was due {action.due_date} and is still {action.status} "
            f"(owner: {action.owner or 'unassigned'}). ",
            Link(anchor, anchor),
        )
    )


@jobs.handler(JobKind.COMMENT)
def post_comment(context: Context, job: Job) -> Outcome:
    assert job.action_id is not None
    with context.read() as session:
        action = session.get(Action, job.action_id)
        assert action is not None
        if job.payload.get("reason") == "verification_due" and action.verification_state != VerificationState.PENDING:
            return Done()  # answered, reopened or recurred since the sweep asked: nothing to ask any more
        text = comment_text(session, context.settings.public_url, action, job.payload)
    tracker = context.tracker(action.tracker_kind) if action.tracker_kind else None
    if tracker is None or not action.tracker_key:
        raise PermanentError(f"{action.tracker_kind} is not configured or the action is not filed")
    tracker.add_comment(action.tracker_key, text)
    return Done(_record_reminded if job.payload.get("reason") == "reminder" else None)


def _record_reminded(session: Session, job: Job) -> None:
    action = session.get(Action, job.action_id)
    assert action is not None
    ledger.append(
        session,
        kind=LedgerKind.REMINDED,
        source=LedgerSource.SYSTEM,
        action_id=action.id,
        postmortem_id=action.postmortem_id,
        details={"key": action.tracker_key},
    )
