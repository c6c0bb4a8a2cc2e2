"""Schema of the YAML mapping files (triggers, severity, trackers, statuses, people, services, escalation) and
their loading.

The only app module that knows each tracker's own rules (its status categories, its user ids, its priority field):
the rest of the app asks `Mappings.issue_fields`, `Mappings.handle` and `Mappings.status_of`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app import shipped
from app.settings import SettingsError
from app.vocabulary import ActionStatus, EscalateTo, Priority, Severity
from connectors.events import IncidentSnapshot
from connectors.targets import GitHubTarget, JiraTarget, Target, TrackerKind
from connectors.tracker import IssueState

# What a tracker status can map to: every action status but `unfiled`, which only Aftermath knows.
TrackedStatus = Literal[ActionStatus.OPEN, ActionStatus.IN_PROGRESS, ActionStatus.DONE, ActionStatus.WONT_DO]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: object) -> object:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", value)
        if not match:
            raise ValueError(f"{value!r} is not a duration like 30m, 2h or 1d")
        n, unit = int(match[1]), match[2]
        return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})
    return value


class TriggerCondition(_Strict):
    source: Literal["pagerduty", "opsgenie"] | None = None
    severity: list[Severity] | None = None
    urgency: list[str] | None = None
    service: list[str] | None = None
    open_longer_than: timedelta | None = None

    _parse_duration = field_validator("open_longer_than", mode="before")(_duration)


class TriggerRule(_Strict):
    name: str
    when: TriggerCondition


class Triggers(_Strict):
    review_due_days: int = Field(default=7, ge=1)
    rules: list[TriggerRule] = []


class SeverityMap(_Strict):
    """Source priority label (or urgency when no priority was set) to normalized severity."""

    pagerduty_priority: dict[str, Severity] = {}
    pagerduty_urgency: dict[str, Severity] = {}
    opsgenie_priority: dict[str, Severity] = {}
    opsgenie_default: Severity = Severity.SEV3
    default: Severity = Severity.UNKNOWN


class TargetRule(_Strict):
    service: str | None = None
    team: str | None = None
    target: Target


class Trackers(_Strict):
    rules: list[TargetRule] = []
    default: Target | None = None
    labels: list[str] = ["postmortem"]
    jira_priority: dict[Priority, str] = {}  # action priority -> Jira priority name
    github_priority_labels: dict[Priority, str] = {}  # action priority -> GitHub label
    jira_fields: dict[str, Any] = {}  # extra fields, including customfield_NNNNN, sent on create

    @field_validator("labels")
    @classmethod
    def _no_spaces(cls, value: list[str]) -> list[str]:
        bad = [label for label in value if not label or " " in label]
        if bad:
            raise ValueError(f"labels may not be empty or contain spaces: {bad}")
        return value


class JiraStatusMap(_Strict):
    categories: dict[str, TrackedStatus] = {
        "new": ActionStatus.OPEN,
        "indeterminate": ActionStatus.IN_PROGRESS,
        "done": ActionStatus.DONE,
    }
    wont_do_resolutions: list[str] = ["Won't Do", "Won't Fix", "Duplicate", "Cannot Reproduce", "Declined"]
    statuses: dict[str, TrackedStatus] = {}  # exact status names that override the category

    def status_of(self, state: IssueState) -> ActionStatus:
        """By status category, not name (names are per workflow); a done with a won't-do resolution is won't do."""
        if state.raw_status in self.statuses:
            return self.statuses[state.raw_status]
        status = self.categories.get(state.category, ActionStatus.OPEN)
        if status == ActionStatus.DONE and state.resolution in self.wont_do_resolutions:
            return ActionStatus.WONT_DO
        return status


class GitHubStatusMap(_Strict):
    open: TrackedStatus = ActionStatus.OPEN
    closed: dict[str, TrackedStatus] = {
        "completed": ActionStatus.DONE,
        "not_planned": ActionStatus.WONT_DO,
        "duplicate": ActionStatus.WONT_DO,
    }
    closed_default: TrackedStatus = ActionStatus.DONE
    in_progress_labels: list[str] = ["in progress", "in-progress"]

    def status_of(self, state: IssueState) -> ActionStatus:
        if state.category == "closed":
            return self.closed.get(state.resolution or "", self.closed_default)
        return self.open


class Statuses(_Strict):
    jira: JiraStatusMap = JiraStatusMap()
    github: GitHubStatusMap = GitHubStatusMap()


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value.strip()):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value.strip().lower()


class Person(_Strict):
    name: str | None = None  # how comments name them where no tracker identity is known
    jira_account_id: str | None = None
    jira_name: str | None = None
    github_login: str | None = None
    manager: str | None = None  # the manager's e-mail (a key of people.yaml, or not): escalation's second step

    @field_validator("manager")
    @classmethod
    def _manager_email(cls, value: str | None) -> str | None:
        return None if value is None else _email(value)


class EscalationStep(_Strict):
    after_days: int = Field(ge=0, le=3650)  # days after the action became overdue (the day after its due date)
    to: EscalateTo | str  # or a fixed e-mail address

    @field_validator("to", mode="before")
    @classmethod
    def _who(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.strip() in {t.value for t in EscalateTo}:
            return EscalateTo(value.strip())
        if not _EMAIL.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is neither one of {', '.join(EscalateTo)} nor an e-mail address")
        return _email(value)


class Escalation(_Strict):
    """The ladder an overdue action climbs (one comment and one ledger entry per step), and when a done action's
    verification falls due."""

    ladder: list[EscalationStep] = [
        EscalationStep(after_days=0, to=EscalateTo.OWNER),
        EscalationStep(after_days=3, to=EscalateTo.MANAGER),
        EscalationStep(after_days=7, to=EscalateTo.FACILITATOR),
    ]
    verify_after_days: int = Field(default=30, ge=1, le=3650)

    @field_validator("ladder")
    @classmethod
    def _climbs(cls, value: list[EscalationStep]) -> list[EscalationStep]:
        days = [step.after_days for step in value]
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError(f"after_days must grow from one step to the next, not {days}")
        return value


@dataclass(frozen=True)
class IssueFields:
    """What the mappings add to an action's issue on one target: who is assigned, the priority field, labels, and
    extra create fields; each None or empty where that tracker has no such thing or the mappings say nothing."""

    assignee: str | None
    priority: str | None
    labels: tuple[str, ...]
    extra_fields: dict[str, Any]
    replaced_labels: tuple[str, ...] = ()  # labels standing for another priority, which an edit takes off


ServiceSource = Literal["integration", "tag", "details", "entity", "team"]


class OpsgenieServices(_Strict):
    """How an Opsgenie alert's service is named (its payload has no service field; PagerDuty incidents name theirs).
    The sources are tried in `order`; the first that gives a name wins, and none leaves the incident without one."""

    order: list[ServiceSource] = Field(default=["integration", "tag", "details", "entity", "team"], min_length=1)
    integrations: dict[str, str] = {}  # integration name -> service, for an integration per service
    tag_prefix: str = Field(default="service:", min_length=1)  # the tag service:checkout-api names checkout-api
    teams: dict[str, str] = {}  # owner team -> service, for a team that owns one service

    @field_validator("order")
    @classmethod
    def _once_each(cls, value: list[ServiceSource]) -> list[ServiceSource]:
        if len(set(value)) != len(value):
            raise ValueError("name each source once")
        return value

    def service_of(self, snap: IncidentSnapshot) -> str | None:
        for source in self.order:
            match source:
                case "integration":
                    found = self.integrations.get(snap.integration or "")
                case "tag":
                    tagged = [t[len(self.tag_prefix) :] for t in snap.tags or () if t.startswith(self.tag_prefix)]
                    found = next((t.strip() for t in tagged if t.strip()), None)
                case "details":
                    found = snap.details_service
                case "entity":
                    found = snap.entity
                case "team":
                    found = self.teams.get(snap.team or "")
            if found:
                return found
        return None


class Services(_Strict):
    opsgenie: OpsgenieServices = OpsgenieServices()

    def service_of(self, source: str, snap: IncidentSnapshot) -> str | None:
        """The incident's service: PagerDuty's own, or the Opsgenie alert's by the rules above."""
        return self.opsgenie.service_of(snap) if source == "opsgenie" else snap.service


class Mappings(_Strict):
    triggers: Triggers = Triggers()
    severity: SeverityMap = SeverityMap()
    trackers: Trackers = Trackers()
    statuses: Statuses = Statuses()
    people: dict[str, Person] = {}
    services: Services = Services()
    escalation: Escalation = Escalation()

    def person(self, email: str | None) -> Person | None:
        return self.people.get(email.strip().lower()) if email else None

    def name_of(self, email: str) -> str:
        """How to name a person in text: their name from people.yaml, else what we were given (an e-mail)."""
        person = self.person(email)
        return person.name if person and person.name else email

    def handle(self, target: Target, email: str | None) -> str | None:
        """The person's identity on this target's tracker (to assign or mention them), where people.yaml has one."""
        person = self.person(email)
        if person is None:
            return None
        match target:
            case JiraTarget():
                return person.jira_account_id or person.jira_name
            case GitHubTarget():
                return person.github_login

    def issue_fields(self, target: Target, owner: str | None, priority: Priority) -> IssueFields:
        trackers = self.trackers
        match target:
            case JiraTarget():
                return IssueFields(
                    assignee=self.handle(target, owner),
                    priority=trackers.jira_priority.get(priority),
                    labels=tuple(trackers.labels),
                    extra_fields=dict(trackers.jira_fields),
                )
            case GitHubTarget():
                label = trackers.github_priority_labels.get(priority)
                return IssueFields(
                    assignee=self.handle(target, owner),
                    priority=None,  # GitHub issues have no priority field: it becomes a label
                    labels=(*trackers.labels, *([label] if label else [])),
                    extra_fields={},
                    replaced_labels=tuple(trackers.github_priority_labels.values()),
                )

    def status_of(self, kind: TrackerKind, state: IssueState) -> ActionStatus:
        """The action status a tracker issue's state means, by that tracker's rules in statuses.yaml."""
        rules = self.statuses.jira if kind == TrackerKind.JIRA else self.statuses.github
        return rules.status_of(state)


FILES = ("triggers", "severity", "trackers", "statuses", "people", "services", "escalation")
# A mapping of people may be empty ({}: nobody is assigned); every other file with nothing in it was emptied by mistake.
MAY_BE_EMPTY = ("people",)


def sources(folder: Path) -> dict[str, Path]:
    """Which file each mapping comes from: the folder's own, else the shipped one (a folder may hold only the files
    it changes)."""
    default = shipped.mappings()
    return {
        name: folder / f"{name}.yaml" if (folder / f"{name}.yaml").exists() else default / f"{name}.yaml"
        for name in FILES
    }


def load_mappings(folder: Path) -> Mappings:
    """Read every mapping file; any problem is one SettingsError line naming the file, the field and the fix."""
    data: dict[str, Any] = {}
    paths = sources(folder)
    for name, path in paths.items():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"mapping file {path}: not readable YAML ({exc})".replace("\n", " ")) from None
        if loaded is None or (loaded == {} and name not in MAY_BE_EMPTY):
            raise SettingsError(
                f"mapping file {path}: the file is empty; write its rules, or delete it to use the shipped one"
            )
        data[name] = loaded
    if isinstance(data.get("people"), dict):
        data["people"] = {str(k).lower(): v for k, v in data["people"].items()}
    try:
        return Mappings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        file, *rest = [str(part) for part in first["loc"]] or ["?"]
        where = ".".join(rest) or "(top level)"
        path = paths.get(file, folder / f"{file}.yaml")
        raise SettingsError(f"mapping file {path}: {where}: {first['msg']}") from None
