"""What the mappings say, in words: `aftermath check-mappings` prints it, so a rule reads as the service applies it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from app.mappings import Mappings, TriggerCondition


def describe(mappings: Mappings, paths: dict[str, Path], shipped: Path) -> list[str]:
    """One heading per file (where it was read from) and one line per rule or setting."""

    def heading(name: str, what: str) -> str:
        path = paths[name]
        origin = "shipped default" if path.parent == shipped else str(path)
        return f"{name}.yaml ({origin}): {what}"

    triggers = mappings.triggers
    lines = [
        heading(
            "triggers",
            f"a postmortem opens when a rule holds, review due {triggers.review_due_days} days later; "
            "the rule that held first in the incident's own time names it",
        ),
        *[f"  {rule.name}: {_condition(rule.when)}" for rule in triggers.rules],
    ]
    if not triggers.rules:
        lines.append("  no rules: postmortems are opened by hand only")
    lines.append(heading("severity", "normalized severity from what each source sends"))
    lines += [f"  {key}: {_value(value)}" for key, value in mappings.severity.model_dump(mode="json").items()]
    trackers = mappings.trackers
    lines.append(heading("trackers", "where an action is filed unless it names its own target; first rule wins"))
    for rule in trackers.rules:
        when = " and ".join(f"{k} {v}" for k, v in (("service", rule.service), ("team", rule.team)) if v) or "always"
        lines.append(f"  {when} → {_target(rule.target)}")
    lines.append(f"  otherwise → {_target(trackers.default) if trackers.default else 'nowhere: actions stay unfiled'}")
    for key, value in trackers.model_dump(mode="json", exclude={"rules", "default"}).items():
        lines.append(f"  {key}: {_value(value)}")
    lines.append(heading("statuses", "tracker status to action status"))
    for tracker, rules in mappings.statuses.model_dump(mode="json").items():
        lines.append(f"  {tracker}: " + "; ".join(f"{k} {_value(v)}" for k, v in rules.items()))
    rules = mappings.services.opsgenie
    named = {
        "integration": f"integration name ({_value(rules.integrations) if rules.integrations else 'none mapped'})",
        "tag": f"a tag {rules.tag_prefix}NAME",
        "details": "details.service",
        "entity": "entity",
        "team": f"owner team ({_value(rules.teams) if rules.teams else 'none mapped'})",
    }
    lines.append(heading("services", "the service of an Opsgenie alert, from the first of these that names one"))
    lines.append("  " + "; then ".join(named[source] for source in rules.order))
    escalation = mappings.escalation
    lines.append(heading("escalation", "an overdue action climbs this ladder, one comment per step"))
    lines += [f"  {step.after_days} days overdue → {step.to}" for step in escalation.ladder] or [
        "  no steps: overdue actions get the reminder only"
    ]
    lines.append(f"  verify_after_days: {escalation.verify_after_days}")
    people = sorted(mappings.people)
    lines.append(heading("people", f"{len(people)} known: {', '.join(people)}" if people else "nobody is assigned"))
    return lines


def _condition(when: TriggerCondition) -> str:
    parts = []
    for key, value in when.model_dump(exclude_none=True).items():
        if isinstance(value, timedelta):
            parts.append(f"open longer than {_duration(value)} (trigger to resolve, or to the newest event)")
        elif isinstance(value, list):
            parts.append(f"{key} {' or '.join(str(v) for v in value)}")
        else:
            parts.append(f"{key} {value}")
    return "; ".join(parts) or "always"


def _target(target: Any) -> str:
    return " ".join(str(v) for v in target.model_dump(mode="json").values())


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} → {_value(v)}" for k, v in value.items()) or "(none)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)
