"""Filing flow: turn an action into exactly one tracker issue, even across timeouts, 5xx and crashes; and keep that
issue following the action's later edits. Both are job handlers (see app/jobs.py)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from sqlmodel import Session, select

from app import jobs, ledger
from app.actions import Action, finding_ids_of, queue_issue_update
from app.context import Context
from app.db import utcnow
from app.findings import Finding
from app.jobs import Done, Job, JobKind, Later, Outcome
from app.mappings import Mappings
from app.postmortems import Postmortem
from app.vocabulary import ActionStatus, LedgerKind, LedgerSource
from connectors.targets import Target
from connectors.tracker import IssueDraft, IssueRef, PermanentError, Tracker, TrackerError, Unreachable

log = logging.getLogger(__name__)

# Which parts of the issue show which action field (build_draft's body repeats owner, due date, priority and the
# success metric; the findings are in the body and the backlink). The job pushes only these, so that an edit of the
# title does not undo, say, a priority someone changed in the tracker since.
PARTS_SHOWING: dict[str, frozenset[str]] = {
    "title": frozenset({"title"}),
    "description": frozenset({"body"}),
    "owner": frozenset({"body", "assignee"}),
    "due_date": frozenset({"body", "due_date"}),
    "priority": frozenset({"body", "priority"}),
    "success_metric": frozenset({"body"}),
    "finding_ids": frozenset({"body", "backlink"}),
}


def idempotency_key(action_id: int) -> str:
    return f"aftermath-action-{action_id}"


def finding_url(public_url: str, postmortem_id: int, finding_id: int) -> str:
    return f"{public_url}/postmortems/{postmortem_id}#finding-{finding_id}"


def _label(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip())[:255]


def build_draft(
    mappings: Mappings, public_url: str, action: Action, target: Target, postmortem: Postmortem, found: list[Finding]
) -> IssueDraft:
    """The issue as the tracker will show it: what to do, why (the finding), and the way back to the postmortem."""
    assert action.id is not None and postmortem.id is not None
    page = f"{public_url}/postmortems/{postmortem.id}"
    lines = [action.description or "", "", f"**Postmortem:** [{postmortem.key} {postmortem.title}]({page})"]
    for finding in found:
        url = finding_url(public_url, postmortem.id, finding.id or 0)
        lines.append(f"**Finding ({finding.kind.replace('_', ' ')}):** {finding.statement} — [{url}]({url})")
    lines += [
        f"**Owner:** {action.owner or 'unassigned'}",
        f"**Due:** {action.due_date.isoformat() if action.due_date else 'no due date'}",
        f"**Priority:** {action.priority}",
        f"**Success metric:** {action.success_metric or 'not set'}",
        f"**Action:** {page}#action-{action.id}",
    ]
    fields = mappings.issue_fields(target, action.owner, action.priority)
    labels = [*fields.labels, _label(f"pm-{postmortem.key}".lower())]
    first = found[0] if found else None
    return IssueDraft(
        idempotency_key=idempotency_key(action.id),
        title=f"[{postmortem.key}] {action.title}",
        body_markdown="\n".join(lines).strip(),
        labels=tuple(_label(label) for label in labels),
        assignee=fields.assignee,
        due_date=action.due_date,
        priority=fields.priority,
        backlink_url=finding_url(public_url, postmortem.id, first.id or 0) if first else page,
        backlink_title=f"{postmortem.key}: {first.statement[:200] if first else postmortem.title}",
        extra_fields=fields.extra_fields,
    )


def _load(session: Session, action_id: int) -> tuple[Action, Postmortem, list[Finding]]:
    action = session.get(Action, action_id)
    assert action is not None and action.id is not None
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    ids = finding_ids_of(session, [action.id])[action.id]
    found = [f for f in (session.get(Finding, fid) for fid in ids) if f is not None]
    return action, postmortem, found


def _tracker_and_draft(
    context: Context, action: Action, postmortem: Postmortem, found: list[Finding]
) -> tuple[Tracker, Target, IssueDraft]:
    """The action's tracker client, its target, and the issue as it should read now."""
    target = action.target
    if target is None:
        raise PermanentError("no tracker target: the action names none and no mapping in trackers.yaml matches")
    tracker = context.tracker(target.kind)
    if tracker is None:
        raise PermanentError(f"{target.kind} is not configured: set its AFTERMATH_* connection settings")
    draft = build_draft(context.mappings, context.settings.public_url, action, target, postmortem, found)
    return tracker, target, draft


def _show_error(session: Session, job: Job, error: TrackerError) -> Action | None:
    action = session.get(Action, job.action_id)
    if action is not None:
        action.last_error, action.updated_at = error.message, utcnow()
        session.add(action)
    return action


def _filing_failed(session: Session, job: Job, error: TrackerError, final: bool) -> None:
    action = _show_error(session, job, error)
    if action is None:
        return
    if final:
        ledger.append(
            session,
            kind=LedgerKind.FILING_FAILED,
            source=LedgerSource.SYSTEM,
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            details={"error": error.message},
        )
    elif isinstance(error, Unreachable) and action.tracker_kind:
        # The whole tracker is down, not this one request: every job waiting on it waits until the same moment. Then
        # one job at a time probes it (not each on its own clock), and once it is back they are all ready together
        # and run in due-date order.
        same_tracker = select(Action.id).where(Action.tracker_kind == action.tracker_kind)
        if held := jobs.postpone(session, same_tracker, job.run_after):
            log.info("%s unreachable: %d more job(s) wait until %s", action.tracker_kind, held, job.run_after)


@jobs.handler(JobKind.FILE_ACTION, on_error=_filing_failed)
def file_action(context: Context, job: Job) -> Outcome:
    """Look for the issue by its idempotency key before creating it, so no failure mode can file it twice."""
    assert job.action_id is not None
    with context.read() as session:
        action, postmortem, found = _load(session, job.action_id)
    if action.tracker_key:
        return Done()
    tracker, target, draft = _tracker_and_draft(context, action, postmortem, found)
    log.info("filing action %s in %s (attempt %d)", action.id, target.name, job.attempts)
    ref = None
    if job.attempts > 1:
        # No attempt can have created the issue before the job existed (a minute's slack for clock skew).
        ref = tracker.find_issue(target, draft.idempotency_key, job.created_at - timedelta(minutes=1))
        if ref is None and (wait := _lookup_may_lag(job, tracker.lookup_settle)) is not None:
            return Later(wait, "an earlier attempt may have filed the issue; waiting for the lookup")
    # Found, it was filed by an attempt whose answer was lost: that attempt may have ended before the backlink.
    repair = ref is not None
    if ref is None:
        ref = tracker.create_issue(target, draft)
        repair = not ref.backlinked
    found_ref = ref
    return Done(lambda session, _job: _record_filed(session, job.action_id or 0, found_ref, repair_backlink=repair))


def issue_parts(fields: list[str]) -> frozenset[str] | None:
    """The issue parts to rewrite for these changed action fields; None (all of them) for none or an unknown one."""
    if not fields or any(name not in PARTS_SHOWING for name in fields):
        return None
    return frozenset().union(*(PARTS_SHOWING[name] for name in fields))


def _update_failed(session: Session, job: Job, error: TrackerError, final: bool) -> None:
    if final:
        _show_error(session, job, error)


@jobs.handler(JobKind.UPDATE_ISSUE, on_error=_update_failed)
def update_issue(context: Context, job: Job) -> Outcome:
    """Rewrite the filed issue from the action as it is *now*, so one job covers every edit queued before it ran.

    The job's payload names the action fields that changed (none: all). A transient failure is retried with backoff
    (an update is idempotent); a refusal is shown as the action's last error and ends the job: retrying cannot fix
    it, and the next edit queues a full update.
    """
    assert job.action_id is not None
    with context.read() as session:
        action, postmortem, found = _load(session, job.action_id)
    parts = issue_parts([str(name) for name in job.payload.get("fields") or []])
    if action.tracker_key:  # always set when queued; nothing to rewrite otherwise
        tracker, target, draft = _tracker_and_draft(context, action, postmortem, found)
        tracker.update_issue(target, action.tracker_key, draft, parts)
    return Done(lambda session, _job: _record_updated(session, job.action_id or 0, full=parts is None))


def _record_updated(session: Session, action_id: int, *, full: bool) -> None:
    # Only a full rewrite proves the issue matches the action again; for a filed action, last_error can only have come
    # from an earlier update (filing clears it).
    action = session.get(Action, action_id)
    if action is not None and full and action.last_error:
        action.last_error, action.updated_at = None, utcnow()
        session.add(action)


def _record_filed(session: Session, action_id: int, ref: IssueRef, *, repair_backlink: bool) -> None:
    action = session.get(Action, action_id)
    assert action is not None
    action.tracker_key, action.tracker_url, action.filed_at = ref.key, ref.url, utcnow()
    action.status, action.tracker_status, action.last_error = ActionStatus.OPEN, None, None
    action.updated_at = utcnow()
    session.add(action)
    log.info("action %s filed as %s (%s)", action.id, ref.key, ref.url)
    ledger.append(
        session,
        kind=LedgerKind.FILED,
        source=LedgerSource.SYSTEM,
        action_id=action.id,
        postmortem_id=action.postmortem_id,
        from_status=ActionStatus.UNFILED,
        to_status=ActionStatus.OPEN,
        details={"key": ref.key, "url": ref.url},
    )
    if repair_backlink:
        # A durable update job (retried like any) puts the backlink on; the finding is what the backlink shows.
        queue_issue_update(session, action, ["finding_ids"])


def _lookup_may_lag(job: Job, settle: float) -> float | None:
    """Seconds until "not found" can no longer be the tracker's search lagging an earlier create of unknown outcome;
    None when it already cannot."""
    since = jobs.outcome_unknown_since(job)
    if since is None:
        return None
    left = (since + timedelta(seconds=settle) - utcnow()).total_seconds()
    return max(1.0, left) if left > 0 else None
