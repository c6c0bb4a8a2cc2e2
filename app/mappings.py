"""Schema of the YAML mapping files (triggers, severity, trackers, statuses, people) and their loading."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.settings import SettingsError

SEVERITIES = ("sev1", "sev2", "sev3", "sev4", "sev5", "unknown")
Severity = Literal["sev1", "sev2", "sev3", "sev4", "sev5", "unknown"]
NormalizedStatus = Literal["open", "in_progress", "done", "wont_do"]


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
    opsgenie_default: Severity = "sev3"
    default: Severity = "unknown"


class JiraTarget(_Strict):
    kind: Literal["jira"] = "jira"
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    issue_type: str = "Task"


class GitHubTarget(_Strict):
    kind: Literal["github"] = "github"
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


Target = JiraTarget | GitHubTarget


class TargetRule(_Strict):
    service: str | None = None
    team: str | None = None
    target: JiraTarget | GitHubTarget = Field(discriminator="kind")


class Trackers(_Strict):
    rules: list[TargetRule] = []
    default: JiraTarget | GitHubTarget | None = Field(default=None, discriminator="kind")
    labels: list[str] = ["postmortem"]
    jira_priority: dict[str, str] = {}  # action priority -> Jira priority name
    github_priority_labels: dict[str, str] = {}  # action priority -> GitHub label
    jira_fields: dict[str, Any] = {}  # extra fields, including customfield_NNNNN, sent on create

    @field_validator("labels")
    @classmethod
    def _no_spaces(cls, value: list[str]) -> list[str]:
        bad = [label for label in value if not label or " " in label]
        if bad:
            raise ValueError(f"labels may not be empty or contain spaces: {bad}")
        return value


class JiraStatusMap(_Strict):
    categories: dict[str, NormalizedStatus] = {"new": "open", "indeterminate": "in_progress", "done": "done"}
    wont_do_resolutions: list[str] = ["Won't Do", "Won't Fix", "Duplicate", "Cannot Reproduce", "Declined"]
    statuses: dict[str, NormalizedStatus] = {}  # exact status names that override the category


class GitHubStatusMap(_Strict):
    open: NormalizedStatus = "open"
    closed: dict[str, NormalizedStatus] = {"completed": "done", "not_planned": "wont_do", "duplicate": "wont_do"}
    closed_default: NormalizedStatus = "done"
    in_progress_labels: list[str] = ["in progress", "in-progress"]


class Statuses(_Strict):
    jira: JiraStatusMap = JiraStatusMap()
    github: GitHubStatusMap = GitHubStatusMap()


class Person(_Strict):
    jira_account_id: str | None = None
    jira_name: str | None = None
    github_login: str | None = None


class Mappings(_Strict):
    triggers: Triggers = Triggers()
    severity: SeverityMap = SeverityMap()
    trackers: Trackers = Trackers()
    statuses: Statuses = Statuses()
    people: dict[str, Person] = {}

    def person(self, email: str | None) -> Person | None:
        return self.people.get(email.lower()) if email else None


FILES = ("triggers", "severity", "trackers", "statuses", "people")


def load_mappings(folder: Path) -> Mappings:
    """Read every mapping file of the folder; any problem is one SettingsError line naming file and field."""
    data: dict[str, Any] = {}
    for name in FILES:
        path = folder / f"{name}.yaml"
        if not path.exists():
            continue
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"AFTERMATH_MAPPINGS: {path}: not readable YAML ({exc})".replace("\n", " ")) from None
        data[name] = loaded if loaded is not None else {}
    if isinstance(data.get("people"), dict):
        data["people"] = {str(k).lower(): v for k, v in data["people"].items()}
    try:
        return Mappings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        file, *rest = [str(part) for part in first["loc"]] or ["?"]
        where = ".".join(rest) or "(top level)"
        raise SettingsError(f"AFTERMATH_MAPPINGS: {folder / (file + '.yaml')}: {where}: {first['msg']}") from None
