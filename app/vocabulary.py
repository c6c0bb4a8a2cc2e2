"""The product's words: every state, kind and source as a StrEnum, shared by the tables, the domain and the API.

A StrEnum member is its string (equal, same hash), so rows read back as plain strings compare with these directly.
"""

from __future__ import annotations

from enum import StrEnum


class IncidentStatus(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"
    SEV5 = "sev5"
    UNKNOWN = "unknown"


class PostmortemStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    CLOSED = "closed"


class FindingKind(StrEnum):
    ROOT_CAUSE = "root_cause"
    CONTRIBUTING_FACTOR = "contributing_factor"
    DETECTION_GAP = "detection_gap"
    RESPONSE_GAP = "response_gap"
    PROCESS_GAP = "process_gap"
    ARCHITECTURE_FLAW = "architecture_flaw"


class ParticipantRole(StrEnum):
    """What a person does in a postmortem's review."""

    FACILITATOR = "facilitator"  # convenes the review; one at most
    AUTHOR = "author"
    REVIEWER = "reviewer"
    STAKEHOLDER = "stakeholder"


class EscalateTo(StrEnum):
    """Who a step of the escalation ladder tells (mappings/escalation.yaml), besides a fixed e-mail address."""

    OWNER = "owner"  # the action's owner
    MANAGER = "manager"  # the owner's manager (people.yaml)
    FACILITATOR = "facilitator"  # the postmortem's participant with role facilitator
    POSTMORTEM_OWNER = "postmortem_owner"


class MissingCode(StrEnum):
    """What a minimum viable report still lacks (GET /api/v1/postmortems/{id}/completeness), in checklist order."""

    SUMMARY = "summary"
    IMPACT = "impact"
    FACILITATOR = "facilitator"
    REVIEWER = "reviewer"
    CAUSE = "cause"
    FINDING_UNANSWERED = "finding_unanswered"
    ACTION_INCOMPLETE = "action_incomplete"
    WONT_DO_UNEXPLAINED = "wont_do_unexplained"


class ActionKind(StrEnum):
    TECHNICAL = "technical"
    PROCESS = "process"
    ORGANIZATIONAL = "organizational"
    MONITORING = "monitoring"
    TEST = "test"


class Control(StrEnum):
    """The preventive control an action adds."""

    TEST = "test"
    FEATURE_FLAG = "feature_flag"
    MONITORING = "monitoring"
    ALERTING = "alerting"
    ROLLBACK = "rollback"
    RUNBOOK = "runbook"
    TRAINING = "training"
    ARCHITECTURE = "architecture"
    PROCESS = "process"
    OTHER = "other"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ActionStatus(StrEnum):
    """An action's normalized status: `unfiled` until a tracker issue exists, then what the tracker says."""

    UNFILED = "unfiled"
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    WONT_DO = "wont_do"


# Closed: nothing more will be done about the action (done, or decided against).
CLOSED = frozenset({ActionStatus.DONE, ActionStatus.WONT_DO})


class VerificationState(StrEnum):
    """Whether a done action's fix worked, judged against its success metric once the verification falls due."""

    PENDING = "pending"  # done; the outcome is not recorded yet
    HELD = "held"  # the success metric was met
    FAILED = "failed"  # it was not
    RECURRED = "recurred"  # the failure came back (same fingerprint) before anyone said it held


class TrackerState(StrEnum):
    """Whether the action's tracker issue is still where Aftermath filed it (`missing`: deleted, or not visible)."""

    OK = "ok"
    MISSING = "missing"


class LedgerKind(StrEnum):
    FILED = "filed"
    FILING_FAILED = "filing_failed"
    STATUS_CHANGED = "status_changed"
    REOPENED = "reopened"
    OWNER_CHANGED = "owner_changed"
    DUE_DATE_CHANGED = "due_date_changed"
    REMINDED = "reminded"
    ESCALATED = "escalated"  # one step of the escalation ladder: details carry `level` and `to`
    VERIFIED = "verified"  # the outcome of a done action's verification: details carry `result` and `note`
    RECURRED = "recurred"
    TRACKER_MISSING = "tracker_missing"
    TRACKER_MOVED = "tracker_moved"
    FIELD_DROPPED = "field_dropped"  # the tracker refused an optional field; the issue was filed without it


class LedgerSource(StrEnum):
    POLL = "poll"
    WEBHOOK = "webhook"
    API = "api"
    SYSTEM = "system"
