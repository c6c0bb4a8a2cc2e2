"""Tags in the parsers: Opsgenie alert.tags, AddTags/RemoveTags (addedTags/removedTags as comma-separated strings),
PagerDuty custom field values as name:value. Payloads: tests/payloads/tags/."""

from __future__ import annotations

import json
from pathlib import Path

from connectors import opsgenie, pagerduty
from connectors.events import TimelineKind

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads"


def _raw(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def test_opsgenie_create_carries_the_whole_tag_set_and_service_hints_not_the_sender() -> None:
    event = opsgenie.parse(_raw("tags/og2_01_create.json"))
    snap = event.snapshot
    assert snap.tags == ("prod", "service:checkout-api") and snap.tags_added is None
    assert (snap.service, snap.entity, snap.integration) == (None, "checkout-lb-3", "aftermath-webhook")
    assert "203.0.113.17" not in json.dumps([snap.service, snap.entity, snap.integration, snap.details_service])


def test_opsgenie_add_and_remove_tags_are_timeline_events() -> None:
    added = opsgenie.parse(_raw("tags/og2_02_addtags.json"))
    assert added.kind == TimelineKind.TAGS_CHANGED and not added.ignored
    assert added.snapshot.tags == ("prod", "service:checkout-api", "customer-impact", "sev-candidate")
    assert added.snapshot.tags_added == ("customer-impact", "sev-candidate")
    assert added.text == "Tags added: customer-impact, sev-candidate by alice.nguyen@acme-retail.example"
    removed = opsgenie.parse(_raw("tags/og2_03_removetags.json"))
    assert removed.kind == TimelineKind.TAGS_CHANGED and removed.snapshot.tags_removed == ("sev-candidate",)
    assert removed.text == "Tags removed: sev-candidate by alice.nguyen@acme-retail.example"
    delta = opsgenie.parse(_raw("tags/og2_04_addtags_delta.json"))
    assert delta.snapshot.tags is None and delta.snapshot.tags_added == ("postmortem-wanted",)


def test_opsgenie_tag_strings_are_cleaned() -> None:
    doc = json.loads(_raw("tags/og2_02_addtags.json"))
    doc["alert"].update({"addedTags": " a, ,b,a ", "tags": ["x", "", 5, None, "x", " y "]})
    snap = opsgenie.parse(json.dumps(doc).encode()).snapshot
    assert snap.tags_added == ("a", "b") and snap.tags == ("x", "y")
    doc["alert"].update({"addedTags": ["not", "a", "string"], "tags": "not a list"})
    snap = opsgenie.parse(json.dumps(doc).encode()).snapshot
    assert snap.tags_added == ("not", "a", "string") and snap.tags is None


def test_pagerduty_custom_field_values_become_name_value_tags() -> None:
    event = pagerduty.parse(_raw("tags/incB_02_custom_field_values_updated.json"))
    assert event.kind == TimelineKind.TAGS_CHANGED and event.incident_external_id == "Q1CF8TAGS0001"
    assert event.snapshot.tags == ("environment:production", "region:EU", "region:US")  # customer_tier: unset
    assert event.text == "Custom fields changed: region"


def test_pagerduty_changed_values_win_and_odd_values_are_skipped() -> None:
    doc = json.loads(_raw("tags/incB_02_custom_field_values_updated.json"))
    data = doc["event"]["data"]
    data["changed_custom_fields"] = [{"name": "environment", "value": "staging"}, {"value": "no name"}, "junk"]
    data["custom_fields"] += [{"name": "flag", "value": True}, {"name": "n", "value": 3}, {"name": "o", "value": {}}]
    snap = pagerduty.parse(json.dumps(doc).encode()).snapshot
    assert snap.tags == ("environment:staging", "region:EU", "region:US", "flag:true", "n:3")
    data["custom_fields"], data["changed_custom_fields"] = "junk", None
    assert pagerduty.parse(json.dumps(doc).encode()).snapshot.tags == ()
