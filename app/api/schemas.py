"""Request and response bodies of the REST API (names fixed by the spec)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.actions import ActionFilter
from app.api.params import MAX_ID, UTCTime
from app.participants import Participant, Participants
from app.vocabulary import (
    ActionKind,
    ActionStatus,
    Control,
    FindingKind,
    IncidentStatus,
    LedgerKind,
    LedgerSource,
    MissingCode,
    PostmortemStatus,
    Priority,
    Severity,
    TrackerState,
    VerificationState,
)
from connectors.events import TimelineKind
from connectors.targets import Target, TrackerKind

T = TypeVar("T")


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text; refused here so both databases answer alike.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, Field(max_length=20_000), AfterValidator(_no_nul)]
Line = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]
FindingId = Annotated[int, Field(ge=1, le=MAX_ID)]
IncidentId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _stripped(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


NonBlank = Annotated[Line, AfterValidator(_stripped)]
Said = Annotated[Text, AfterValidator(_stripped)]  # free text that says something: not blank
ACCEPTED_RISK = "a decision instead of an action: why the risk is accepted, and who decided; null clears it"
COUNTERFACTUAL = "how the control would have changed this incident"


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Fields that may be omitted from a PATCH but never set to null.
    _not_nullable: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_nulls(self) -> Any:
        nulls = [name for name in self._not_nullable if name in self.model_fields_set and getattr(self, name) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class TimelineOut(BaseModel):
    at: datetime
    kind: TimelineKind
    actor: str | None
    text: str | None
    tags: list[str] | None = Field(default=None, description="the whole tag set as this event reported it, if it did")


class IncidentOut(BaseModel):
    id: int
    source: str
    external_id: str
    title: str
    service: str | None
    team: str | None
    severity: Severity
    priority: str | None
    urgency: str | None
    status: IncidentStatus
    triggered_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    url: str | None
    fingerprint: str | None
    postmortem_id: int | None
    recurrence_of: int | None
    recurred_after_actions_done: bool | None
    tags: list[str] = Field(description="Opsgenie tags; PagerDuty custom fields as name:value")
    timeline: list[TimelineOut]


class FindingIn(_Input):
    kind: FindingKind
    statement: Annotated[Text, AfterValidator(_stripped)]
    evidence: Text | None = None
    category: Line | None = None
    whys: list[Text] = Field(default_factory=list, max_length=20)
    accepted_risk: Said | None = Field(default=None, description=ACCEPTED_RISK)


class FindingPatch(_Input):
    _not_nullable = ("kind", "statement", "whys")
    kind: FindingKind | None = None
    statement: Annotated[Text, AfterValidator(_stripped)] | None = None
    evidence: Text | None = None
    category: Line | None = None
    whys: list[Text] | None = Field(default=None, max_length=20)
    accepted_risk: Said | None = Field(default=None, description=ACCEPTED_RISK)


class FindingOut(BaseModel):
    id: int
    postmortem_id: int
    kind: FindingKind
    statement: str
    evidence: str | None
    category: str | None
    whys: list[str]
    accepted_risk: str | None
    created_at: datetime
    updated_at: datetime


class ActionIn(_Input):
    title: NonBlank
    description: Text | None = None
    kind: ActionKind = ActionKind.TECHNICAL
    owner: Line | None = None
    due_date: date | None = None
    priority: Priority = Priority.MEDIUM
    success_metric: Text | None = None
    control: Control | None = Field(default=None, description="the preventive control the action adds")
    counterfactual: Said | None = Field(default=None, description=COUNTERFACTUAL)
    finding_ids: list[FindingId] = Field(min_length=1, max_length=100)
    tracker: Target | None = None


class ActionPatch(_Input):
    _not_nullable = ("title", "kind", "priority", "finding_ids", "tracker", "status")
    title: NonBlank | None = None
    description: Text | None = None
    kind: ActionKind | None = None
    owner: Line | None = None
    due_date: date | None = None
    priority: Priority | None = None
    success_metric: Text | None = None
    control: Control | None = Field(default=None, description="the preventive control the action adds")
    counterfactual: Said | None = Field(default=None, description=COUNTERFACTUAL)
    finding_ids: list[FindingId] | None = Field(default=None, min_length=1, max_length=100)
    tracker: Target | None = Field(default=None, description="another target; only while the action is not filed")
    status: Literal["wont_do"] | None = Field(
        default=None,
        description="cancel an action not filed yet (with `wont_do_reason`); a filed one closes in its tracker",
    )
    wont_do_reason: Annotated[Text, AfterValidator(_stripped)] | None = None

    @model_validator(mode="after")
    def _cancel_has_a_reason(self) -> Any:
        if self.status is not None and not self.wont_do_reason:
            raise ValueError("status wont_do needs a wont_do_reason: say why it will not be done")
        return self


class RefileIn(_Input):
    tracker: Target | None = Field(default=None, description="file to this target instead of the action's own")


class LedgerOut(BaseModel):
    id: int
    at: datetime
    kind: LedgerKind
    action_id: int | None
    postmortem_id: int | None
    source: LedgerSource
    from_status: str | None
    to_status: str | None
    tracker_status: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class WarningOut(BaseModel):
    """An optional field the tracker did not take: the issue was filed (or updated) without it."""

    field: str = Field(description="assignee, due_date, priority, labels, or a field id of the tracker")
    value: Any = Field(description="the value Aftermath would have set")
    message: str = Field(description="the tracker's words")


class VerificationOut(BaseModel):
    state: VerificationState
    due: date | None = Field(description="when the outcome is asked for: verify_after_days after the action was done")
    note: str | None
    verified_at: datetime | None = Field(default=None, description="when the outcome (held or failed) was recorded")


class VerificationIn(_Input):
    result: Literal[VerificationState.HELD, VerificationState.FAILED] = Field(
        description="held: the success metric was met; failed: it was not"
    )
    note: Said | None = None


class ActionQuery(BaseModel):
    """The action list's filters as query parameters: the API list, its CSV export and the /actions page."""

    status: list[ActionStatus] = Field(default_factory=list, description="repeat for several")
    owner: str | None = Field(default=None, max_length=255, description="whatever the case")
    overdue: bool | None = None
    postmortem_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    tracker: TrackerKind | None = Field(default=None, description="the kind of tracker the action is filed in")
    finding_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    escalated: bool | None = Field(
        default=None, description="true: actions whose escalation reached level 1 or above (past the owner)"
    )
    team: str | None = Field(default=None, max_length=255, description="of a postmortem covering this team's incident")
    service: str | None = Field(
        default=None, max_length=255, description="of a postmortem covering an incident of this service"
    )

    def to_filter(self) -> ActionFilter:
        return ActionFilter(
            status=tuple(dict.fromkeys(self.status)),
            owner=self.owner or None,
            overdue=self.overdue,
            postmortem_id=self.postmortem_id,
            tracker=self.tracker,
            finding_id=self.finding_id,
            escalated=self.escalated,
            team=self.team or None,
            service=self.service or None,
        )


class ActionOut(BaseModel):
    id: int
    postmortem_id: int
    finding_ids: list[int]
    title: str
    description: str | None
    kind: ActionKind
    owner: str | None
    due_date: date | None
    priority: Priority
    success_metric: str | None
    control: Control | None
    counterfactual: str | None
    tracker: Target | None = Field(description="the target: where the action is (to be) filed")
    tracker_key: str | None
    tracker_url: str | None
    status: ActionStatus
    tracker_status: str | None
    tracker_state: TrackerState
    last_error: str | None
    warnings: list[WarningOut]
    wont_do_reason: str | None
    filed_at: datetime | None
    closed_at: datetime | None
    overdue: bool
    escalation_level: int | None = Field(
        description="the highest step of the escalation ladder taken (0: the owner was told at the due date)"
    )
    escalated_at: datetime | None
    verification: VerificationOut | None = Field(description="whether the fix worked; null until the action is done")
    created_at: datetime
    updated_at: datetime


class ActionDetail(ActionOut):
    ledger: list[LedgerOut]


class PostmortemPatch(_Input):
    _not_nullable = ("title", "status", "incident_ids", "participants")
    title: NonBlank | None = None
    status: PostmortemStatus | None = None
    owner: Line | None = None
    summary: Text | None = None
    customer_impact: Text | None = None
    impact_start: UTCTime | None = None
    impact_end: UTCTime | None = None
    review_due: date | None = None
    incident_ids: list[IncidentId] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="the incidents it covers (replaces the list); one covered by another postmortem is a 409",
    )
    participants: Participants | None = Field(
        default=None, description="who takes part in the review, with their role; replaces the whole list"
    )
    version: int | None = Field(default=None, ge=1, description="expected current version; 409 if it moved on")


class RecurrenceOut(BaseModel):
    incident_id: int
    recurrence_of: int
    triggered_at: datetime | None
    actions_all_done: bool | None  # True: every action was done, yet the failure came back


class PostmortemOut(BaseModel):
    id: int
    key: str
    title: str
    status: PostmortemStatus
    owner: str | None
    summary: str | None
    customer_impact: str | None
    impact_start: datetime | None
    impact_end: datetime | None
    incident_ids: list[int]
    findings: list[FindingOut]
    actions: list[ActionOut]
    recurrences: list[RecurrenceOut]
    version: int
    trigger: str | None
    created_at: datetime
    updated_at: datetime
    review_due: date | None
    published_at: datetime | None
    overdue: bool
    participants: list[Participant]


class MissingOut(BaseModel):
    code: MissingCode
    detail: str
    finding_id: int | None = Field(default=None, description="the finding it is about, for finding_unanswered")
    action_id: int | None = Field(default=None, description="the action it is about, for the action codes")


class CompletenessOut(BaseModel):
    complete: bool
    missing: list[MissingOut]


class ConflictOut(BaseModel):
    detail: str
    missing: list[MissingOut] | None = Field(
        default=None, description="what the minimum viable report lacks, when the conflict is a move to published"
    )


class RevisionOut(BaseModel):
    id: int
    version: int
    at: datetime
    author: str
    changes: dict[str, Any]


class DeadLetterOut(BaseModel):
    id: int
    source: str
    status: Literal["dead_letter", "failed"]
    reason: str | None = Field(description="why it could not be used")
    received_at: datetime
    event_type: str | None
    external_id: str = Field(description="the event id; for a body that did not parse, dead:<sha256 of the body>")
    body: str = Field(description="the body as received (UTF-8; undecodable bytes replaced)")


class WebhookAnswer(BaseModel):
    status: Literal["accepted", "duplicate", "ignored"]
    event_id: str


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    first_bad_id: int | None = None
    head_hash: str = Field(description="hash of the last verified entry; keep it to detect entries cut off the end")


class SearchHitOut(BaseModel):
    type: Literal["postmortem", "finding", "action", "incident"]
    id: int = Field(description="the id of the postmortem, finding, action or incident")
    postmortem_id: int | None = Field(description="the postmortem it belongs to (an incident's, if it has one)")
    title: str = Field(description="its title; a finding's statement")
    snippet: str = Field(description="HTML: the matching text escaped, the matched words in <mark>")
    score: float = Field(description="higher is better; comparable within one search only")


class SimilarOut(BaseModel):
    postmortem_id: int
    key: str | None
    title: str
    status: PostmortemStatus
    created_at: datetime
    reason: Literal["same_fingerprint", "same_service_and_category", "similar_text"] = Field(
        description="why it is like this one; the reasons rank in this order"
    )
    score: float = Field(description="3, 2 or 1 for the reason, plus text similarity below 1")
    findings: list[FindingOut]
    actions: list[ActionOut] = Field(description="what was tried last time: each with its status and verification")
