"""Filing flow: turn an action into exactly one tracker issue, even across timeouts, 5xx and crashes; keep that issue
following the action's later edits. Both are job handlers (see app/jobs.py).

An optional field the tracker refuses (an assignee it cannot assign, a due date off the project's screen) is dropped
and the issue sent again without it; the action keeps a warning and the ledger a `field_dropped` entry for it. The
refusal is remembered per target until the mappings are reloaded, so the next action there does not pay for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

from sqlmodel import Session, select

from app import jobs, ledger
from app.actions import Action, finding_ids_of, queue_issue_update
from app.context import Context
from app.db import utcnow
from app.drafts import build_draft
from app.findings import Finding
from app.jobs import Done, Job, JobKind, Later, Outcome
from app.postmortems import Postmortem
from app.vocabulary import ActionStatus, LedgerKind, LedgerSource
from connectors.targets import Target
from connectors.tracker import FieldsRefused, IssueDraft, IssueRef, PermanentError, Tracker, TrackerError, Unreachable

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_DROPS = 5  # rounds of "refused, send again without it": each round drops at least one of a handful of parts

# Which parts of the issue show which action field (the body repeats owner, due date, priority and the success metric;
# the findings are in the body and the backlinks). The job pushes only these, so that an edit of the title does not
# undo, say, a priority someone changed in the tracker since.
PARTS_SHOWING: dict[str, frozenset[str]] = {
    "title": frozenset({"title"}),
    "description": frozenset({"body"}),
    "owner": frozenset({"body", "assignee"}),
    "due_date": frozenset({"body", "due_date"}),
    "priority": frozenset({"body", "priority"}),
    "success_metric": frozenset({"body"}),
    "control": frozenset({"body"}),
    "counterfactual": frozenset({"body"}),
    "finding_ids": frozenset({"body", "backlink"}),
}


@dataclass(frozen=True)
class Dropped:
    """An optional part the tracker did not take (shown on the action as a warning)."""

    field: str
    value: Any
    message: str


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


def _degrading(
    context: Context, target: Target, draft: IssueDraft, send: Callable[[IssueDraft], T]
) -> tuple[T, list[Dropped], IssueDraft]:
    """`send(draft)`, sent again without the optional parts the tracker refuses, for as long as it refuses only those.

    Parts refused for this target before are left out from the start. A 4xx created nothing, so sending again cannot
    make a second issue.
    """
    values = draft.optional()
    known = context.refused_fields(target.name, values)
    dropped = [Dropped(name, values.get(name), message) for name, message in known.items() if name in values]
    draft = draft.without(set(known))
    for _ in range(MAX_DROPS):
        try:
            return send(draft), dropped, draft
        except FieldsRefused as exc:
            refused = {name: message for name, message in exc.fields.items() if name not in draft.omitted}
            if not refused:
                raise PermanentError(exc.message) from exc
            context.remember_refused(target.name, refused, values)
            dropped += [Dropped(name, values.get(name), message) for name, message in refused.items()]
            draft = draft.without(set(refused))
    raise PermanentError(f"the tracker kept refusing optional fields: {[d.field for d in dropped]}")


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
    ref: IssueRef | None = None
    dropped: list[Dropped] = []
    if job.attempts > 1:
        # No attempt can have created the issue before the job existed (a minute's slack for clock skew).
        ref = tracker.find_issue(target, draft.idempotency_key, job.created_at - timedelta(minutes=1))
        if ref is None and (wait := _lookup_may_lag(job, tracker.lookup_settle)) is not None:
            return Later(wait, "an earlier attempt may have filed the issue; waiting for the lookup")
    if ref is not None:
        # Filed by an attempt whose answer was lost: that attempt may have ended before the backlinks.
        filed, repair = ref, True
    else:
        filed, dropped, _ = _degrading(context, target, draft, lambda d: tracker.create_issue(target, d))
        repair = not filed.backlinked
    dropped += [Dropped(name, draft.optional().get(name), message) for name, message in filed.dropped.items()]
    return Done(lambda session, _job: _record_filed(session, job.action_id or 0, filed, dropped, repair=repair))


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
    dropped: list[Dropped] = []
    taken: set[str] = set()
    if action.tracker_key:  # always set when queued; nothing to rewrite otherwise
        key = action.tracker_key
        tracker, target, draft = _tracker_and_draft(context, action, postmortem, found)
        _, dropped, sent = _degrading(context, target, draft, lambda d: tracker.update_issue(target, key, d, parts))
        # The optional parts this update set: an earlier warning about one of them no longer holds.
        taken = {part for part in ("assignee", "due_date", "priority") if part in (parts or {part})} - sent.omitted
    done = job.action_id or 0
    return Done(lambda session, _job: _record_updated(session, done, dropped, taken, full=parts is None))


def _record_updated(session: Session, action_id: int, dropped: list[Dropped], taken: set[str], *, full: bool) -> None:
    action = session.get(Action, action_id)
    if action is None:
        return
    if any(warning.get("field") in taken for warning in action.warnings):
        action.warnings = [warning for warning in action.warnings if warning.get("field") not in taken]
        session.add(action)
    _record_dropped(session, action, dropped)
    # Only a full rewrite proves the issue matches the action again; for a filed action, last_error can only have come
    # from an earlier update (filing clears it).
    if full and action.last_error:
        action.last_error, action.updated_at = None, utcnow()
        session.add(action)


def _record_filed(session: Session, action_id: int, ref: IssueRef, dropped: list[Dropped], *, repair: bool) -> None:
    action = session.get(Action, action_id)
    assert action is not None
    action.tracker_key, action.tracker_url, action.filed_at = ref.key, ref.url, utcnow()
    action.tracker_id, action.tracker_status, action.last_error = ref.tracker_id, None, None
    if action.status == ActionStatus.UNFILED:  # not if it was cancelled while the issue was being created
        action.status = ActionStatus.OPEN
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
    _record_dropped(session, action, dropped)
    if repair:
        # A durable update job (retried like any) puts the backlinks on; the findings are what they show.
        queue_issue_update(session, action, ["finding_ids"])


def _record_dropped(session: Session, action: Action, dropped: list[Dropped]) -> None:
    """A warning on the action and a `field_dropped` ledger entry for each part not dropped before."""
    known = {warning.get("field") for warning in action.warnings}
    new = [d for d in dropped if d.field not in known]
    if not new:
        return
    action.warnings = [*action.warnings, *(asdict(d) for d in new)]
    session.add(action)
    for d in new:
        log.info("action %s: %s dropped from %s: %s", action.id, d.field, action.tracker_key, d.message)
        ledger.append(
            session,
            kind=LedgerKind.FIELD_DROPPED,
            source=LedgerSource.SYSTEM,
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            details={"key": action.tracker_key, **asdict(d)},
        )


def _lookup_may_lag(job: Job, settle: float) -> float | None:
    """Seconds until "not found" can no longer be the tracker's search lagging an earlier create of unknown outcome;
    None when it already cannot."""
    since = jobs.outcome_unknown_since(job)
    if since is None:
        return None
    left = (since + timedelta(seconds=settle) - utcnow()).total_seconds()
    return max(1.0, left) if left > 0 else None
