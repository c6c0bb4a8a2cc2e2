"""Filing flow: turn an action into exactly one tracker issue, even across timeouts, 5xx and crashes; and keep that
issue following the action's later edits."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from app import jobs, ledger
from app.actions import Action, finding_ids_of, queue_issue_update
from app.context import Context
from app.db import utcnow
from app.findings import Finding
from app.jobs import Job
from app.mappings import Mappings
from app.postmortems import Postmortem
from connectors.tracker import (
    IssueDraft,
    IssueRef,
    OutcomeUnknown,
    PermanentError,
    RetryLater,
    Tracker,
    TrackerError,
    Unreachable,
)

log = logging.getLogger(__name__)

# Which parts of the issue show which action field (build_draft's body repeats owner, due date, priority and the
# success metric; the findings are in the body and the Jira backlink). The job pushes only these, so that an edit
# of the title does not undo, say, a priority someone changed in Jira since.
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
    mappings: Mappings, public_url: str, action: Action, postmortem: Postmortem, found: list[Finding]
) -> IssueDraft:
    """The issue as the tracker will show it: what to do, why (the finding), and the way back to the postmortem."""
    assert action.id is not None and postmortem.id is not None
    target = action.tracker or {}
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
    person = mappings.person(action.owner)
    labels = [*mappings.trackers.labels, _label(f"pm-{postmortem.key}".lower())]
    priority = None
    if target.get("kind") == "jira":
        assignee = person.jira_account_id or person.jira_name if person else None
        priority = mappings.trackers.jira_priority.get(action.priority)
    else:
        assignee = person.github_login if person else None
        if action.priority in mappings.trackers.github_priority_labels:
            labels.append(mappings.trackers.github_priority_labels[action.priority])
    first = found[0] if found else None
    return IssueDraft(
        idempotency_key=idempotency_key(action.id),
        title=f"[{postmortem.key}] {action.title}",
        body_markdown="\n".join(lines).strip(),
        labels=tuple(_label(label) for label in labels),
        assignee=assignee,
        due_date=action.due_date,
        priority=priority,
        backlink_url=finding_url(public_url, postmortem.id, first.id or 0) if first else page,
        backlink_title=f"{postmortem.key}: {first.statement[:200] if first else postmortem.title}",
        extra_fields=dict(mappings.trackers.jira_fields) if target.get("kind") == "jira" else {},
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
) -> tuple[Tracker, dict[str, Any], IssueDraft]:
    """The action's tracker client, its target, and the issue as it should read now."""
    target = action.tracker or {}
    tracker = context.tracker(str(target.get("kind")))
    if tracker is None:
        raise PermanentError(f"{target.get('kind')} is not configured: set its AFTERMATH_* connection settings")
    return tracker, target, build_draft(context.mappings, context.settings.public_url, action, postmortem, found)


def file_action(context: Context, job: Job, worker_id: str) -> None:
    """Look for the issue by its idempotency key before creating it, so no failure mode can file it twice."""
    assert job.action_id is not None and job.id is not None
    with context.read() as session:
        action, postmortem, found = _load(session, job.action_id)
    if action.tracker_key:
        with context.write() as session:
            if (mine := jobs.still_mine(session, job.id, worker_id)) is not None:
                jobs.finish(session, mine)
        return
    try:
        tracker, target, draft = _tracker_and_draft(context, action, postmortem, found)
        ref = None
        if job.attempts > 1:
            # No attempt can have created the issue before the job existed (a minute's slack for clock skew).
            ref = tracker.find_issue(target, draft.idempotency_key, job.created_at - timedelta(minutes=1))
            if ref is None and _lookup_may_lag(job, tracker.lookup_settle):
                _wait_for_lookup(context, job, worker_id, tracker.lookup_settle)
                return
        # Found, it was filed by an attempt whose answer was lost: that attempt may have ended before the backlink.
        repair = ref is not None
        if ref is None:
            ref = tracker.create_issue(target, draft)
            repair = not ref.backlinked
    except RetryLater as exc:
        delay = jobs.backoff(job.attempts, exc.retry_after)
        _record_failure(context, job, worker_id, exc, retry_in=delay)
        return
    except TrackerError as exc:
        _record_failure(context, job, worker_id, exc, retry_in=None)
        return
    _record_filed(context, job, worker_id, ref, repair_backlink=repair)


def issue_parts(fields: list[str]) -> frozenset[str] | None:
    """The issue parts to rewrite for these changed action fields; None (all of them) for none or an unknown one."""
    if not fields or any(name not in PARTS_SHOWING for name in fields):
        return None
    return frozenset().union(*(PARTS_SHOWING[name] for name in fields))


def update_issue(context: Context, job: Job, worker_id: str) -> None:
    """Rewrite the filed issue from the action as it is *now*, so one job covers every edit queued before it ran.

    The job's payload names the action fields that changed (none: all). A transient failure is retried with backoff
    (an update is idempotent); a refusal is shown as the action's last error and ends the job: retrying cannot fix
    it, and the next edit queues a full update.
    """
    assert job.action_id is not None and job.id is not None
    with context.read() as session:
        action, postmortem, found = _load(session, job.action_id)
    parts = issue_parts([str(name) for name in job.payload.get("fields") or []])
    error: TrackerError | None = None
    if action.tracker_key:  # always set when queued; nothing to rewrite otherwise
        try:
            tracker, target, draft = _tracker_and_draft(context, action, postmortem, found)
            tracker.update_issue(target, action.tracker_key, draft, parts)
        except TrackerError as exc:
            error = exc
    with context.write() as session:
        mine = jobs.still_mine(session, job.id, worker_id)
        if mine is None:
            return  # another worker took the job over (lease ran out); it rewrites the issue itself
        current = session.get(Action, job.action_id)
        assert current is not None
        if error is None:
            # Only a full rewrite proves the issue matches the action again; for a filed action, last_error can only
            # have come from an earlier update (filing clears it).
            if parts is None and current.last_error:
                current.last_error, current.updated_at = None, utcnow()
                session.add(current)
            jobs.finish(session, mine)
        elif isinstance(error, RetryLater):
            delay = jobs.backoff(job.attempts, error.retry_after)
            log.info("updating %s: %s; retry in %.0fs", action.tracker_key, error.message, delay)
            jobs.retry(session, mine, error.message, delay)
        else:
            log.warning("updating %s failed for good: %s", action.tracker_key, error.message)
            current.last_error, current.updated_at = error.message, utcnow()
            session.add(current)
            jobs.fail(session, mine, error.message)


def _record_filed(context: Context, job: Job, worker_id: str, ref: IssueRef, *, repair_backlink: bool = False) -> None:
    assert job.id is not None and job.action_id is not None
    with context.write() as session:
        mine = jobs.still_mine(session, job.id, worker_id)
        if mine is None:
            return  # another worker took the job over; it will find this issue by its key
        action = session.get(Action, job.action_id)
        assert action is not None
        action.tracker_key, action.tracker_url, action.filed_at = ref.key, ref.url, utcnow()
        action.status, action.tracker_status, action.last_error = "open", None, None
        action.updated_at = utcnow()
        session.add(action)
        ledger.append(
            session,
            kind="filed",
            source="system",
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            from_status="unfiled",
            to_status="open",
            details={"key": ref.key, "url": ref.url},
        )
        if repair_backlink:
            # A durable update job (retried like any) puts the backlink on; the finding is what the backlink shows.
            queue_issue_update(session, action, ["finding_ids"])
        jobs.finish(session, mine)


def _lookup_may_lag(job: Job, settle: float) -> bool:
    """Whether "not found" can still be the tracker's search lagging an earlier create of unknown outcome."""
    since = job.payload.get(jobs.OUTCOME_UNKNOWN_SINCE)
    return since is not None and utcnow() < datetime.fromisoformat(str(since)) + timedelta(seconds=settle)


def _wait_for_lookup(context: Context, job: Job, worker_id: str, settle: float) -> None:
    """Look again once the tracker's index has caught up, rather than risk a second issue now."""
    assert job.id is not None
    since = datetime.fromisoformat(str(job.payload[jobs.OUTCOME_UNKNOWN_SINCE]))
    delay = max(1.0, (since + timedelta(seconds=settle) - utcnow()).total_seconds())
    with context.write() as session:
        if (mine := jobs.still_mine(session, job.id, worker_id)) is not None:
            jobs.retry(session, mine, "an earlier attempt may have filed the issue; waiting for the lookup", delay)


def _record_failure(context: Context, job: Job, worker_id: str, exc: TrackerError, retry_in: float | None) -> None:
    assert job.id is not None and job.action_id is not None
    with context.write() as session:
        mine = jobs.still_mine(session, job.id, worker_id)
        if mine is None:
            return
        action = session.get(Action, job.action_id)
        assert action is not None
        action.last_error, action.updated_at = exc.message, utcnow()
        session.add(action)
        if retry_in is not None:
            note = " (the issue may exist; it will be looked up first)" if isinstance(exc, OutcomeUnknown) else ""
            log.info("filing action %s: %s; retry in %.0fs%s", action.id, exc.message, retry_in, note)
            if isinstance(exc, OutcomeUnknown):
                jobs.mark_outcome_unknown(mine)
            jobs.retry(session, mine, exc.message, retry_in)
            if isinstance(exc, Unreachable) and action.tracker_kind:
                # The whole tracker is down, not this one request: every job waiting on it waits until the same
                # moment. Then one job at a time probes it (not each on its own clock), and once it is back they
                # are all ready together and run in due-date order.
                same_tracker = select(Action.id).where(Action.tracker_kind == action.tracker_kind)
                if held := jobs.postpone(session, same_tracker, mine.run_after):
                    log.info("%s unreachable: %d more job(s) wait until %s", action.tracker_kind, held, mine.run_after)
        else:
            log.warning("filing action %s failed for good: %s", action.id, exc.message)
            jobs.fail(session, mine, exc.message)
            ledger.append(
                session,
                kind="filing_failed",
                source="system",
                action_id=action.id,
                postmortem_id=action.postmortem_id,
                details={"error": exc.message},
            )
