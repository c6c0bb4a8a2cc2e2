"""The escalation ladder with a controlled clock (the sweep's `now`), through the real worker, clients and fakes, on
both databases: each step one comment mentioning the person the tracker's way and one `escalated` ledger entry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import event

from app import escalation, tracking
from app.context import Context, build_context
from app.mappings import load_mappings
from app.worker import Worker
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import DEFAULT_ACCOUNT_ID, FakeJira
from tests.helpers import READ, WRITE, add_finding, pd_event, post_pd
from tests.tracker_fixtures import (
    api,
    fake_github,
    fake_jira,
    gh_wired,
    new_action,
    set_ladder,
    tracker_mappings,
    wired,
)

__all__ = ["api", "fake_github", "fake_jira", "gh_wired", "tracker_mappings", "wired"]
CAROL_ID = "5b10ac8d82e05b22cc7d4ef6"
PEOPLE = {
    "alice@example.com": {"name": "Alice Nguyen", "jira_account_id": DEFAULT_ACCOUNT_ID, "github_login": "alice"},
    "carol@example.com": {"name": "Carol Diaz", "jira_account_id": CAROL_ID, "github_login": "carol"},
    "dana@example.com": {"name": "Dana Reyes"},  # no tracker identity: named in text
}
PEOPLE["alice@example.com"]["manager"] = "carol@example.com"
DUE = "2030-01-31"
REPO = {"kind": "github", "repo": "acme/payments"}


def at(day: str, clock: str = "00:01") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00").astimezone(UTC)


def sweep(context: Context, now: datetime) -> int:
    with context.write() as session:
        return escalation.sweep(session, context.mappings, now)


@pytest.fixture
def people(wired: Context, tracker_mappings: Path) -> Context:
    (tracker_mappings / "people.yaml").write_text(yaml.safe_dump(PEOPLE))
    wired.mappings = load_mappings(tracker_mappings)
    return wired


def _review(client: TestClient, pm_id: int) -> None:
    people = [{"who": "dana@example.com", "role": "facilitator"}, {"who": "erin@example.com", "role": "reviewer"}]
    assert client.patch(f"/api/v1/postmortems/{pm_id}", json={"participants": people}, headers=WRITE).status_code == 200


def _escalations(client: TestClient, action_id: int) -> list[tuple[int, str | None, str]]:
    entries = client.get(f"/api/v1/actions/{action_id}", headers=READ).json()["ledger"]
    return [(e["details"]["level"], e["details"]["to"], e["at"][:16]) for e in entries if e["kind"] == "escalated"]


def _climb(client: TestClient, context: Context, comments: Any, action: dict[str, Any]) -> None:
    """Walk the default ladder (owner at the due date, manager 3 days later, facilitator 7 days later)."""
    worker = Worker(context)
    assert sweep(context, at(DUE, "12:00")) == 0  # due today is not overdue yet
    assert sweep(context, at("2030-02-01")) == 1
    worker.run_once()
    assert len(comments()) == 1
    for moment in (at("2030-02-01"), at("2030-02-01", "23:59"), at("2030-02-03", "23:59")):
        assert sweep(context, moment) == 0  # never again for the same step
    second = build_context(context.settings)  # another worker process, its own engine
    try:
        assert sweep(second, at("2030-02-02")) == 0
        assert sweep(second, at("2030-02-04")) == 1  # the manager's step, taken by whichever worker sweeps first
    finally:
        second.engine.dispose()
    assert sweep(context, at("2030-02-04", "00:02")) == 0
    worker.run_once()
    assert sweep(context, at("2030-02-08")) == 1
    assert sweep(context, at("2030-03-31")) == 0  # the top of the ladder: nothing more
    worker.run_once()
    assert len(comments()) == 3
    assert _escalations(client, action["id"]) == [
        (0, "alice@example.com", "2030-02-01T00:01"),
        (1, "carol@example.com", "2030-02-04T00:01"),
        (2, "dana@example.com", "2030-02-08T00:01"),
    ]
    detail = client.get(f"/api/v1/actions/{action['id']}", headers=READ).json()
    assert detail["escalation_level"] == 2 and detail["escalated_at"].startswith("2030-02-08T00:01")


def test_an_overdue_jira_action_climbs_the_ladder(api: TestClient, people: Context, fake_jira: FakeJira) -> None:
    action = new_action(api, due_date=DUE)
    _review(api, action["postmortem_id"])
    Worker(people).run_once()  # files it (the worker's own sweeps run on today's clock: nothing is overdue)
    comments = lambda: [c["body"] for c in fake_jira.issues["OPS-1"].comments]  # noqa: E731
    _climb(api, people, comments, action)
    owner, manager, facilitator = comments()
    assert owner.startswith("*Escalation, level 0 of 2:* [~accountid:" + DEFAULT_ACCOUNT_ID + "], you own this action")
    assert "was due 2030-01-31 and is 1 day overdue, still open" in owner
    assert f"[~accountid:{CAROL_ID}], you manage its owner, Alice Nguyen" in manager and "4 days overdue" in manager
    assert "Dana Reyes, you facilitated the review of PM-1" in facilitator and "[~" not in facilitator
    assert f"http://aftermath.test/postmortems/{action['postmortem_id']}#action-{action['id']}" in facilitator
    escalated = api.get("/api/v1/actions", params={"escalated": "true"}, headers=READ).json()["items"]
    assert [a["id"] for a in escalated] == [action["id"]]
    assert api.get("/api/v1/actions", params={"escalated": "false"}, headers=READ).json()["items"] == []
    assert api.get("/api/v1/ledger/verify", headers=READ).json()["ok"] is True


def test_an_overdue_github_action_climbs_the_ladder(
    api: TestClient, people: Context, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    fake_github.repos["acme/payments"].assignable.add("carol")
    action = new_action(api, due_date=DUE, tracker=REPO)
    _review(api, action["postmortem_id"])
    Worker(gh_wired).run_once()
    comments = lambda: list(fake_github.issue("acme/payments", 1).comments)  # noqa: E731
    _climb(api, gh_wired, comments, action)
    owner, manager, facilitator = comments()
    assert owner.startswith("**Escalation, level 0 of 2:** @alice, you own this action")
    assert "@carol, you manage its owner, Alice Nguyen" in manager
    assert "Dana Reyes, you facilitated" in facilitator and "@" not in facilitator.split("Dana")[0]


def test_an_action_found_ten_days_late_gets_one_step_not_three(
    api: TestClient, people: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api, due_date=DUE)
    Worker(people).run_once()
    assert sweep(people, at("2030-02-11")) == 1
    Worker(people).run_once()
    assert [e[:2] for e in _escalations(api, action["id"])] == [(2, None)]  # no facilitator was named
    [comment] = fake_jira.issues["OPS-1"].comments
    assert (
        "*Escalation, level 2 of 2:* this action from PM-1 was due 2030-01-31 and is 11 days overdue" in comment["body"]
    )
    assert "nobody to tell at this step: PM-1 has no facilitator among its participants" in comment["body"]
    entry = api.get(f"/api/v1/actions/{action['id']}", headers=READ).json()["ledger"][-1]
    assert entry["details"]["nobody"] == "PM-1 has no facilitator among its participants"
    assert sweep(people, at("2030-04-01")) == 0


def test_escalation_goes_on_after_the_postmortem_closes_and_stops_when_done(
    api: TestClient, people: Context, fake_jira: FakeJira
) -> None:
    first = new_action(api, due_date=DUE)
    pm = first["postmortem_id"]
    second = api.post(
        f"/api/v1/postmortems/{pm}/actions",
        json={
            "title": "Page on saturation",
            "owner": "alice@example.com",
            "due_date": DUE,
            "success_metric": "paged before customers notice",
            "finding_ids": first["finding_ids"],
        },
        headers=WRITE,
    ).json()
    Worker(people).run_once()
    # The incident is resolved; the postmortem is published, then closed.
    resolved = pd_event("incident.resolved", event_id="EV-QT1-resolved", incident_id="QT1", status="resolved")
    assert post_pd(api, resolved).status_code == 202
    [incident] = api.get("/api/v1/incidents", headers=READ).json()["items"]
    assert incident["status"] == "resolved"
    api.patch(
        f"/api/v1/postmortems/{pm}",
        json={
            "summary": "Disk full.",
            "customer_impact": "Uploads failed.",
            "impact_start": "2026-03-14T09:00:00Z",
            "participants": [
                {"who": "dana@example.com", "role": "facilitator"},
                {"who": "erin@example.com", "role": "reviewer"},
            ],
        },
        headers=WRITE,
    )
    for status in ("in_review", "published", "closed"):
        response = api.patch(f"/api/v1/postmortems/{pm}", json={"status": status}, headers=WRITE)
        assert response.status_code == 200, response.text
    fake_jira.set_status("OPS-2", "Done", "done", resolution="Done")
    tracking.poll_all(people)
    assert sweep(people, at("2030-02-05")) == 1  # the open one, at the manager's step; the done one, never
    Worker(people).run_once()
    assert [e[:2] for e in _escalations(api, first["id"])] == [(1, "carol@example.com")]
    assert _escalations(api, second["id"]) == [] and fake_jira.issues["OPS-2"].comments == []
    # Closed as won't do: the ladder stops there.
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Won't Do")
    tracking.poll_all(people)
    assert sweep(people, at("2030-02-20")) == 0


def test_a_new_due_date_starts_the_ladder_again(api: TestClient, people: Context, fake_jira: FakeJira) -> None:
    action = new_action(api, due_date=DUE)
    Worker(people).run_once()
    assert sweep(people, at("2030-02-05")) == 1
    moved = api.patch(f"/api/v1/actions/{action['id']}", json={"due_date": "2030-03-31"}, headers=WRITE)
    assert moved.status_code == 200 and moved.json()["escalation_level"] is None
    assert sweep(people, at("2030-02-10")) == 0  # not overdue any more
    assert sweep(people, at("2030-04-01")) == 1
    assert [e[:2] for e in _escalations(api, action["id"])] == [(1, "carol@example.com"), (0, "alice@example.com")]
    kinds = [e["kind"] for e in api.get(f"/api/v1/actions/{action['id']}", headers=READ).json()["ledger"]]
    assert kinds == ["filed", "escalated", "due_date_changed", "escalated"]


def test_the_ladder_comes_from_escalation_yaml(
    api: TestClient, people: Context, fake_jira: FakeJira, tracker_mappings: Path
) -> None:
    set_ladder(
        people,
        tracker_mappings,
        [{"after_days": 1, "to": "postmortem_owner"}, {"after_days": 2, "to": "SRE-Leads@example.com"}],
    )
    action = new_action(api, due_date=DUE)
    api.patch(f"/api/v1/postmortems/{action['postmortem_id']}", json={"owner": "carol@example.com"}, headers=WRITE)
    Worker(people).run_once()
    assert sweep(people, at("2030-02-01")) == 0  # the first step waits a day past the due date
    assert sweep(people, at("2030-02-02")) == 1
    assert sweep(people, at("2030-02-03")) == 1
    Worker(people).run_once()
    assert [e[:2] for e in _escalations(api, action["id"])] == [(0, "carol@example.com"), (1, "sre-leads@example.com")]
    first, second = (c["body"] for c in fake_jira.issues["OPS-1"].comments)
    assert f"[~accountid:{CAROL_ID}], you own PM-1" in first and "sre-leads@example.com" in second
    set_ladder(people, tracker_mappings, [])
    assert sweep(people, at("2031-01-01")) == 0


def test_unfiled_actions_wait_and_the_sweep_is_one_query_however_many_actions(
    api: TestClient, people: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api, due_date=DUE)
    finding = add_finding(api, action["postmortem_id"], statement="Another cause")
    for n in range(20):  # unfiled (never filed: the worker has not run for them), all long overdue
        body = {
            "title": f"Fix {n}",
            "owner": "alice@example.com",
            "due_date": "2029-01-01",
            "finding_ids": [finding["id"]],
        }
        assert (
            api.post(f"/api/v1/postmortems/{action['postmortem_id']}/actions", json=body, headers=WRITE).status_code
            == 201
        )
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(people.engine, "before_cursor_execute", count)
    try:
        assert sweep(people, at("2030-03-01")) == 0  # none is filed: nothing to comment on
    finally:
        event.remove(people.engine, "before_cursor_execute", count)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 1 and "CASE WHEN" in reads[0].upper(), statements


def test_the_worker_takes_a_due_step_on_its_own_clock(api: TestClient, people: Context, fake_jira: FakeJira) -> None:
    from datetime import timedelta

    from app.db import utcnow

    action = new_action(api, due_date=(utcnow() - timedelta(days=4)).date().isoformat())
    Worker(people).run_once()  # files it, then its periodic sweep takes the step that is due: the manager's
    Worker(people).run_once()  # posts the comment
    assert [e[:2] for e in _escalations(api, action["id"])] == [(1, "carol@example.com")]
    [comment] = fake_jira.issues["OPS-1"].comments
    assert f"[~accountid:{CAROL_ID}]" in comment["body"]
    for bad in ("maybe", "2", ""):
        assert api.get("/api/v1/actions", params={"escalated": bad}, headers=READ).status_code == 422, bad


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        ([{"after_days": 3, "to": "owner"}, {"after_days": 3, "to": "manager"}], "after_days must grow"),
        ([{"after_days": 0, "to": "boss"}], "'boss' is neither one of owner"),
        ([{"after_days": -1, "to": "owner"}], "greater than or equal to 0"),
        ([{"after_days": 0, "to": "owner", "cc": "x"}], "Extra inputs"),
    ],
)
def test_a_bad_ladder_stops_start_up_naming_the_file(
    tmp_path: Path, ladder: list[dict[str, Any]], message: str
) -> None:
    from app.settings import SettingsError

    (tmp_path / "escalation.yaml").write_text(yaml.safe_dump({"ladder": ladder}))
    with pytest.raises(SettingsError) as refused:
        load_mappings(tmp_path)
    assert "escalation.yaml" in str(refused.value) and message in str(refused.value)
    (tmp_path / "escalation.yaml").write_text(yaml.safe_dump({"verify_after_days": 0}))
    with pytest.raises(SettingsError):
        load_mappings(tmp_path)
    (tmp_path / "people.yaml").write_text(yaml.safe_dump({"a@example.com": {"manager": "not an address"}}))
    (tmp_path / "escalation.yaml").unlink()
    with pytest.raises(SettingsError) as refused:
        load_mappings(tmp_path)
    assert "people.yaml" in str(refused.value) and "manager" in str(refused.value)


def test_the_shipped_ladder() -> None:
    from tests.conftest import ROOT

    shipped = load_mappings(ROOT / "mappings").escalation
    assert [(s.after_days, str(s.to)) for s in shipped.ladder] == [(0, "owner"), (3, "manager"), (7, "facilitator")]
    assert shipped.verify_after_days == 30
