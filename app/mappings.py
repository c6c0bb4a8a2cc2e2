"""Schema of the YAML mapping files (triggers, severity, trackers, statuses, people) and their loading.

The only app module that knows each tracker's own rules (its status categories, its user ids, its priority field):
the rest of the app asks `Mappings.issue_fields` and `Mappings.status_of`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app import shipped
from app.settings import SettingsError
from app.vocabulary import ActionStatus, Priority, Severity
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


class Person(_Strict):
    jira_account_id: str | None = None
    jira_name: str | None = None
    github_login: str | None = None


@dataclass(frozen=True)
class IssueFields:
    """What the mappings add to an action's issue on one target: who is assigned, the priority field, labels, and
    extra create fields; each None or empty where that tracker has no such thing or the mappings say nothing."""

    assignee: str | None
    priority: str | None
    labels: tuple[str, ...]
    extra_fields: dict[str, Any]
    replaced_labels: tuple[str, ...] = ()  # labels standing for another priority, which an edit takes off


class Mappings(_Strict):
    triggers: Triggers = Triggers()
    severity: SeverityMap = SeverityMap()
    trackers: Trackers = Trackers()
    statuses: Statuses = Statuses()
    people: dict[str, Person] = {}

    def person(self, email: str | None) -> Person | None:
        return self.people.get(email.lower()) if email else None

    def issue_fields(self, target: Target, owner: str | None, priority: Priority) -> IssueFields:
        person, trackers = self.person(owner), self.trackers
        match target:
            case JiraTarget():
                return IssueFields(
                    assignee=(person.jira_account_id or person.jira_name) if person else None,
                    priority=trackers.jira_priority.get(priority),
                    labels=tuple(trackers.labels),
                    extra_fields=dict(trackers.jira_fields),
                )
            case GitHubTarget():
                label = trackers.github_priority_labels.get(priority)
                return IssueFields(
                    assignee=person.github_login if person else None,
                    priority=None,  # GitHub issues have no priority field: it becomes a label
                    labels=(*trackers.labels, *([label] if label else [])),
                    extra_fields={},
                    replaced_labels=tuple(trackers.github_priority_labels.values()),
                )

    def status_of(self, kind: TrackerKind, state: IssueState) -> ActionStatus:
        """The action status a tracker issue's state means, by that tracker's rules in statuses.yaml."""
        rules = self.statuses.jira if kind == TrackerKind.JIRA else self.statuses.github
        return rules.status_of(state)


FILES = ("triggers", "severity", "trackers", "statuses", "people")
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
            raise SettingsError(f"AFTERMATH_MAPPINGS: {path}: not readable YAML ({exc})".replace("\n", " ")) from None
        if loaded is None or (loaded == {} and name not in MAY_BE_EMPTY):
            raise SettingsError(
                f"AFTERMATH_MAPPINGS: {path}: the file is empty; write its rules, or delete it to use the shipped one"
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
        raise SettingsError(f"AFTERMATH_MAPPINGS: {path}: {where}: {first['msg']}") from None
