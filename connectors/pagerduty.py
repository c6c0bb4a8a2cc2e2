"""PagerDuty Webhooks v3: verify `X-PagerDuty-Signature` and parse one event into an AlertEvent.

Facts and sources: shared/ALERT_SOURCES.md §1 and §3. Pure functions; no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from connectors.events import AlertEvent, IncidentSnapshot, PayloadError, TimelineKind, json_type, load_object
from connectors.formats import parse_time

_KINDS: dict[str, TimelineKind] = {
    "incident.triggered": TimelineKind.TRIGGERED,
    "incident.acknowledged": TimelineKind.ACKNOWLEDGED,
    "incident.unacknowledged": TimelineKind.UNACKNOWLEDGED,
    "incident.escalated": TimelineKind.ESCALATED,
    "incident.delegated": TimelineKind.REASSIGNED,
    "incident.reassigned": TimelineKind.REASSIGNED,
    "incident.service_updated": TimelineKind.REASSIGNED,
    "incident.priority_updated": TimelineKind.PRIORITY_CHANGED,
    "incident.annotated": TimelineKind.NOTE,
    "incident.status_update_published": TimelineKind.STATUS_UPDATE,
    "incident.resolved": TimelineKind.RESOLVED,
    "incident.reopened": TimelineKind.REOPENED,
    "incident.responder.added": TimelineKind.RESPONDER_ADDED,
    "incident.custom_field_values.updated": TimelineKind.TAGS_CHANGED,
}

_HEX = re.compile(r"[0-9a-fA-F]+")


def verify_signature(*, secrets: Sequence[str], body: bytes, header: str | None) -> bool:
    """True when any `v1=` entry of the header is the HMAC-SHA256 of the raw body under any usable secret."""
    if isinstance(secrets, str):
        # A bare string is a Sequence[str] of one-character "secrets": trivially forgeable, so refuse loudly.
        raise TypeError("secrets must be a list of secrets, not a single string")
    # An empty key is public knowledge: a signature under it proves nothing.
    keys = [s.encode("utf-8") for s in secrets if s.strip()]
    if not keys or not header:
        return False
    candidates: list[bytes] = []
    for entry in header.split(","):
        entry = entry.strip()  # PagerDuty sends no spaces; tolerating them costs no security
        if not entry.startswith("v1="):
            continue
        hexpart = entry[3:]
        # The official verifier skips undecodable entries instead of failing the request.
        if _HEX.fullmatch(hexpart) and len(hexpart) % 2 == 0:
            candidates.append(bytes.fromhex(hexpart))
    matched = False
    for key in keys:
        digest = hmac.new(key, body, hashlib.sha256).digest()
        for candidate in candidates:
            # No early exit: keep the work independent of which entry matched.
            matched |= hmac.compare_digest(digest, candidate)
    return matched


def parse(body: bytes) -> AlertEvent:
    """Parse one v3 webhook body. Raises PayloadError naming the problem; unknown event types come back ignored."""
    doc = load_object(body)
    if "messages" in doc:
        raise PayloadError("PagerDuty v2/v1 webhook bodies are not supported; create a v3 webhook subscription")
    event = doc.get("event")
    if event is None:
        raise PayloadError("event is missing")
    if not isinstance(event, dict):
        raise PayloadError(f"event must be an object, got {json_type(event)}")
    event_id = _required_str(event, "id", "event.id")
    event_type = _required_str(event, "event_type", "event.event_type")
    data = event.get("data")
    kind = _KINDS.get(event_type)
    actor, actor_type = _actor(event.get("agent"))
    extra: dict[str, Any] = {}
    if actor_type is not None:
        extra["actor_type"] = actor_type

    if kind is None:
        # Must still answer 2xx (§3.12): take what is cleanly there, never fail on the rest.
        incident_id = _incident_id(data) if isinstance(data, dict) else None
        if incident_id is not None:
            extra["incident_id"] = incident_id
        return AlertEvent(
            source="pagerduty",
            event_id=event_id,
            event_type=event_type,
            incident_external_id=None,
            kind=None,
            at=_parse_time(event.get("occurred_at")),
            actor=actor,
            extra=extra,
        )

    if not isinstance(data, dict):
        raise PayloadError("event.data is missing" if data is None else "event.data must be an object")
    occurred_at = event.get("occurred_at")
    if occurred_at is None:
        raise PayloadError("event.occurred_at is missing")
    at = _parse_time(occurred_at)
    if at is None:
        # repr only of strings: str() of a deeply nested value could itself blow the recursion limit.
        got = repr(occurred_at[:40]) if isinstance(occurred_at, str) else f"a JSON {json_type(occurred_at)}"
        raise PayloadError(f"event.occurred_at is not an ISO-8601 date-time: got {got}")
    incident_id = _incident_id(data)
    if incident_id is None:
        where = "event.data.id" if data.get("type") == "incident" else "event.data.incident.id"
        raise PayloadError(f"{where} is missing")

    snapshot = _snapshot(data)
    if (status := _s(data, "status")) is not None:
        extra["status"] = status  # the incident's status after this event, as PagerDuty reports it
    if isinstance(number := data.get("number"), int) and not isinstance(number, bool):
        extra["number"] = number
    if data.get("trimmed") is True:
        extra["trimmed"] = True  # PagerDuty cut the note/status text; the full text is only in the REST API
    return AlertEvent(
        source="pagerduty",
        event_id=event_id,
        event_type=event_type,
        incident_external_id=incident_id,
        kind=kind,
        at=at,
        actor=actor,
        text=_text(event_type, data, actor, snapshot),
        snapshot=snapshot,
        extra=extra,
    )


def _required_str(obj: dict[str, Any], key: str, name: str) -> str:
    value = obj.get(key)
    if value is None:
        raise PayloadError(f"{name} is missing")
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{name} must be a non-empty string")
    return value


def _s(obj: object, *path: str) -> str | None:
    """The non-empty string at `path`, or None when any step is absent or of another type."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, str) and obj else None


def _parse_time(value: object) -> datetime | None:
    # No offset never happens in PagerDuty's documented payloads; UTC is the only sane reading.
    return parse_time(value, naive_is_utc=True)


def _incident_id(data: dict[str, Any]) -> str | None:
    # PagerDuty's own rule (§1.3): the incident is `data` itself only when data.type says so.
    if data.get("type") == "incident":
        return _s(data, "id")
    return _s(data, "incident", "id")


def _actor(agent: object) -> tuple[str | None, str | None]:
    """(display name, reference type) of event.agent; null means automation, so no actor."""
    if not isinstance(agent, dict):
        return None, None
    # Only user_reference is documented; any other reference kind still names itself in `summary`, and its
    # type goes to extra["actor_type"] so the app can tell a person from automation.
    return _s(agent, "summary"), _s(agent, "type")


def _names(refs: object) -> list[str]:
    if not isinstance(refs, list):
        return []
    return [name for ref in refs if (name := _s(ref, "summary")) is not None]


def custom_field_tags(data: dict[str, Any]) -> tuple[str, ...]:
    """`incident_field_values` as tags `name:value` (one per value of a multi-value field; unset fields none).

    custom_fields holds every field; changed_custom_fields the ones this event changed, whose values win (PagerDuty's
    own example shows the two disagreeing on a changed field).
    """
    values: dict[str, list[str]] = {}
    for key in ("custom_fields", "changed_custom_fields"):
        fields = data.get(key)
        for field in fields if isinstance(fields, list) else []:
            name = _s(field, "name")
            if name is None:
                continue
            value = field.get("value")
            items = value if isinstance(value, list) else [value]
            values[name] = [text for item in items if (text := _scalar(item)) is not None]
    return tuple(f"{name}:{v}" for name, vs in values.items() for v in vs)


def _scalar(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None  # null, or an object: nothing a tag can hold


def _snapshot(data: dict[str, Any]) -> IncidentSnapshot:
    if data.get("type") == "incident_field_values":
        tags = custom_field_tags(data)
        return IncidentSnapshot(title=_s(data, "incident", "summary"), url=_s(data, "incident", "html_url"), tags=tags)
    if data.get("type") != "incident":
        # Notes, status updates, responders: only the incident reference is there.
        return IncidentSnapshot(title=_s(data, "incident", "summary"), url=_s(data, "incident", "html_url"))
    teams = _names(data.get("teams"))
    return IncidentSnapshot(
        title=_s(data, "title"),
        service=_s(data, "service", "summary"),
        team=teams[0] if teams else None,
        priority=_s(data, "priority", "summary"),
        urgency=_s(data, "urgency"),
        url=_s(data, "html_url"),
        dedup_key=_s(data, "incident_key"),  # absent in 2021-era payloads
        created_at=_parse_time(data.get("created_at")),
    )


def _by(verb: str, actor: str | None) -> str:
    return f"{verb} by {actor}" if actor else verb


def _text(event_type: str, data: dict[str, Any], actor: str | None, snap: IncidentSnapshot) -> str | None:
    assignees = ", ".join(_names(data.get("assignees")))
    match event_type:
        case "incident.triggered":
            where = f"Triggered on {snap.service}" if snap.service else "Triggered"
            return f"{where}, assigned to {assignees}" if assignees else where
        case "incident.acknowledged":
            return _by("Acknowledged", actor)
        case "incident.unacknowledged":
            return _by("Unacknowledged", actor)
        case "incident.escalated":
            return f"Escalated to {assignees}" if assignees else "Escalated"
        case "incident.delegated":
            policy = _s(data, "escalation_policy", "summary")
            return f"Reassigned to escalation policy {policy}" if policy else "Reassigned to another escalation policy"
        case "incident.reassigned":
            return f"Reassigned to {assignees}" if assignees else "Reassigned"
        case "incident.service_updated":
            return f"Moved to service {snap.service}" if snap.service else "Moved to another service"
        case "incident.priority_updated":
            return f"Priority changed to {snap.priority}" if snap.priority else "Priority removed"
        case "incident.annotated":
            return _s(data, "content")
        case "incident.status_update_published":
            return _s(data, "message")
        case "incident.resolved":
            reason = _s(data, "resolve_reason")
            return _by("Resolved", actor) + (f" ({reason})" if reason else "")
        case "incident.reopened":
            return _by("Reopened", actor)
        case "incident.custom_field_values.updated":
            changed = data.get("changed_custom_fields")
            names = [n for f in changed if (n := _s(f, "name"))] if isinstance(changed, list) else []
            return f"Custom fields changed: {', '.join(names)}" if names else "Custom fields changed"
        case "incident.responder.added":
            who = _s(data, "user", "summary") or _s(data, "escalation_policy", "summary")
            text = f"Responder requested: {who}" if who else "Responder requested"
            message = _s(data, "message")
            return f"{text} ({message})" if message else text
    return None
