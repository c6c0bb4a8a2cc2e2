"""The normalized shape every inbound alert source is parsed into."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal


class TimelineKind(StrEnum):
    """What one alert event did to its incident (one timeline entry)."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    UNACKNOWLEDGED = "unacknowledged"
    ESCALATED = "escalated"
    REASSIGNED = "reassigned"
    PRIORITY_CHANGED = "priority_changed"
    NOTE = "note"
    STATUS_UPDATE = "status_update"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    RESPONDER_ADDED = "responder_added"
    TAGS_CHANGED = "tags_changed"  # Opsgenie tags added or removed, PagerDuty custom field values updated
    OTHER = "other"


class PayloadError(ValueError):
    """The body is not the source's shape; the message names what is wrong."""


def load_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or PayloadError saying why not (deep nesting included)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"body is not JSON: {exc.__class__.__name__}") from None
    if not isinstance(doc, dict):
        raise PayloadError(f"body must be a JSON object, got {json_type(doc)}")
    return doc


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


@dataclass(frozen=True)
class IncidentSnapshot:
    """Incident attributes an event carries; None means the event did not say."""

    title: str | None = None
    service: str | None = None
    team: str | None = None
    priority: str | None = None  # as sent, normalized to a label: "P1".."P5" or the account's own label
    urgency: str | None = None  # PagerDuty "high"/"low"
    url: str | None = None
    dedup_key: str | None = None  # PagerDuty incident_key / Opsgenie alias
    created_at: datetime | None = None  # when the source says the incident/alert was created
    tags: tuple[str, ...] | None = None  # the whole tag set as of this event (PagerDuty: custom fields as name:value)
    tags_added: tuple[str, ...] | None = None  # a change this event makes to the set, when it sends no whole set
    tags_removed: tuple[str, ...] | None = None
    # Where an Opsgenie alert's service may be read from; the mappings (services.yaml) choose among them.
    integration: str | None = None  # the integration's name
    entity: str | None = None
    details_service: str | None = None  # alert.details.service


@dataclass(frozen=True)
class AlertEvent:
    """One inbound event, normalized. `ignored` events are stored but change nothing."""

    source: Literal["pagerduty", "opsgenie"]
    event_id: str  # idempotency key of this delivery's event (unique per source)
    event_type: str  # the source's own type/action name
    incident_external_id: str | None  # PagerDuty incident id / Opsgenie alertId; None when ignored
    kind: TimelineKind | None  # None: an event type Aftermath does not use (answer "ignored")
    at: datetime | None  # the event's own time (UTC, aware); None when the source sent none
    actor: str | None = None
    text: str | None = None
    snapshot: IncidentSnapshot = field(default_factory=IncidentSnapshot)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ignored(self) -> bool:
        return self.kind is None
