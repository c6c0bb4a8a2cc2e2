"""The escalation ladder: an overdue action climbs the steps of mappings/escalation.yaml (owner, manager, facilitator),
each step one comment on its tracker issue that mentions the person and one `escalated` ledger entry, taken once.

The sweep asks the database for the due steps alone (one query over the open, overdue actions); taking a step stamps
the action's level, writes the ledger entry and queues the comment in one transaction, so that no restart, second
worker or later sweep takes it again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, select

from app import jobs, ledger, participants
from app.actions import Action
from app.context import Context
from app.db import is_postgres
from app.jobs import Done, Job, JobKind, Outcome
from app.mappings import EscalationStep, Mappings
from app.postmortems import Postmortem
from app.vocabulary import CLOSED, ActionStatus, EscalateTo, LedgerKind, LedgerSource
from connectors.markup import Document, Inline, Link, Mention, Strong, paragraph
from connectors.tracker import PermanentError

log = logging.getLogger(__name__)
SWEEP_SECONDS = 60.0  # a step is taken within about a minute of falling due
BATCH = 500  # steps taken per sweep transaction; the rest wait for the next sweep
# Only a filed action has an issue to comment on; an unfiled one is taken up at its current level once filed.
CLIMBING = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)


def sweep(session: Session, mappings: Mappings, now: datetime) -> int:
    """Take every escalation step that has fallen due by `now`; returns how many were taken.

    An action becomes overdue at 00:00 UTC the day after its due date, and a step falls due `after_days` days later.
    An action is lifted to the highest step it has reached, in one step: ten days overdue at its first sweep, it gets
    the facilitator's comment only, not the owner's and the manager's as well.
    """
    ladder = mappings.escalation.ladder
    if not ladder:
        return 0
    # Step k is due once due_date + 1 + after_days(k) <= today, i.e. for due dates on or before its cutoff.
    today = now.astimezone(UTC).date()
    cutoffs = [today - timedelta(days=step.after_days + 1) for step in ladder]
    reached = case(
        *[(Action.due_date <= cutoff, level) for level, cutoff in reversed(list(enumerate(cutoffs)))],  # type: ignore[operator,arg-type]
        else_=-1,
    )
    query = (
        select(Action, reached)
        .where(
            Action.status.in_(CLIMBING),  # type: ignore[attr-defined]
            Action.due_date <= cutoffs[0],  # type: ignore[operator]
            Action.tracker_key.is_not(None),  # type: ignore[union-attr]
            func.coalesce(Action.escalation_level, -1) < reached,
        )
        .order_by(Action.due_date, Action.id)  # type: ignore[arg-type]
        .limit(BATCH)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=Action)
    due = [(action, int(level)) for action, level in session.exec(query).all()]
    if not due:
        return 0
    ids = {action.postmortem_id for action, _ in due}
    reviews = {p.id: p for p in session.exec(select(Postmortem).where(Postmortem.id.in_(ids))).all()}  # type: ignore[union-attr]
    for action, level in due:
        _take(session, mappings, action, reviews[action.postmortem_id], level, now)
    log.info("escalation sweep took %d step(s)", len(due))
    return len(due)


def recipient(
    step: EscalationStep, action: Action, postmortem: Postmortem, mappings: Mappings
) -> tuple[str | None, str]:
    """Who this step tells (an e-mail or a name), and why them; None, and why nobody, when the data names no one."""
    match step.to:
        case EscalateTo.OWNER:
            return (action.owner, "you own this action") if action.owner else (None, "the action has no owner")
        case EscalateTo.MANAGER:
            if not action.owner:
                return None, "the action has no owner, so no manager is known"
            person = mappings.person(action.owner)
            manager = person.manager if person else None
            if manager is None:
                return None, f"people.yaml names no manager for its owner {action.owner}"
            return manager, f"you manage its owner, {mappings.name_of(action.owner)}"
        case EscalateTo.FACILITATOR:
            chair = participants.facilitator(postmortem.participants)
            if chair is None:
                return None, f"{postmortem.key} has no facilitator among its participants"
            return chair.who, f"you facilitated the review of {postmortem.key}"
        case EscalateTo.POSTMORTEM_OWNER:
            if not postmortem.owner:
                return None, f"{postmortem.key} has no owner"
            return postmortem.owner, f"you own {postmortem.key}"
    return str(step.to), "you are on the escalation ladder for overdue actions"


def _take(
    session: Session, mappings: Mappings, action: Action, postmortem: Postmortem, level: int, now: datetime
) -> None:
    assert action.id is not None and action.due_date is not None
    step = mappings.escalation.ladder[level]
    to, why = recipient(step, action, postmortem, mappings)
    days = (now.astimezone(UTC).date() - action.due_date).days
    # An escalation comment is a reminder too: the plain reminder waits a full interval after it.
    action.escalation_level, action.escalated_at, action.last_reminded_at = level, now, now
    session.add(action)
    details: dict[str, Any] = {"level": level, "to": to, "step": str(step.to), "key": action.tracker_key}
    ledger.append(
        session,
        kind=LedgerKind.ESCALATED,
        source=LedgerSource.SYSTEM,
        action_id=action.id,
        postmortem_id=action.postmortem_id,
        details={**details, "days_overdue": days, **({} if to else {"nobody": why})},
        at=now,
    )
    payload = {"level": level, "of": len(mappings.escalation.ladder), "to": to, "why": why, "days_overdue": days}
    jobs.enqueue(session, JobKind.ESCALATE, action_id=action.id, payload=payload, sort_date=action.due_date)


def comment(
    mappings: Mappings, public_url: str, action: Action, postmortem: Postmortem, step: dict[str, Any]
) -> Document:
    """The step's comment: the person mentioned the tracker's way, why them, and how late the action is."""
    assert action.target is not None
    anchor = f"{public_url}/postmortems/{postmortem.id}#action-{action.id}"
    days = int(step.get("days_overdue") or 0)
    late = (
        f"this action from {postmortem.key} was due {action.due_date} and is {days} day{'s' if days != 1 else ''} "
        f"overdue, still {str(action.status).replace('_', ' ')}"
    )
    label = Strong(f"Escalation, level {step.get('level')} of {int(step.get('of') or 1) - 1}:")
    to, why = step.get("to"), str(step.get("why") or "")
    if not to:
        parts: list[Inline] = [label, f" {late}; there is nobody to tell at this step: {why}. "]
    else:
        who = Mention(mappings.handle(action.target, str(to)), mappings.name_of(str(to)))
        ask = "Please see that it gets done, or close it as won't do and say why. "
        parts = [label, " ", who, f", {why}: {late}. {ask}"]
    return Document.of(paragraph(*parts, Link(anchor, anchor)))


@jobs.handler(JobKind.ESCALATE)
def post_escalation(context: Context, job: Job) -> Outcome:
    """Post the step's comment, unless the action was finished in the meantime (the ledger keeps the step)."""
    assert job.action_id is not None
    with context.read() as session:
        action = session.get(Action, job.action_id)
        postmortem = session.get(Postmortem, action.postmortem_id) if action else None
        if action is None or postmortem is None or action.status in CLOSED:
            return Done()
        if action.target is None or not action.tracker_key:
            raise PermanentError("the action has no tracker issue to comment on")
        text = comment(context.mappings, context.settings.public_url, action, postmortem, job.payload)
    tracker = context.tracker(action.target.kind)
    if tracker is None:
        raise PermanentError(f"{action.target.kind} is not configured: set its AFTERMATH_* connection settings")
    tracker.add_comment(action.tracker_key, text)
    return Done()
