"""PagerDuty v3: signature vectors, every sample, hand-made variations and property tests on damaged input."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.events import AlertEvent, PayloadError
from connectors.pagerduty import parse, verify_signature
from tests.connectors.fuzzing import ANY_TEXT, FUZZ, mutated, odd_values, parse_at_depth, parses
from tests.helpers import PAYLOADS

INCIDENT_ID = "Q1VZ8M2KX4TB7N"


def _sample_files() -> list[Any]:
    paths = sorted((PAYLOADS / "pagerduty").glob("*.json"))
    assert paths, f"no samples in {PAYLOADS}"  # an empty parameter set would only skip
    return [pytest.param(p, id=p.name) for p in paths]


def _signatures() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((PAYLOADS / "signatures.json").read_bytes())
    return result


def _sign(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _event(event_type: str = "incident.triggered", **data: Any) -> dict[str, Any]:
    """A minimal valid v3 incident event; keyword arguments override `data` keys (None deletes one)."""
    base: dict[str, Any] = {
        "id": "Q3B15VLMF3ASBD",
        "type": "incident",
        "html_url": "https://x.pagerduty.com/incidents/Q3B15VLMF3ASBD",
        "number": 7,
        "status": "triggered",
        "incident_key": "dedup-1",
        "created_at": "2026-03-14T02:07:30Z",
        "title": "Disk full on db-1",
        "service": {"id": "PSVC1", "type": "service_reference", "summary": "Orders DB"},
        "assignees": [{"id": "PU1", "type": "user_reference", "summary": "Bob Okafor"}],
        "escalation_policy": {"id": "PEP1", "type": "escalation_policy_reference", "summary": "DB On-Call"},
        "teams": [{"id": "PT1", "type": "team_reference", "summary": "Data SRE"}],
        "priority": None,
        "urgency": "high",
    }
    for key, value in data.items():
        if value is None and key != "priority":
            base.pop(key, None)
        else:
            base[key] = value
    return {
        "event": {
            "id": "01GI0KTE33V5QXBVIJDEVJFUNE",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": "2026-03-14T02:10:00.123Z",
            "agent": {"id": "PU2", "type": "user_reference", "summary": "Alice Nguyen"},
            "client": None,
            "data": base,
        }
    }


def _child_event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    doc = _event(event_type)
    doc["event"]["data"] = {
        "incident": {
            "id": "PGR0VU2",
            "type": "incident_reference",
            "html_url": "https://x.pagerduty.com/incidents/PGR0VU2",
            "summary": "Disk full on db-1",
        },
        **data,
    }
    return doc


def _parse(doc: object) -> AlertEvent:
    return parse(json.dumps(doc).encode("utf-8"))


# --- signatures ---------------------------------------------------------------------------------------------


def test_signature_vectors_valid() -> None:
    for vector in _signatures()["vectors"]:
        body = vector["body"].encode("utf-8")
        assert hashlib.sha256(body).hexdigest() == vector["body_sha256"], vector["name"]
        secrets = vector.get("secrets_active_at_sender") or [vector["secret"]]
        header = vector["expected_header"]
        assert header == ",".join(_sign(s, body) for s in secrets), vector["name"]
        assert verify_signature(secrets=secrets, body=body, header=header), vector["name"]
        for secret in secrets:  # rotation: either secret alone verifies, whichever entry it matches
            assert verify_signature(secrets=[secret], body=body, header=header), (vector["name"], secret)
        if "verifier_secret" in vector:
            assert verify_signature(secrets=[vector["verifier_secret"]], body=body, header=header)


def test_signature_vectors_negative() -> None:
    for vector in _signatures()["negative_vectors"]:
        body = vector["body"].encode("utf-8")
        result = verify_signature(secrets=[vector["secret"]], body=body, header=vector["header"])
        if vector["valid"] == "implementation-defined":
            # Decision: entries are stripped, so a space after the comma is tolerated.
            assert vector["name"] == "space_after_comma"
            assert result is True
        else:
            assert result is False, vector["name"]


def test_signature_rotation_verifier_holding_several_secrets() -> None:
    body = b'{"event":{}}'
    header = _sign("new-secret", body)
    assert verify_signature(secrets=["old-secret", "new-secret"], body=body, header=header)
    assert not verify_signature(secrets=["old-secret", "third"], body=body, header=header)


@pytest.mark.parametrize("path", _sample_files())
def test_signature_over_sample_file_bytes(path: Path) -> None:
    body = path.read_bytes()
    header = _sign("test-secret-ü", body)
    assert verify_signature(secrets=["test-secret-ü"], body=body, header=header)
    assert not verify_signature(secrets=["test-secret-ü"], body=body + b"\n", header=header)


def test_signature_edge_cases() -> None:
    body = b'{"event":{"id":"x"}}'
    good = _sign("s3cret", body)
    hexpart = good[3:]
    assert not verify_signature(secrets=[], body=body, header=good)
    assert not verify_signature(secrets=["s3cret"], body=body, header=None)
    assert not verify_signature(secrets=["s3cret"], body=body, header="")
    # An empty (or blank) secret must never verify, even against a correct HMAC under the empty key.
    for blank in ("", "   "):
        forged = _sign(blank, body)
        assert not verify_signature(secrets=[blank], body=body, header=forged)
        assert not verify_signature(secrets=[blank, "other"], body=body, header=forged)
    # Non-v1 and non-hex entries are skipped, not fatal.
    for junk in ("v0=abc", "v1=zz", "v1=", "v1=abc", "garbage", "v1=ab cd", "V1=" + hexpart, "v1=" + hexpart[:-1]):
        assert verify_signature(secrets=["s3cret"], body=body, header=f"{junk},{good}"), junk
        assert not verify_signature(secrets=["s3cret"], body=body, header=junk), junk
    assert verify_signature(secrets=["s3cret"], body=body, header=f"  {good}  ,v2=00")
    assert verify_signature(secrets=["s3cret"], body=body, header="v1=" + hexpart.upper())
    assert not verify_signature(secrets=["s3cret"], body=body, header="v1=✅" + hexpart)
    assert not verify_signature(secrets=["S3CRET"], body=body, header=good)


def test_signature_refuses_bare_string_secrets() -> None:
    with pytest.raises(TypeError):
        verify_signature(secrets="s3cret", body=b"{}", header="v1=00")


# --- samples --------------------------------------------------------------------------------------------------

EXPECTED: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    # file: (kind, actor, text, priority)
    "incA_01_triggered.json": ("triggered", None, "Triggered on Checkout API, assigned to Alice Nguyen", None),
    "incA_02_acknowledged.json": ("acknowledged", "Alice Nguyen", "Acknowledged by Alice Nguyen", None),
    "incA_03_priority_updated.json": ("priority_changed", "Alice Nguyen", "Priority changed to P1", "P1"),
    "incA_04_annotated.json": ("note", "Alice Nguyen", "Rolled back checkout-api to v2026.03.13-2;", None),
    "incA_05_status_update_published.json": ("status_update", "Alice Nguyen", "Checkout latency elevated", None),
    "incA_06_resolved.json": ("resolved", "Bob Okafor", "Resolved by Bob Okafor", "P1"),
    "incA_07_reopened.json": ("reopened", "Alice Nguyen", "Reopened by Alice Nguyen", "P1"),
    "incA_08_resolved_again.json": ("resolved", "Alice Nguyen", "Resolved by Alice Nguyen", "P1"),
    "ping_pagey.json": (None, None, None, None),
}


@pytest.mark.parametrize("path", _sample_files())
def test_sample(path: Path) -> None:
    event = parse(path.read_bytes())
    raw = json.loads(path.read_bytes())["event"]
    kind, actor, text, priority = EXPECTED[path.name]
    assert event.source == "pagerduty"
    assert event.event_id == raw["id"]
    assert event.event_type == raw["event_type"]
    assert event.kind == kind
    assert event.actor == actor
    assert event.at is not None and event.at.utcoffset() == timedelta(0)
    assert event.at == datetime.fromisoformat(raw["occurred_at"])
    if kind is None:
        assert event.ignored and event.incident_external_id is None and event.text is None
        return
    assert event.incident_external_id == INCIDENT_ID
    assert event.text is not None and text is not None and event.text.startswith(text)
    assert event.snapshot.title == "Checkout API p99 latency > 2s (us-east-1) \u2013 payment timeouts"
    assert event.snapshot.url == "https://acme-retail.pagerduty.com/incidents/Q1VZ8M2KX4TB7N"
    if raw["data"]["type"] == "incident":
        assert event.snapshot.priority == priority
        assert event.snapshot.service == "Checkout API"
        assert event.snapshot.team == "Payments SRE"
        assert event.snapshot.urgency == "high"
        assert event.snapshot.dedup_key == "3f9c2a71e4b84d0c9e57a6b1d2c8f045"
        assert event.snapshot.created_at == datetime(2026, 3, 14, 9, 12, 4, tzinfo=UTC)


def test_samples_lifecycle_times_increase() -> None:
    folder = PAYLOADS / "pagerduty"
    times = [parse(p.read_bytes()).at for p in sorted(folder.glob("incA_*.json"))]
    assert len(times) == 8
    assert all(a is not None and b is not None and a < b for a, b in itertools.pairwise(times))


# --- variations ----------------------------------------------------------------------------------------------


def test_priority_null_and_priority_removed() -> None:
    event = _parse(_event("incident.priority_updated", priority=None))
    assert event.snapshot.priority is None
    assert event.kind == "priority_changed" and event.text == "Priority removed"
    custom = {"id": "PP", "type": "priority_reference", "summary": "SEV-1"}
    event = _parse(_event("incident.priority_updated", priority=custom))
    assert event.snapshot.priority == "SEV-1" and event.text == "Priority changed to SEV-1"


def test_agent_null_and_other_agent_types() -> None:
    doc = _event("incident.unacknowledged")
    doc["event"]["agent"] = None
    event = _parse(doc)
    assert event.actor is None and event.text == "Unacknowledged" and "actor_type" not in event.extra
    doc["event"]["agent"] = {"id": "PS1", "type": "service_reference", "summary": "Orders DB"}
    event = _parse(doc)
    assert event.actor == "Orders DB" and event.extra["actor_type"] == "service_reference"
    doc["event"]["agent"] = {"type": "user_reference"}
    assert _parse(doc).actor is None
    del doc["event"]["agent"]
    assert _parse(doc).actor is None


def test_2021_style_payload_and_legacy_id() -> None:
    doc = _event("incident.triggered", id="PGR0VU2", incident_key=None, created_at=None, teams=[], assignees=[])
    event = _parse(doc)
    assert event.incident_external_id == "PGR0VU2"
    assert event.snapshot.dedup_key is None and event.snapshot.created_at is None
    assert event.snapshot.team is None
    assert event.text == "Triggered on Orders DB"


@pytest.mark.parametrize(
    ("event_type", "kind", "text"),
    [
        ("incident.triggered", "triggered", "Triggered on Orders DB, assigned to Bob Okafor"),
        ("incident.acknowledged", "acknowledged", "Acknowledged by Alice Nguyen"),
        ("incident.unacknowledged", "unacknowledged", "Unacknowledged by Alice Nguyen"),
        ("incident.escalated", "escalated", "Escalated to Bob Okafor"),
        ("incident.delegated", "reassigned", "Reassigned to escalation policy DB On-Call"),
        ("incident.reassigned", "reassigned", "Reassigned to Bob Okafor"),
        ("incident.service_updated", "reassigned", "Moved to service Orders DB"),
        ("incident.priority_updated", "priority_changed", "Priority removed"),
        ("incident.resolved", "resolved", "Resolved by Alice Nguyen"),
        ("incident.reopened", "reopened", "Reopened by Alice Nguyen"),
    ],
)
def test_incident_event_kinds(event_type: str, kind: str, text: str) -> None:
    event = _parse(_event(event_type))
    assert (event.kind, event.text) == (kind, text)
    assert event.incident_external_id == "Q3B15VLMF3ASBD"
    assert event.at == datetime(2026, 3, 14, 2, 10, 0, 123000, tzinfo=UTC)
    assert event.extra["status"] == "triggered" and event.extra["number"] == 7


def test_resolved_merged() -> None:
    assert _parse(_event("incident.resolved", resolve_reason="merged")).text == "Resolved by Alice Nguyen (merged)"


def test_note_unicode_and_trimmed() -> None:
    content = "Failover done ✅ — lag 0 s; 日本語メモ; emoji 🔥"
    doc = _child_event(
        "incident.annotated", {"id": "PN1", "content": content, "trimmed": True, "type": "incident_note"}
    )
    for body in (json.dumps(doc).encode("utf-8"), json.dumps(doc, ensure_ascii=False).encode("utf-8")):
        event = parse(body)
        assert event.kind == "note" and event.text == content
        assert event.incident_external_id == "PGR0VU2"
        assert event.snapshot.title == "Disk full on db-1" and event.snapshot.service is None
        assert event.extra["trimmed"] is True


def test_status_update_and_responder() -> None:
    doc = _child_event("incident.status_update_published", {"id": "S1", "message": "All good", "type": "x"})
    event = _parse(doc)
    assert (event.kind, event.text) == ("status_update", "All good")
    responder = {
        "user": {"id": "PU9", "type": "user_reference", "summary": "Carol Diaz"},
        "message": "Please help",
        "state": "pending",
        "type": "incident_responder",
    }
    event = _parse(_child_event("incident.responder.added", responder))
    assert (event.kind, event.text) == ("responder_added", "Responder requested: Carol Diaz (Please help)")
    event = _parse(_child_event("incident.responder.added", {"type": "incident_responder"}))
    assert event.text == "Responder requested"


def test_child_without_incident_summary() -> None:
    doc = _child_event("incident.annotated", {"content": "hi", "type": "incident_note"})
    doc["event"]["data"]["incident"]["summary"] = None
    event = _parse(doc)
    assert event.snapshot.title is None and event.text == "hi"


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-03-14T02:10:00.123Z", datetime(2026, 3, 14, 2, 10, 0, 123000, tzinfo=UTC)),
        ("2026-03-14T02:10:00Z", datetime(2026, 3, 14, 2, 10, tzinfo=UTC)),
        ("2026-03-14T04:10:00.5+02:00", datetime(2026, 3, 14, 2, 10, 0, 500000, tzinfo=UTC)),
        ("2026-03-13T21:10:00-0500", datetime(2026, 3, 14, 2, 10, tzinfo=UTC)),
        ("2026-03-14T02:10:00.123456789Z", datetime(2026, 3, 14, 2, 10, 0, 123456, tzinfo=UTC)),
        ("2026-03-14T02:10:00", datetime(2026, 3, 14, 2, 10, tzinfo=UTC)),  # no offset: read as UTC
    ],
)
def test_occurred_at_formats(stamp: str, expected: datetime) -> None:
    doc = _event()
    doc["event"]["occurred_at"] = stamp
    at = _parse(doc).at
    assert at == expected and at is not None and at.tzinfo is UTC


@pytest.mark.parametrize(
    "stamp",
    [
        "yesterday",
        "2026-03-14",
        "2026-W11-1T10:00:00Z",
        "2026-13-14T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # valid ISO, but before datetime.min once moved to UTC
        "9999-12-31T23:59:59-01:00",
        1710000000,
        None,
        "",
    ],
)
def test_bad_occurred_at(stamp: object) -> None:
    doc = _event("incident.acknowledged")
    doc["event"]["occurred_at"] = stamp
    with pytest.raises(PayloadError, match="occurred_at"):
        _parse(doc)
    doc["event"]["event_type"] = "incident.workflow.started"  # ignored events never fail on it
    assert _parse(doc).at is None


def test_created_at_with_offset_is_converted() -> None:
    created = _parse(_event(created_at="2026-03-14T03:07:30+01:00")).snapshot.created_at
    assert created == datetime(2026, 3, 14, 2, 7, 30, tzinfo=UTC)
    assert _parse(_event(created_at="bad")).snapshot.created_at is None
    assert datetime(2026, 3, 14, 2, 7, 30, tzinfo=timezone(timedelta(hours=1))) != created


@pytest.mark.parametrize(
    "event_type",
    [
        "pagey.ping",
        "service.updated",
        "service.created",
        "incident.responder.replied",
        "incident.incident_type.changed",
        "incident.workflow.started",
        "incident.role.assigned",
        "incident.some_future_early_access_thing",
    ],
)
def test_unknown_types_are_ignored(event_type: str) -> None:
    for data in ({"message": "Hello from your friend Pagey!", "type": "ping"}, 3, None, {"incident": "x"}):
        doc = _event(event_type)
        doc["event"]["data"] = data
        event = _parse(doc)
        assert event.ignored and event.kind is None and event.event_type == event_type
        assert event.incident_external_id is None and event.event_id == "01GI0KTE33V5QXBVIJDEVJFUNE"


def test_ignored_event_keeps_incident_id_in_extra() -> None:
    event = _parse(_child_event("incident.task.created", {"type": "incident_task"}))
    assert event.ignored and event.extra["incident_id"] == "PGR0VU2"


def test_ping_still_requires_event_id() -> None:
    doc = {"event": {"event_type": "pagey.ping", "data": {"type": "ping"}}}
    with pytest.raises(PayloadError, match=r"event\.id is missing"):
        _parse(doc)


def test_v2_messages_body_refused() -> None:
    doc = {"messages": [{"id": "x", "event": "incident.trigger", "incident": {}}]}
    with pytest.raises(PayloadError, match="v3 webhook subscription"):
        _parse(doc)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"[]", "array"),
        (b"null", "null"),
        (b'"event"', "string"),
        (b"3", "number"),
        (b"{}", r"^event is missing$"),
        (b'{"event": 3}', "event must be an object"),
        (b'{"event": {}}', r"event\.id is missing"),
        (b'{"event": {"id": 5, "event_type": "incident.triggered"}}', r"event\.id must be"),
        (b'{"event": {"id": "", "event_type": "incident.triggered"}}', r"event\.id must be"),
        (b'{"event": {"id": "e1"}}', r"event\.event_type is missing"),
        (b'{"event": {"id": "e1", "event_type": ["x"]}}', r"event\.event_type must be"),
        (b'{"event": {"id": "e1", "event_type": "incident.acknowledged"}}', r"event\.data is missing"),
        (b'{"event": {"id": "e1", "event_type": "incident.acknowledged", "data": []}}', "data must be an object"),
    ],
)
def test_garbage_bodies(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(body)


def test_missing_incident_ids_are_named() -> None:
    doc = _event("incident.acknowledged")
    del doc["event"]["data"]["id"]
    with pytest.raises(PayloadError, match=r"event\.data\.id is missing"):
        _parse(doc)
    doc = _child_event("incident.annotated", {"content": "x", "type": "incident_note"})
    doc["event"]["data"]["incident"] = None
    with pytest.raises(PayloadError, match=r"event\.data\.incident\.id is missing"):
        _parse(doc)


# --- damage ---------------------------------------------------------------------------------------------------

NEAR_VALID: list[Any] = [
    "incident.triggered", "incident", "P1", "2026-13-45T99:99:99Z", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", {"id": 3}, {"type": "incident"}, {"summary": None}, 2**64,
]  # fmt: skip


def _seeds() -> list[dict[str, Any]]:
    seeds = [_event(t) for t in ("incident.triggered", "incident.priority_updated", "pagey.ping")]
    seeds.append(_child_event("incident.annotated", {"content": "n", "type": "incident_note"}))
    seeds.append(_child_event("incident.responder.added", {"user": {"summary": "u"}, "type": "incident_responder"}))
    seeds += [json.loads(p.read_bytes()) for p in sorted((PAYLOADS / "pagerduty").glob("*.json"))]
    return seeds


@pytest.mark.parametrize("nesting", [500, 950, 980, 990, 995, 999, 1000, 1500])
@pytest.mark.parametrize("stack", [0, 20, 200])
def test_deep_nesting_near_recursion_limit(nesting: int, stack: int) -> None:
    nest = "[" * nesting + "]" * nesting
    head = '{"event":{"id":"e","event_type":"incident.acknowledged",'
    # An array where the event time or the incident id must be is refused whether or not the JSON is readable.
    for body in (
        head + '"occurred_at":@N@,"data":{"type":"incident","id":"x"}}}',
        head + '"occurred_at":"2026-01-01T00:00:00Z","data":{"type":"incident","id":@N@}}}',
    ):
        assert parse_at_depth(parse, stack, body.replace("@N@", nest).encode()) is None
    # In the optional title it is dropped, as long as the JSON is shallow enough for the stack left to read.
    titled = head + '"occurred_at":"2026-01-01T00:00:00Z","data":{"type":"incident","id":"x","title":@N@}}}'
    event = parse_at_depth(parse, stack, titled.replace("@N@", nest).encode())
    if nesting <= 500:
        assert event is not None
    if nesting >= 1000:  # deeper than the whole recursion limit
        assert event is None
    if event is not None:
        assert (event.event_id, event.incident_external_id, event.snapshot.title) == ("e", "x", None)


def test_damaged_payloads_parse_or_raise_payload_error() -> None:
    outcomes = {True: 0, False: 0}

    @FUZZ
    @given(mutated(_seeds(), odd_values(NEAR_VALID)))
    def check(body: bytes) -> None:
        outcomes[parses(parse, body)] += 1

    check()
    # Both outcomes must be common, or the property was hardly tried on one side.
    assert outcomes[True] > 50 and outcomes[False] > 50, outcomes


@FUZZ
@given(
    secrets=st.lists(st.text(max_size=12), max_size=3),
    body=st.binary(max_size=64),
    junk=st.lists(ANY_TEXT, max_size=4),
    signed_by=st.sampled_from([None, 0, 1, 2]),
)
def test_signature_check_never_raises_and_finds_a_good_entry_among_junk(
    secrets: list[str], body: bytes, junk: list[str], signed_by: int | None
) -> None:
    usable = [s for s in secrets if s.strip()]
    good = [_sign(usable[signed_by], body)] if signed_by is not None and signed_by < len(usable) else []
    header = ",".join([*junk, *good])
    result = verify_signature(secrets=secrets, body=body, header=header)
    if good:
        assert result is True
    else:  # junk may still hold a valid entry only by astronomical chance
        assert result is False
