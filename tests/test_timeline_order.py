"""Delivery order never matters: any order, with redeliveries and the worker applying at any point, gives the same
incident and timeline as in-order delivery, and leaves each stored fold as a replay from scratch would have it."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from app.context import Context
from app.incidents import Incident, TimelineEntry
from app.timeline import Fold, Progress, order_key, refold
from connectors import pagerduty
from tests.helpers import READ, apply_inbox, pd_event, pd_signature

START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
KINDS = [
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.annotated",
    "incident.priority_updated",
    "incident.escalated",
]
FIELDS = ("status", "triggered_at", "acknowledged_at", "resolved_at", "severity", "title", "priority", "urgency")
_runs = itertools.count()

# One event: its kind, its time (few distinct seconds, so equal times and their tie-break are common), the priority
# and title it reports.
event = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 5),
    st.sampled_from([None, "P1", "P3"]),
    st.sampled_from(["Checkout down", "Checkout slow"]),
)


def _body(prefix: str, incident: str, n: int, spec: tuple[str, int, str | None, str]) -> bytes:
    kind, second, priority, title = spec
    at = (START + timedelta(seconds=second)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return pd_event(kind, event_id=f"{prefix}{n:03d}", incident_id=incident, at=at, priority=priority, title=title)


def _post(client: TestClient, body: bytes) -> None:
    headers = {"X-PagerDuty-Signature": pd_signature(body), "Content-Type": "application/json"}
    assert client.post("/webhooks/pagerduty", content=body, headers=headers).status_code == 202


def _incident(client: TestClient, external_id: str) -> dict[str, Any]:
    items = client.get("/api/v1/incidents", params={"limit": 500}, headers=READ).json()["items"]
    return next(i for i in items if i["external_id"] == external_id)


def _stored_folds_are_a_fresh_replay(context: Context, external_id: str) -> None:
    with context.read() as session:
        incident = session.exec(select(Incident).where(Incident.external_id == external_id)).one()
        entries = sorted(
            session.exec(select(TimelineEntry).where(TimelineEntry.incident_id == incident.id)).all(), key=order_key
        )
    expected = refold(Fold(), entries)
    assert [e.fold for e in entries] == [f.to_json() for f in expected]
    assert incident.progress is not None
    progress = Progress.from_json(incident.progress)
    assert progress.fold == expected[-1] and progress.last == order_key(entries[-1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(event, min_size=1, max_size=10),
    order=st.randoms(use_true_random=False),
    redelivered=st.lists(st.integers(0, 9), max_size=4),
    apply_after=st.lists(st.booleans(), min_size=14, max_size=14),
)
def test_any_order_with_redeliveries_gives_the_in_order_incident(
    client: TestClient,
    context: Context,
    events: list[tuple[str, int, str | None, str]],
    order: Any,
    redelivered: list[int],
    apply_after: list[bool],
) -> None:
    run = next(_runs)
    in_order, shuffled = f"QORD{run}", f"QSHF{run}"
    # In order: by event time, then the tie-break the timeline uses (lifecycle rank, then event id).
    for n in sorted(range(len(events)), key=lambda n: _rank(events[n], n)):
        _post(client, _body(f"A{run}-", in_order, n, events[n]))
        apply_inbox(client)
    deliveries = list(range(len(events))) + [n for n in redelivered if n < len(events)]
    order.shuffle(deliveries)
    for step, n in enumerate(deliveries):
        _post(client, _body(f"B{run}-", shuffled, n, events[n]))
        if apply_after[step % len(apply_after)]:
            apply_inbox(client)
    apply_inbox(client)

    expected, got = _incident(client, in_order), _incident(client, shuffled)
    assert {f: got[f] for f in FIELDS} == {f: expected[f] for f in FIELDS}
    timeline = [(e["at"], e["kind"], e["actor"], e["text"]) for e in got["timeline"]]
    assert timeline == [(e["at"], e["kind"], e["actor"], e["text"]) for e in expected["timeline"]]
    assert len(timeline) == len(events)
    _stored_folds_are_a_fresh_replay(context, shuffled)


def _rank(spec: tuple[str, int, str | None, str], n: int) -> Any:
    event = pagerduty.parse(_body("", "Q", n, spec))
    return order_key(SimpleNamespace(at=event.at, kind=event.kind, event_key=event.event_id, snapshot={}))


def test_a_late_event_replays_its_incident_from_its_own_time(client: TestClient, context: Context) -> None:
    """Resolved, then the acknowledgement that came before it arrives late: the incident stays resolved, and the
    acknowledgement time is the late event's."""
    for n, (kind, second) in enumerate([("incident.triggered", 0), ("incident.resolved", 30)]):
        _post(client, _body("L-", "QLATE", n, (kind, second, None, "Checkout down")))
    apply_inbox(client)
    _post(client, _body("L-", "QLATE", 2, ("incident.acknowledged", 10, None, "Checkout down")))
    apply_inbox(client)
    incident = _incident(client, "QLATE")
    assert incident["status"] == "resolved"
    assert incident["acknowledged_at"].startswith("2026-03-14T09:00:10")
    assert [e["kind"] for e in incident["timeline"]] == ["triggered", "acknowledged", "resolved"]
    _stored_folds_are_a_fresh_replay(context, "QLATE")
