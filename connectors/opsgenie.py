"""Opsgenie (and JSM) outgoing Webhook: check the shared-secret header and parse one action into an AlertEvent.

Opsgenie signs nothing, so a secret custom header is the only proof of origin. Facts: shared/ALERT_SOURCES.md §2, §3.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.events import AlertEvent, IncidentSnapshot, PayloadError, TimelineKind, load_object

_KINDS: dict[str, TimelineKind] = {
    "Create": TimelineKind.TRIGGERED,
    "Acknowledge": TimelineKind.ACKNOWLEDGED,
    "UnAcknowledge": TimelineKind.UNACKNOWLEDGED,
    "Close": TimelineKind.RESOLVED,
    "Escalate": TimelineKind.ESCALATED,
    "EscalateNext": TimelineKind.ESCALATED,
    "AssignOwnership": TimelineKind.REASSIGNED,
    "TakeOwnership": TimelineKind.REASSIGNED,
    "AddTeam": TimelineKind.REASSIGNED,
    "AddRecipient": TimelineKind.RESPONDER_ADDED,
    "AddResponder": TimelineKind.RESPONDER_ADDED,
    "AddNote": TimelineKind.NOTE,
    "UpdatePriority": TimelineKind.PRIORITY_CHANGED,
    "AddTags": TimelineKind.TAGS_CHANGED,
    "RemoveTags": TimelineKind.TAGS_CHANGED,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: str.isdigit() also accepts "²", which int() rejects
# Alert ids since ~2020 are "<uuid>-<createdAt ms>" (§2.4); older ones are a bare UUID.
_ID_WITH_MS = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}-([0-9]{10,15})")


def verify_token(*, expected: str | None, header_token: str | None, basic_password: str | None) -> bool:
    """True when `X-Aftermath-Token` equals `expected`, or HTTP Basic carries it as the password (any user)."""
    if not expected:
        return False  # an unset secret must never let an empty or missing header through
    # surrogatepass: a lone surrogate in a header must give False, not a UnicodeEncodeError.
    secret = expected.encode("utf-8", "surrogatepass")
    return any(
        given is not None and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret)
        for given in (header_token, basic_password)
    )


def parse(body: bytes) -> AlertEvent:
    """Parse one webhook body. Raises PayloadError naming the problem; unused actions come back ignored."""
    doc = load_object(body)
    action = doc.get("action")
    if action is None:
        raise PayloadError("action is missing")
    if not isinstance(action, str) or not action:
        raise PayloadError("action must be a non-empty string")
    alert = doc.get("alert")
    if alert is None:
        raise PayloadError("alert is missing")
    if not isinstance(alert, dict):
        raise PayloadError("alert must be an object")
    alert_id = alert.get("alertId")
    if alert_id is None:
        raise PayloadError("alert.alertId is missing")
    if not isinstance(alert_id, str) or not alert_id:
        raise PayloadError("alert.alertId must be a non-empty string")

    # Opsgenie sends no event id; this composite key is the documented workaround (§2.6).
    integration = _s(doc, "integrationId") or ""
    kind = _KINDS.get(action)
    extra: dict[str, Any] = {}
    if (name := _s(doc, "integrationName")) is not None:
        extra["integration_name"] = name
    if (tiny_id := _s(alert, "tinyId")) is not None:
        extra["tiny_id"] = tiny_id

    if action == "Escalate":
        escalation_id = _s(doc, "escalationId")
        repeat = _int(doc.get("repeatCount"))
        if escalation_id is not None:
            event_id = f"{integration}:{alert_id}:Escalate:{escalation_id}:{repeat if repeat is not None else 0}"
        else:
            event_id = f"{integration}:{alert_id}:Escalate:sha256:{_digest(body)}"
        at = _escalation_time(alert_id, doc.get("escalationTime"))
        if at is not None:
            extra["at_estimated"] = True  # alert creation + escalation delay, not when it actually fired
        if repeat:
            extra["repeat_count"] = repeat
        return AlertEvent(
            source="opsgenie",
            event_id=event_id,
            event_type=action,
            incident_external_id=alert_id,
            kind=kind,
            at=at,
            actor=None,  # the escalation engine acted, not a person; escalationNotify is the target
            text=_escalation_text(doc),
            extra=extra,
        )

    updated_raw = alert.get("updatedAt")
    updated_ns = _int(updated_raw)
    at = _from_ns(updated_ns)
    if at is None:
        updated_ns = None
        # A used action with a broken clock is refused; an ignored one must still get its 2xx (§3.12).
        if updated_raw is not None and kind is not None:
            raise PayloadError("alert.updatedAt must be an integer count of epoch nanoseconds")
    if updated_ns is not None:
        event_id = f"{integration}:{alert_id}:{action}:{updated_ns}"
        extra["updated_at_ns"] = updated_ns
    else:
        # No timestamp: a body hash still dedupes identical redeliveries without merging distinct events.
        event_id = f"{integration}:{alert_id}:{action}:sha256:{_digest(body)}"
    if kind is None:
        extra["incident_id"] = alert_id
    if action == "AddTeam" and (added := _s(alert, "team")) is not None:
        extra["added_team"] = added
    if action == "Create" and (description := _s(alert, "description")) is not None:
        extra["description"] = description  # only sent when "Add Alert Description to Payload" is on

    actor = _s(alert, "username")
    return AlertEvent(
        source="opsgenie",
        event_id=event_id,
        event_type=action,
        incident_external_id=alert_id if kind is not None else None,
        kind=kind,
        at=at,
        actor=actor if kind is not None else None,
        text=_text(action, alert, actor),
        snapshot=_snapshot(action, doc, alert, alert_id) if kind is not None else IncidentSnapshot(),
        extra=extra,
    )


def normalize_priority(value: object) -> str | None:
    """A priority label: "P1".."P5" and other text pass through; int n or digit string "n" become "Pn".

    Blank text, booleans, lists and objects give None.
    Mapping int n to Pn is an ASSUMPTION: 2017 payloads sent ints, and no source says what they meant.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"P{value}"
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,3}", value):
        return f"P{int(value)}"
    # A list or object is no label; str() of a deeply nested one could also exceed the recursion limit.
    return str(value) if isinstance(value, str | float) else None


def _s(obj: object, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    """An int, or a string of ASCII digits; never via float, which cannot hold 19-digit nanoseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


def _from_ns(ns: int | None) -> datetime | None:
    if ns is None:
        return None
    try:
        # Integer microseconds (floor): exact, unlike datetime.fromtimestamp(ns / 1e9).
        return _EPOCH + timedelta(microseconds=ns // 1000)
    except OverflowError:
        return None


def _from_ms(ms: int | None) -> datetime | None:
    return _from_ns(ms * 1_000_000) if ms is not None else None


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:32]


def _escalation_time(alert_id: str, minutes_raw: object) -> datetime | None:
    # Escalate carries no timestamp; estimate from the creation ms in the id plus the escalation delay.
    match = _ID_WITH_MS.fullmatch(alert_id)
    minutes = _int(minutes_raw)
    created = _from_ms(int(match.group(1))) if match else None
    if created is None or minutes is None:
        return None
    try:
        return created + timedelta(minutes=minutes)
    except OverflowError:
        return None


def _escalation_text(doc: dict[str, Any]) -> str:
    target = _s(doc.get("escalationNotify"), "name")
    policy = _s(doc, "escalationName")
    text = "Escalated" + (f" to {target}" if target else "") + (f" via {policy}" if policy else "")
    repeat = _int(doc.get("repeatCount"))
    return f"{text} (repeat {repeat})" if repeat else text


def _text(action: str, alert: dict[str, Any], actor: str | None) -> str | None:
    by = f" by {actor}" if actor else ""
    match action:
        case "Create":
            return _s(alert, "message")
        case "Acknowledge":
            return f"Acknowledged{by}"
        case "UnAcknowledge":
            return f"Unacknowledged{by}"
        case "Close":
            return f"Closed{by}"
        case "EscalateNext":
            return f"Escalated to the next level{by}"
        case "AssignOwnership":
            owner = _s(alert, "owner")
            return f"Ownership assigned to {owner}{by}" if owner else f"Ownership assigned{by}"
        case "TakeOwnership":
            return f"Ownership taken by {actor}" if actor else "Ownership taken"
        case "AddTeam":
            team = _s(alert, "team")
            return f"Team {team} added{by}" if team else f"Team added{by}"
        case "AddRecipient" | "AddResponder":
            who = _s(alert, "recipient") or _s(alert, "responder")
            return f"Responder {who} added{by}" if who else f"Responder added{by}"
        case "AddNote":
            return _s(alert, "note")
        case "AddTags" | "RemoveTags":
            verb, key = ("added", "addedTags") if action == "AddTags" else ("removed", "removedTags")
            listed = ", ".join(_tag_list(alert.get(key)))
            return f"Tags {verb}: {listed}{by}" if listed else f"Tags {verb}{by}"
        case "UpdatePriority":
            new = normalize_priority(alert.get("priority"))
            old = normalize_priority(alert.get("oldPriority"))
            if new and old:
                return f"Priority {old} → {new}"
            return f"Priority changed to {new}" if new else "Priority changed"
    return None


def _tag_list(value: object) -> list[str]:
    """Tags from a list of strings or a comma-separated string (addedTags/removedTags are sent as one string)."""
    parts = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    seen: list[str] = []
    for part in parts:
        tag = part.strip() if isinstance(part, str) else ""
        if tag and tag not in seen:
            seen.append(tag)
    return seen


def _snapshot(action: str, doc: dict[str, Any], alert: dict[str, Any], alert_id: str) -> IncidentSnapshot:
    alias = _s(alert, "alias")
    tags = alert.get("tags")
    added = _tag_list(alert.get("addedTags")) if action == "AddTags" else []
    removed = _tag_list(alert.get("removedTags")) if action == "RemoveTags" else []
    return IncidentSnapshot(
        title=_s(alert, "message"),
        # Not alert.source nor the top-level source: they name the sender (often an IP address), not a service. The
        # mappings pick the service among integration, tags, details.service and entity.
        service=None,
        # On AddTeam `team` is the team just added, not the owner team (§3.10).
        team=None if action == "AddTeam" else _s(alert, "team"),
        priority=normalize_priority(alert.get("priority")),
        url=None,
        # "-" and alias == alertId mean no caller-chosen dedup key was given.
        dedup_key=alias if alias not in (None, "-", alert_id) else None,
        created_at=_from_ms(_int(alert.get("createdAt"))),
        tags=tuple(_tag_list(tags)) if isinstance(tags, list) else None,
        tags_added=tuple(added) or None,
        tags_removed=tuple(removed) or None,
        integration=_s(doc, "integrationName"),
        entity=_s(alert, "entity"),
        details_service=_s(alert.get("details"), "service"),
    )
