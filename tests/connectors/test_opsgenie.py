"""Opsgenie webhook: token check, every sample, hand-made variations and property tests on damaged input."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.events import AlertEvent, PayloadError
from connectors.opsgenie import normalize_priority, parse, verify_token
from tests.connectors.fuzzing import ANY_TEXT, FUZZ, mutated, odd_values, parse_at_depth, parses
from tests.helpers import PAYLOADS

ALERT_ID = "2b7e4c1d-9a3f-4e6b-8c2d-7f1a5e9b3c40-1775115678512"
INTEGRATION = "c3a9e1f4-7b2d-4c8e-9f06-1d5a2b7e3c84"


def _sample_files() -> list[Any]:
    paths = sorted((PAYLOADS / "opsgenie").glob("*.json"))
    assert paths, f"no samples in {PAYLOADS}"  # an empty parameter set would only skip
    return [pytest.param(p, id=p.name) for p in paths]


def _body(action: str = "Acknowledge", **alert: Any) -> dict[str, Any]:
    """A minimal modern action body; keyword arguments override `alert` keys (None deletes one)."""
    base: dict[str, Any] = {
        "alertId": ALERT_ID,
        "message": "Disk full on db-1",
        "tags": ["prod"],
        "tinyId": "42",
        "entity": "db-1",
        "alias": "db-1/disk",
        "createdAt": 1775115678512,
        "updatedAt": 1775116022931000000,
        "username": "bob@example.com",
        "userId": "u-1",
        "team": "Data SRE",
        "priority": "P2",
        "source": "Alertmanager",
    }
    for key, value in alert.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return {
        "action": action,
        "alert": base,
        "source": {"name": "", "type": "web"},
        "integrationName": "aftermath",
        "integrationId": INTEGRATION,
        "integrationType": "Webhook",
    }


def _escalate(alert_id: str = ALERT_ID, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "action": "Escalate",
        "alert": {"alertId": alert_id},
        "escalationId": "esc-1",
        "escalationName": "DB_escalation",
        "escalationNotify": {"id": "u-9", "name": "carol@example.com", "type": "default", "entity": "user"},
        "escalationTime": 5,
        "repeatCount": 0,
        "headers": {"X-Env": "prod"},
        "integrationId": INTEGRATION,
        "integrationName": "aftermath",
    }
    doc.update(fields)
    return doc


def _parse(doc: object) -> AlertEvent:
    return parse(json.dumps(doc).encode("utf-8"))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


# --- token ---------------------------------------------------------------------------------------------------


def test_token_header() -> None:
    assert verify_token(expected="tok-123", header_token="tok-123", basic_password=None)
    assert not verify_token(expected="tok-123", header_token="tok-124", basic_password=None)
    assert not verify_token(expected="tok-123", header_token="tok-123 ", basic_password=None)
    assert not verify_token(expected="tok-123", header_token="", basic_password=None)
    assert not verify_token(expected="tok-123", header_token=None, basic_password=None)
    assert verify_token(expected="clé-ü", header_token="clé-ü", basic_password=None)
    assert not verify_token(expected="tok", header_token="tök", basic_password=None)
    assert not verify_token(expected="tok", header_token="\ud800", basic_password=None)
    assert not verify_token(expected="\udfff", header_token="tok", basic_password="\ud800")


def test_token_unset_secret_never_passes() -> None:
    for expected in (None, ""):
        assert not verify_token(expected=expected, header_token="", basic_password=None)
        assert not verify_token(expected=expected, header_token=None, basic_password=None)
        assert not verify_token(expected=expected, header_token="x", basic_password="")
        assert not verify_token(expected=expected, header_token=None, basic_password="")


def test_token_basic_password() -> None:
    assert verify_token(expected="tok-123", header_token=None, basic_password="tok-123")
    assert verify_token(expected="tok-123", header_token="wrong", basic_password="tok-123")
    assert verify_token(expected="a:b", header_token=None, basic_password="a:b")
    assert not verify_token(expected="tok-123", header_token=None, basic_password="tok-1234")
    assert not verify_token(expected="tok-123", header_token=None, basic_password="")


# --- samples --------------------------------------------------------------------------------------------------

EXPECTED: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    # file: (kind, actor, text, snapshot priority)
    "og1_01_create.json": (
        "triggered",
        "Alertmanager",
        "[Prometheus] PaymentsAPI5xxRatio: 7.3% of requests failing (prod-eu-west-1)",
        "P2",
    ),
    "og1_02_escalate.json": (
        "escalated",
        None,
        "Escalated to bob.okafor@acme-retail.example via Payments SRE_escalation",
        None,
    ),
    "og1_03_acknowledge.json": (
        "acknowledged",
        "bob.okafor@acme-retail.example",
        "Acknowledged by bob.okafor@acme-retail.example",
        "P2",
    ),
    "og1_04_addnote.json": ("note", "bob.okafor@acme-retail.example", "Rolled back payments-api to v2026", "P2"),
    "og1_05_updatepriority.json": ("priority_changed", "alice.nguyen@acme-retail.example", "Priority P2 → P1", "P1"),
    "og1_06_addtags.json": ("tags_changed", "alice.nguyen@acme-retail.example", "Tags added: customer-impact", "P1"),
    "og1_07_close.json": ("resolved", "Alertmanager", "Closed by Alertmanager", "P1"),
}


@pytest.mark.parametrize("path", _sample_files())
def test_sample(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    event = parse(path.read_bytes())
    kind, actor, text, priority = EXPECTED[path.name]
    assert event.source == "opsgenie"
    assert event.event_type == raw["action"]
    assert (event.kind, event.actor) == (kind, actor)
    if text is None:
        assert event.text is None
    else:
        assert event.text is not None and event.text.startswith(text)
    if raw["action"] == "Escalate":
        assert event.event_id == f"{INTEGRATION}:{ALERT_ID}:Escalate:1a4d7e2b-5c8f-4b3a-9e60-7d2c1f8b4a95:0"
        # createdAt from the id suffix (1775115678512 ms) plus escalationTime 5 minutes
        assert event.at == datetime(2026, 4, 2, 7, 41, 18, 512000, tzinfo=UTC) + timedelta(minutes=5)
        assert event.extra["at_estimated"] is True
        assert event.incident_external_id == ALERT_ID
        return
    updated = raw["alert"]["updatedAt"]
    assert event.event_id == f"{INTEGRATION}:{ALERT_ID}:{raw['action']}:{updated}"
    assert event.at == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=updated // 1000)
    assert event.extra["updated_at_ns"] == updated and event.extra["tiny_id"] == "8812"
    if kind is None:
        assert event.ignored and event.incident_external_id is None
        assert event.extra["incident_id"] == ALERT_ID
        return
    assert event.incident_external_id == ALERT_ID
    snap = event.snapshot
    assert snap.title == raw["alert"]["message"]
    assert snap.service is None and snap.entity == "payments-api"  # the mappings name the service
    assert snap.team == "Payments SRE"
    assert snap.priority == priority
    assert snap.url is None and snap.urgency is None
    assert snap.dedup_key == "payments-api/5xx-ratio/prod-eu-west-1"
    assert snap.created_at == datetime(2026, 4, 2, 7, 41, 18, 512000, tzinfo=UTC)


def test_samples_event_ids_unique() -> None:
    folder = PAYLOADS / "opsgenie"
    ids = [parse(p.read_bytes()).event_id for p in sorted(folder.glob("*.json"))]
    assert len(set(ids)) == len(ids) == 7


# --- priority ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("P1", "P1"),
        ("P5", "P5"),
        (2, "P2"),  # ASSUMPTION (unconfirmed): 2017-era int n means Pn
        ("3", "P3"),
        ("03", "P3"),
        ("high", "high"),
        ("", None),
        ("  ", None),
        (True, None),
        ([1], None),
        ({"p": 1}, None),
        (1.5, "1.5"),
    ],
)
def test_priority_normalization(value: object, expected: str | None) -> None:
    assert normalize_priority(value) == expected
    assert _parse(_body("Acknowledge", priority=value)).snapshot.priority == expected  # None: key absent
    doc = _body("Acknowledge")
    doc["alert"]["priority"] = value  # and the same value sent as is (JSON null included)
    assert _parse(doc).snapshot.priority == expected


def test_update_priority_texts() -> None:
    assert _parse(_body("UpdatePriority", priority="P1", oldPriority="P3")).text == "Priority P3 → P1"
    assert _parse(_body("UpdatePriority", priority=1, oldPriority="4")).text == "Priority P4 → P1"
    assert _parse(_body("UpdatePriority", priority="P1")).text == "Priority changed to P1"
    assert _parse(_body("UpdatePriority", priority=None)).text == "Priority changed"


# --- timestamps and idempotency keys -------------------------------------------------------------------------


def test_updated_at_nanoseconds_exact_as_int_and_string() -> None:
    ns = 1775115678891234567  # above 2**53: a float would lose the last digits
    assert ns > 2**53 and int(float(ns)) != ns
    expected = datetime(2026, 4, 2, 7, 41, 18, 891234, tzinfo=UTC)  # floor to the microsecond
    as_int = _parse(_body(updatedAt=ns))
    as_str = _parse(_body(updatedAt=str(ns)))
    assert as_int.at == as_str.at == expected
    assert as_int.event_id == as_str.event_id == f"{INTEGRATION}:{ALERT_ID}:Acknowledge:{ns}"
    assert as_int.extra["updated_at_ns"] == ns and isinstance(as_str.extra["updated_at_ns"], int)
    # the raw body keeps all 19 digits and parse() reads them as int
    assert str(ns).encode() in json.dumps(_body(updatedAt=ns)).encode()


def test_created_at_milliseconds_string() -> None:
    event = _parse(_body(createdAt="1775115678512"))
    assert event.snapshot.created_at == datetime(2026, 4, 2, 7, 41, 18, 512000, tzinfo=UTC)
    assert _parse(_body(createdAt="soon")).snapshot.created_at is None
    assert _parse(_body(createdAt=None)).snapshot.created_at is None


def test_updated_at_missing_falls_back_to_body_hash() -> None:
    first = _parse(_body("AddNote", note="one", updatedAt=None))
    again = _parse(_body("AddNote", note="one", updatedAt=None))
    other = _parse(_body("AddNote", note="two", updatedAt=None))
    assert first.at is None
    assert first.event_id.startswith(f"{INTEGRATION}:{ALERT_ID}:AddNote:sha256:")
    assert first.event_id == again.event_id != other.event_id
    assert "updated_at_ns" not in first.extra


@pytest.mark.parametrize("value", ["yesterday", 1.775e18, True, [], "-5", "1" * 25, 10**40, "١٢٣"])
def test_updated_at_garbage(value: object) -> None:
    with pytest.raises(PayloadError, match="updatedAt"):
        _parse(_body("Close", updatedAt=value))
    ignored = _parse(_body("Snooze", updatedAt=value))  # unused actions must still be accepted
    assert ignored.ignored and ignored.at is None and ":Snooze:sha256:" in ignored.event_id


def test_missing_integration_id() -> None:
    doc = _body()
    del doc["integrationId"]
    assert _parse(doc).event_id == f":{ALERT_ID}:Acknowledge:1775116022931000000"


def test_escalate_with_and_without_id_suffix() -> None:
    event = _parse(_escalate())
    assert event.kind == "escalated" and event.actor is None
    assert event.at == datetime(2026, 4, 2, 7, 46, 18, 512000, tzinfo=UTC)
    assert event.text == "Escalated to carol@example.com via DB_escalation"
    assert event.event_id == f"{INTEGRATION}:{ALERT_ID}:Escalate:esc-1:0"
    legacy = _parse(_escalate("2b7e4c1d-9a3f-4e6b-8c2d-7f1a5e9b3c40"))
    assert legacy.at is None and "at_estimated" not in legacy.extra  # the app uses arrival time
    assert legacy.incident_external_id == "2b7e4c1d-9a3f-4e6b-8c2d-7f1a5e9b3c40"
    assert _parse(_escalate(escalationTime=None)).at is None
    assert _parse(_escalate(escalationTime="0")).at == datetime(2026, 4, 2, 7, 41, 18, 512000, tzinfo=UTC)


def test_escalate_repeats_and_missing_fields() -> None:
    repeat = _parse(_escalate(repeatCount=2))
    assert repeat.event_id == f"{INTEGRATION}:{ALERT_ID}:Escalate:esc-1:2"
    assert repeat.text == "Escalated to carol@example.com via DB_escalation (repeat 2)"
    assert repeat.extra["repeat_count"] == 2
    bare = {"action": "Escalate", "alert": {"alertId": ALERT_ID}}
    event = _parse(bare)
    assert event.text == "Escalated" and ":Escalate:sha256:" in event.event_id
    assert event.event_id.startswith(":")


def test_second_create_when_team_added() -> None:
    first = _parse(_body("Create", updatedAt=1775115678891000000))
    second = _parse(_body("Create", updatedAt=1775116500000000000, team="DBA"))
    assert first.kind == second.kind == "triggered"
    assert first.incident_external_id == second.incident_external_id == ALERT_ID
    assert first.event_id != second.event_id
    assert first.at is not None and second.at is not None and second.at > first.at
    assert second.text == "Disk full on db-1" and second.snapshot.team == "DBA"


# --- actions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fields", "kind", "text"),
    [
        ("Create", {}, "triggered", "Disk full on db-1"),
        ("Acknowledge", {}, "acknowledged", "Acknowledged by bob@example.com"),
        ("UnAcknowledge", {}, "unacknowledged", "Unacknowledged by bob@example.com"),
        ("Close", {"username": "System"}, "resolved", "Closed by System"),
        ("Close", {"username": None}, "resolved", "Closed"),
        ("EscalateNext", {}, "escalated", "Escalated to the next level by bob@example.com"),
        ("AssignOwnership", {"owner": "dan@example.com"}, "reassigned", "Ownership assigned to dan@example.com by"),
        ("TakeOwnership", {}, "reassigned", "Ownership taken by bob@example.com"),
        ("AddTeam", {"team": "DBA"}, "reassigned", "Team DBA added by bob@example.com"),
        ("AddRecipient", {"recipient": "erin@example.com"}, "responder_added", "Responder erin@example.com added"),
        ("AddResponder", {}, "responder_added", "Responder added by bob@example.com"),
        ("AddNote", {"note": "checked"}, "note", "checked"),
        ("UpdatePriority", {"priority": "P1", "oldPriority": "P2"}, "priority_changed", "Priority P2 → P1"),
    ],
)
def test_action_kinds(action: str, fields: dict[str, Any], kind: str, text: str) -> None:
    event = _parse(_body(action, **fields))
    assert event.kind == kind and event.incident_external_id == ALERT_ID
    assert event.text is not None and event.text.startswith(text)
    assert event.at == datetime(2026, 4, 2, 7, 47, 2, 931000, tzinfo=UTC)


def test_add_team_is_not_the_owner_team() -> None:
    event = _parse(_body("AddTeam", team="DBA"))
    assert event.snapshot.team is None and event.extra["added_team"] == "DBA"
    assert _parse(_body("Acknowledge", team="DBA")).snapshot.team == "DBA"


@pytest.mark.parametrize(
    "action",
    [
        "Snooze",
        "SnoozeEnded",
        "UpdateMessage",
        "UpdateDescription",
        "Delete",
        "TestAction",
        "AddToJIRA",
        "close",
        "Restart payments-api pods",
    ],
)
def test_ignored_actions(action: str) -> None:
    event = _parse(_body(action))
    assert event.ignored and event.kind is None and event.incident_external_id is None
    assert event.event_type == action and event.extra["incident_id"] == ALERT_ID
    assert event.event_id == f"{INTEGRATION}:{ALERT_ID}:{action}:1775116022931000000"


def test_unicode_note_survives() -> None:
    note = "Redémarré ✅ — 原因はDNS; emoji 🔥; RTL שלום; NUL-free \u00a0nbsp"
    doc = _body("AddNote", note=note)
    for body in (json.dumps(doc).encode("utf-8"), json.dumps(doc, ensure_ascii=False).encode("utf-8")):
        assert parse(body).text == note
    assert parse(json.dumps(doc, ensure_ascii=False).encode("utf-16")).text == note  # json detects UTF-16


def test_snapshot_service_hints_and_dedup_key_choices() -> None:
    """The parser reports where a service could come from; the mappings (services.yaml) choose. The alert's `source`
    names the sender (Alertmanager, or an IP address), never the service."""
    hinted = _parse(_body(details={"service": "checkout"})).snapshot
    assert (hinted.service, hinted.details_service, hinted.entity, hinted.integration) == (
        None,
        "checkout",
        "db-1",
        "aftermath",
    )
    assert _parse(_body(details={"other": 1})).snapshot.details_service is None
    bare = _parse(_body(details="not a map", entity="", source="10.1.2.3")).snapshot
    assert (bare.service, bare.details_service, bare.entity) == (None, None, None)
    assert _parse(_body(alias="-")).snapshot.dedup_key is None
    assert _parse(_body(alias=ALERT_ID)).snapshot.dedup_key is None
    assert _parse(_body(alias=None)).snapshot.dedup_key is None


def test_create_description_goes_to_extra() -> None:
    assert _parse(_body("Create", description="long text")).extra["description"] == "long text"
    assert "description" not in _parse(_body("Acknowledge", description="x")).extra


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"<xml/>", "not JSON"),
        (b"\xff\xfe\xfd", "not JSON"),
        (b"{" * 50_000, "not JSON"),
        (b"[]", "JSON object"),
        (b"null", "JSON object"),
        (b"{}", r"^action is missing$"),
        (b'{"action": 1, "alert": {}}', "action must be"),
        (b'{"action": "", "alert": {}}', "action must be"),
        (b'{"action": "Create"}', r"^alert is missing$"),
        (b'{"action": "Create", "alert": "x"}', "alert must be an object"),
        (b'{"action": "Create", "alert": {}}', r"alert\.alertId is missing"),
        (b'{"action": "Create", "alert": {"alertId": 7}}', r"alert\.alertId must be"),
        (b'{"action": "Escalate", "alert": {"alertId": ""}}', r"alert\.alertId must be"),
    ],
)
def test_garbage_bodies(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(body)


# --- damage ---------------------------------------------------------------------------------------------------

NEAR_VALID: list[Any] = [
    "P1", "3", "Create", "Escalate", "1775115678891000000", "99999999999999999999", "١٢٣", {"service": 3},
    "2b7e4c1d-9a3f-4e6b-8c2d-7f1a5e9b3c40-999999999999999", 10**17, 2**64,
]  # fmt: skip


def _seeds() -> list[dict[str, Any]]:
    seeds = [_body(a) for a in ("Create", "AddNote", "UpdatePriority", "AddTeam", "Snooze")]
    seeds.append(_body("UpdatePriority", oldPriority=3))
    seeds += [_escalate(), _escalate(escalationTime=10**12)]
    seeds += [json.loads(p.read_bytes()) for p in sorted((PAYLOADS / "opsgenie").glob("*.json"))]
    return seeds


@pytest.mark.parametrize("nesting", [500, 950, 980, 990, 995, 999, 1000, 1500])
@pytest.mark.parametrize("stack", [0, 20, 200])
def test_deep_nesting_near_recursion_limit(nesting: int, stack: int) -> None:
    nest = "[" * nesting + "]" * nesting
    # An array where updatedAt must be is refused whether or not the JSON is readable.
    timed = '{"action":"Create","alert":{"alertId":"a","updatedAt":@N@}}'
    assert parse_at_depth(parse, stack, timed.replace("@N@", nest).encode()) is None
    # In the optional priorities it is dropped, as long as the JSON is shallow enough for the stack left to read.
    for body, text in (
        ('{"action":"Create","alert":{"alertId":"a","updatedAt":1,"priority":@N@}}', None),
        (
            '{"action":"UpdatePriority","alert":{"alertId":"a","updatedAt":1,"priority":@N@,"oldPriority":@N@}}',
            "Priority changed",
        ),
    ):
        event = parse_at_depth(parse, stack, body.replace("@N@", nest).encode())
        if nesting <= 500:
            assert event is not None
        if nesting >= 1000:  # deeper than the whole recursion limit
            assert event is None
        if event is not None:
            assert (event.incident_external_id, event.snapshot.priority, event.text) == ("a", None, text)


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
@given(expected=st.none() | ANY_TEXT, header_token=st.none() | ANY_TEXT, basic_password=st.none() | ANY_TEXT)
def test_token_check_never_raises(expected: str | None, header_token: str | None, basic_password: str | None) -> None:
    result = verify_token(expected=expected, header_token=header_token, basic_password=basic_password)
    assert result in (True, False)
    if not expected:
        assert result is False  # an unset secret lets nothing through


@FUZZ
@given(secret=st.text(min_size=1, max_size=12), other=st.none() | ANY_TEXT)
def test_the_right_token_passes_by_header_or_basic_password_whatever_else_is_sent(
    secret: str, other: str | None
) -> None:
    assert verify_token(expected=secret, header_token=secret, basic_password=other)
    assert verify_token(expected=secret, header_token=other, basic_password=secret)
