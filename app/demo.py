"""Demo data: a believable installation's year of incidents, postmortems, findings and actions (some overdue, some
escalated, a few recurrences), for a first look at the pages, screenshots and the page benchmark.

Rows are written directly (no tracker is called, no job queued): the tracker keys and URLs are made up, and the
escalation steps are recorded as the ladder would have recorded them, through the ledger."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from app import ledger
from app.actions import Action, ActionFinding, owner_key
from app.findings import Finding
from app.incidents import Incident
from app.postmortems import Postmortem
from app.vocabulary import (
    ActionKind,
    ActionStatus,
    Control,
    FindingKind,
    IncidentStatus,
    LedgerKind,
    LedgerSource,
    PostmortemStatus,
    Priority,
    Severity,
    VerificationState,
)
from connectors.targets import TrackerKind

TEAMS = {
    "payments": ["checkout-api", "ledger-service"],
    "platform": ["postgres-primary", "kubernetes-ingress"],
    "search": ["search-api", "indexer"],
    "identity": ["login", "token-service"],
}
OWNERS = {
    "payments": ["alice@example.com", "bob@example.com"],
    "platform": ["carol@example.com", "dan@example.com"],
    "search": ["erin@example.com", "frank@example.com"],
    "identity": ["grace@example.com", "heidi@example.com"],
}
FAILURES = [
    ("Connection pool exhausted", "capacity"),
    ("Certificate expired", "configuration"),
    ("Bad deploy rolled out to all regions", "change-management"),
    ("Disk full on primary", "capacity"),
    ("Upstream DNS timeouts", "dependency"),
    ("Cache stampede after flush", "architecture"),
    ("Runaway cron job", "change-management"),
    ("Alert routed to nobody", "monitoring"),
]
REMEDIES = [
    "Alert on pool saturation above 80%",
    "Automate certificate renewal",
    "Canary every deploy in one region first",
    "Add disk usage forecast alert",
    "Cache DNS answers for 60 s",
    "Jitter cache expiry",
    "Document the rollback runbook",
    "Route unowned alerts to the on-call SRE",
]


@dataclass(frozen=True)
class Filled:
    incidents: int
    postmortems: int
    findings: int
    actions: int


def fill(session: Session, *, now: datetime, postmortems: int = 60, seed: int = 7) -> Filled:
    """Add `postmortems` postmortems over the year before `now` (about 5 actions each), with their incidents."""
    rng = random.Random(seed)
    today = now.astimezone(UTC).date()
    counts = {"incidents": 0, "findings": 0, "actions": 0}
    earlier: dict[str, Incident] = {}
    for n in range(postmortems):
        team = rng.choice(list(TEAMS))
        service = rng.choice(TEAMS[team])
        failure, category = rng.choice(FAILURES)
        # Spread over the year, denser recently: the overview's last week has a few incidents of its own.
        age = timedelta(days=min(rng.expovariate(1 / 90), 364), hours=rng.random() * 24)
        triggered = now - age
        severity = rng.choices([Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4], [1, 3, 5, 3])[0]
        acknowledged = triggered + timedelta(seconds=rng.lognormvariate(5.5, 0.8))
        resolved = acknowledged + timedelta(seconds=rng.lognormvariate(8, 0.9))
        repeat = earlier.get(failure + service)
        incident = Incident(
            source=rng.choice(["pagerduty", "opsgenie"]),
            external_id=f"DEMO{seed}-{n:05d}",
            title=f"{failure} on {service}",
            service=service,
            team=team,
            severity=severity,
            status=IncidentStatus.RESOLVED if resolved < now else IncidentStatus.ACKNOWLEDGED,
            triggered_at=triggered,
            acknowledged_at=acknowledged,
            resolved_at=resolved if resolved < now else None,
            url=f"https://acme.pagerduty.com/incidents/DEMO{n:05d}",
            fingerprint=f"demo-{failure}-{service}",
            recurrence_of=repeat.id if repeat and repeat.triggered_at and repeat.triggered_at < triggered else None,
        )
        if incident.recurrence_of is not None:
            incident.recurred_after_actions_done = rng.random() < 0.4
        session.add(incident)
        session.flush()
        counts["incidents"] += 1
        earlier.setdefault(failure + service, incident)
        review_due = (triggered + timedelta(days=7)).date()
        status = (
            PostmortemStatus.DRAFT
            if age < timedelta(days=5)
            else rng.choices(list(PostmortemStatus), [1, 1, 4, 4] if review_due < today else [3, 2, 1, 0])[0]
        )
        postmortem = Postmortem(
            title=f"{failure} on {service}",
            status=status,
            owner=rng.choice(OWNERS[team]),
            summary=f"{failure}; {service} degraded for customers.",
            impact_start=triggered - timedelta(seconds=rng.lognormvariate(5, 1)),
            impact_end=resolved,
            review_due=review_due,
            trigger="high-severity",
            created_at=triggered,
            updated_at=triggered,
            published_at=triggered + timedelta(days=rng.randint(3, 12))
            if status in (PostmortemStatus.PUBLISHED, PostmortemStatus.CLOSED)
            else None,
        )
        session.add(postmortem)
        session.flush()
        assert postmortem.id is not None and incident.id is not None
        postmortem.key = f"PM-{postmortem.id}"
        incident.postmortem_id = postmortem.id
        finding = Finding(
            postmortem_id=postmortem.id,
            kind=FindingKind.ROOT_CAUSE,
            statement=failure,
            category=category,
            created_at=triggered,
            updated_at=triggered,
        )
        gap = Finding(
            postmortem_id=postmortem.id,
            kind=FindingKind.DETECTION_GAP,
            statement=f"No alert before customers noticed ({service})",
            category="monitoring",
            created_at=triggered,
            updated_at=triggered,
        )
        session.add_all([finding, gap])
        session.flush()
        counts["findings"] += 2
        for k in range(rng.randint(3, 7)):
            counts["actions"] += 1
            _action(session, rng, postmortem, [finding, gap][k % 2], team, triggered, now)
    session.flush()
    return Filled(counts["incidents"], postmortems, counts["findings"], counts["actions"])


def _action(
    session: Session,
    rng: random.Random,
    postmortem: Postmortem,
    finding: Finding,
    team: str,
    triggered: datetime,
    now: datetime,
) -> None:
    assert postmortem.id is not None and finding.id is not None
    due = triggered.date() + timedelta(days=rng.choice([7, 14, 30, 45]))
    closed = rng.random() < (0.85 if due < now.date() - timedelta(days=20) else 0.35)
    status = (
        rng.choices([ActionStatus.DONE, ActionStatus.WONT_DO], [9, 1])[0]
        if closed
        else rng.choices([ActionStatus.OPEN, ActionStatus.IN_PROGRESS, ActionStatus.UNFILED], [6, 3, 1])[0]
    )
    kind = rng.choice(list(TrackerKind))
    owner = rng.choice(OWNERS[team])
    action = Action(
        postmortem_id=postmortem.id,
        title=rng.choice(REMEDIES),
        kind=rng.choice(list(ActionKind)),
        owner=owner,
        owner_key=owner_key(owner),
        due_date=due,
        priority=rng.choice(list(Priority)),
        tracker_kind=kind,
        status=status,
        created_at=triggered + timedelta(hours=2),
        updated_at=triggered + timedelta(hours=2),
        closed_at=min(now, triggered + timedelta(days=rng.randint(2, 40))) if closed else None,
        wont_do_reason="Superseded by the platform migration" if status == ActionStatus.WONT_DO else None,
    )
    session.add(action)
    session.flush()
    assert action.id is not None
    if status != ActionStatus.UNFILED:
        action.tracker_key = f"{team.upper()}-{action.id}"
        action.tracker_url = f"https://tracker.example.com/{kind}/{team}/{action.id}"
        action.tracker_status = {"open": "To Do", "in_progress": "In Progress", "done": "Done"}.get(status, "Closed")
        action.filed_at = action.created_at
    session.add(ActionFinding(action_id=action.id, finding_id=finding.id))
    action.control = rng.choice(list(Control))
    if status == ActionStatus.DONE and action.closed_at is not None:
        # What verification (app/verification.py) would have recorded: pending until 30 days after done, then the
        # owner's word on the success metric, or a recurrence that came first.
        action.verification_due = action.closed_at.date() + timedelta(days=30)
        if action.verification_due > now.date():
            action.verification_state = VerificationState.PENDING
        else:
            action.verification_state = rng.choices(
                [VerificationState.HELD, VerificationState.FAILED, VerificationState.RECURRED], [7, 2, 1]
            )[0]
            if action.verification_state != VerificationState.RECURRED:
                action.verified_at = datetime.combine(action.verification_due, datetime.min.time(), UTC)
    days_late = (now.date() - due).days
    if not closed and action.tracker_key and days_late > 3:
        # What the escalation ladder (owner at the due date, manager after 3 days, facilitator after 7) took.
        level = 2 if days_late > 7 else 1
        action.escalation_level, action.escalated_at = level, now - timedelta(days=days_late - (7 if level == 2 else 3))
        ledger.append(
            session,
            kind=LedgerKind.ESCALATED,
            source=LedgerSource.SYSTEM,
            action_id=action.id,
            postmortem_id=postmortem.id,
            details={"level": level, "to": "vp-eng@example.com" if level == 2 else "manager@example.com"},
            at=action.escalated_at,
        )
    session.add(action)
