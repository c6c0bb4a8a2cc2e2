"""Whether the fix worked: a done action's verification falls due `verify_after_days` later; its owner records whether
the success metric held; a recurrence of the failure before anyone said so marks it `recurred`.

"Done" in a tracker is a closed ticket, not a fix. The verification is what lets the metrics tell the two apart.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from app import jobs, ledger
from app.actions import Action
from app.db import is_postgres, utcnow
from app.errors import Conflict
from app.incidents import Incident
from app.jobs import JobKind
from app.mappings import Mappings
from app.postmortems import Postmortem, record_revision
from app.vocabulary import ActionStatus, LedgerKind, LedgerSource, VerificationState

log = logging.getLogger(__name__)
SWEEP_SECONDS = 300.0  # a verification that falls due is asked for within about five minutes
BATCH = 500  # asked per sweep transaction; the rest wait for the next sweep
RESULTS = (VerificationState.HELD, VerificationState.FAILED)  # what a person can record


def view(action: Action) -> dict[str, Any] | None:
    """The `verification` object of the action's API shape; None until the action is done."""
    if action.verification_state is None:
        return None
    return {
        "state": action.verification_state,
        "due": action.verification_due,
        "note": action.verification_note,
        "verified_at": action.verified_at,
    }


def follow_status(mappings: Mappings, action: Action, old: ActionStatus, new: ActionStatus, at: datetime) -> None:
    """The action's status moved from `old` to `new` (the caller writes the ledger entry for the move).

    Becoming done starts a verification, due `verify_after_days` after the day it was done. Leaving done (reopened,
    or closed as won't do after all) drops a verification nobody recorded: the work is not finished, and the
    outcome recorded before stays in the ledger.
    """
    if new == ActionStatus.DONE and old != ActionStatus.DONE:
        action.verification_state, action.verification_due = VerificationState.PENDING, due_on(at, mappings)
        action.verification_note, action.verification_asked_at, action.verified_at = None, None, None
    elif old == ActionStatus.DONE and new != ActionStatus.DONE:
        action.verification_state, action.verification_due = None, None
        action.verification_note, action.verification_asked_at, action.verified_at = None, None, None


def record(
    session: Session, action: Action, result: VerificationState, note: str | None, *, author: str, now: datetime
) -> Action:
    """Record whether the done action's fix held (ledger `verified`, a postmortem revision). The postmortem may be
    closed by then: a verification is about the action, whose issue outlives the review."""
    assert action.id is not None and result in RESULTS
    if action.status != ActionStatus.DONE:
        raise Conflict(f"action {action.id} is {action.status}, not done: only a done action's fix can be verified")
    before = action.verification_state
    action.verification_state, action.verification_note, action.verified_at = result, note, now
    if action.verification_due is None:  # done before verifications existed: due the day it was verified
        action.verification_due = now.astimezone(UTC).date()
    action.updated_at = now
    session.add(action)
    due = str(action.verification_due)
    ledger.append(
        session,
        kind=LedgerKind.VERIFIED,
        source=LedgerSource.API,
        action_id=action.id,
        postmortem_id=action.postmortem_id,
        details={"result": str(result), "note": note, "from": before, "by": author, "due": due},
        at=now,
    )
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    change = {"id": action.id, "verification": {"from": before, "to": str(result), "note": note}}
    record_revision(session, postmortem, author, {"action_verified": change})
    session.flush()
    return action


def sweep(session: Session, now: datetime) -> int:
    """Queue one comment asking for the outcome on every filed action whose pending verification has fallen due;
    returns how many. Stamping `verification_asked_at` in the comment's transaction is what keeps restarts, later
    sweeps and other workers from asking twice."""
    today = now.astimezone(UTC).date()
    query = (
        select(Action)
        .where(
            Action.verification_state == VerificationState.PENDING,
            Action.verification_due <= today,  # type: ignore[operator]
            Action.verification_asked_at.is_(None),  # type: ignore[union-attr]
            Action.tracker_key.is_not(None),  # type: ignore[union-attr]
        )
        .order_by(Action.verification_due, Action.id)  # type: ignore[arg-type]
        .limit(BATCH)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    due = list(session.exec(query).all())
    for action in due:
        action.verification_asked_at = now
        session.add(action)
        jobs.enqueue(
            session,
            JobKind.COMMENT,
            action_id=action.id,
            payload={"reason": "verification_due", "due": str(action.verification_due)},
            dedup_key=f"verification:{action.id}:{action.verification_due}",
            sort_date=action.verification_due,
        )
    if due:
        log.info("verification sweep asked for %d outcome(s)", len(due))
    return len(due)


def mark_recurred(session: Session, action: Action, incident: Incident) -> bool:
    """The failure the done action was meant to fix came back: unless its fix was verified as held, its verification
    becomes `recurred` (the caller records the recurrence and tells the issue). Returns whether it was marked."""
    if action.status != ActionStatus.DONE or action.verification_state == VerificationState.HELD:
        return False
    action.verification_state, action.updated_at = VerificationState.RECURRED, utcnow()
    if action.verification_due is None:
        action.verification_due = (incident.triggered_at or utcnow()).astimezone(UTC).date()
    session.add(action)
    return True


def due_on(done_at: datetime, mappings: Mappings) -> date:
    """When the verification of an action done at `done_at` falls due."""
    return done_at.astimezone(UTC).date() + timedelta(days=mappings.escalation.verify_after_days)
