"""REST → job → worker → real `jira` client → fake Jira → poll → ledger → REST, on both databases."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi.testclient import TestClient

from app import tracking
from app.context import Context
from app.mappings import load_mappings
from app.worker import Worker
from tests.fakes.fake_jira import DEFAULT_ACCOUNT_ID, FakeJira
from tests.helpers import READ, WRITE, issue_key
from tests.tracker_fixtures import api, fake_jira, new_action, tracker_mappings, wired

__all__ = ["api", "fake_jira", "tracker_mappings", "wired"]


def _action(client: TestClient, action_id: int) -> dict:
    response = client.get(f"/api/v1/actions/{action_id}", headers=READ)
    assert response.status_code == 200
    return dict(response.json())


def test_action_is_filed_once_with_content_and_backlink(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    assert action["status"] == "unfiled"
    Worker(wired).run_once()
    filed = _action(api, action["id"])
    assert filed["status"] == "open" and filed["tracker_key"] == "OPS-1", filed
    assert filed["tracker_url"].endswith("/browse/OPS-1")
    assert [e["kind"] for e in filed["ledger"]] == ["filed"]
    issue = fake_jira.issues["OPS-1"]
    fields = issue.fields
    assert fields["summary"].startswith("[PM-") and fields["summary"].endswith("] Rotate logs")
    assert fields["duedate"] == "2030-01-31" and fields["priority"]["name"] == "Medium"
    assert fields["assignee"]["accountId"] == DEFAULT_ACCOUNT_ID
    assert issue_key(wired, action["id"]) in fields["labels"] and "postmortem" in fields["labels"]
    assert all(" " not in label for label in fields["labels"])
    description = fields["description"]
    finding_url = f"http://aftermath.test/postmortems/{action['postmortem_id']}#finding-{action['finding_ids'][0]}"
    assert finding_url in description and "Disk filled because logs were never rotated" in description
    assert "disk < 70% for 30 days" in description and "alice@example.com" in description
    assert [link["object"]["url"] for link in issue.remote_links] == [finding_url]
    # Running the worker again files nothing more.
    Worker(wired).run_once()
    assert len(fake_jira.issues) == 1


def test_status_changes_come_back_once_each(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    fake_jira.set_status("OPS-1", "In Progress", "indeterminate")
    assert tracking.poll_all(wired) == 1
    assert tracking.poll_all(wired) == 0  # nothing changed: nothing written
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Won't Do")
    tracking.poll_all(wired)
    fake_jira.set_status("OPS-1", "To Do", "new")
    tracking.poll_all(wired)
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Done")
    tracking.poll_all(wired)
    entries = _action(api, action["id"])["ledger"]
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in entries] == [
        ("filed", "unfiled", "open"),
        ("status_changed", "open", "in_progress"),
        ("status_changed", "in_progress", "wont_do"),
        ("reopened", "wont_do", "open"),
        ("status_changed", "open", "done"),
    ]
    assert entries[1]["tracker_status"] == "In Progress" and entries[1]["source"] == "poll"
    done = api.get("/api/v1/actions", params={"status": "done"}, headers=READ).json()["items"]
    assert [a["id"] for a in done] == [action["id"]]
    assert api.get("/api/v1/ledger/verify", headers=READ).json() == {
        "ok": True,
        "entries": 5,
        "head_hash": entries[-1]["hash"],
    }


def test_poll_batches_keys_in_one_search_per_hundred(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    before = fake_jira.count("/search/jql")
    tracking.poll_all(wired)
    assert fake_jira.count("/search/jql") - before == 1
    assert fake_jira.count("/rest/api/2/issue/OPS-1", method="GET") == 0  # no per-issue GET
    assert action["id"]


def test_lost_create_answer_does_not_duplicate(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    fake_jira.fail_next(1, status=502, path_contains="/rest/api/2/issue", after_effect=True)
    worker = Worker(wired)
    worker.run_once()
    assert len(fake_jira.issues) == 1  # the issue exists, but the answer was lost
    pending = _action(api, action["id"])
    assert pending["status"] == "unfiled" and pending["last_error"]
    _make_job_due(wired)
    worker.run_once()
    filed = _action(api, action["id"])
    assert filed["tracker_key"] == "OPS-1" and len(fake_jira.issues) == 1
    assert [e["kind"] for e in filed["ledger"]] == ["filed"]


def test_refused_field_is_a_permanent_error_on_the_action(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api, tracker={"kind": "jira", "project": "NOPE", "issue_type": "Task"})
    Worker(wired).run_once()
    failed = _action(api, action["id"])
    assert failed["status"] == "unfiled" and "NOPE" in failed["last_error"]
    assert [e["kind"] for e in failed["ledger"]] == ["filing_failed"]
    _make_job_due(wired)
    requests_before = len(fake_jira.requests)
    Worker(wired).run_once()
    assert len(fake_jira.requests) == requests_before  # not retried


def test_rate_limit_is_retried_after_the_time_jira_asks(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    from app.jobs import Job

    action = new_action(api)
    fake_jira.fail_next(1, status=429, retry_after=120, path_contains="/rest/api/2/issue")
    Worker(wired).run_once()
    with wired.read() as session:
        job = session.get(Job, 1)
        assert job is not None and job.status == "pending"
        assert (job.run_after - job.created_at).total_seconds() >= 119
    assert _action(api, action["id"])["status"] == "unfiled"
    assert api.get("/api/v1/actions", params={"status": "unfiled"}, headers=WRITE).json()["items"]


def _creates(fake: FakeJira) -> int:
    return sum(1 for r in fake.requests if (r.method, r.path) == ("POST", "/rest/api/2/issue"))


def _make_job_due(context: Context) -> None:
    from sqlalchemy import update

    from app.db import utcnow
    from app.jobs import Job

    with context.write() as session:
        session.execute(update(Job).values(run_after=utcnow()).where(Job.status == "pending"))  # type: ignore[arg-type]


def test_a_mapped_field_jira_refuses_is_dropped_once_per_project(
    api: TestClient, wired: Context, fake_jira: FakeJira, tracker_mappings: Path
) -> None:
    trackers = yaml.safe_load((tracker_mappings / "trackers.yaml").read_text())
    trackers["jira_fields"] = {"customfield_10099": "nope", "customfield_10010": "SRE"}  # only 10010 is on the screen
    (tracker_mappings / "trackers.yaml").write_text(yaml.safe_dump(trackers))
    wired.mappings = load_mappings(tracker_mappings)
    action = new_action(api)
    Worker(wired).run_once()
    filed = _action(api, action["id"])
    assert filed["status"] == "open" and filed["last_error"] is None
    assert fake_jira.issues["OPS-1"].fields["customfield_10010"] == "SRE"
    [warning] = filed["warnings"]
    assert warning["field"] == "customfield_10099" and warning["value"] == "nope"
    assert "not on the appropriate screen" in warning["message"]
    assert [e["kind"] for e in filed["ledger"]] == ["filed", "field_dropped"]
    # The next action to the project leaves the field out from the start: one create, no refusal paid again.
    creates_before = _creates(fake_jira)
    second = new_action(api, incident_key="QT2")
    Worker(wired).run_once()
    assert _creates(fake_jira) - creates_before == 1
    assert [w["field"] for w in _action(api, second["id"])["warnings"]] == ["customfield_10099"]


def test_crash_between_the_answer_and_the_commit_does_not_duplicate(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    from sqlalchemy import update

    from app import filing, jobs
    from app.db import utcnow

    action = new_action(api)
    # A worker claims the job and runs its handler; Jira creates the issue and answers, then the worker dies before
    # it records anything.
    with wired.write() as session:
        job = jobs.claim(session, "dying-worker")
    assert job is not None
    filing.file_action(wired, job)
    assert len(fake_jira.issues) == 1 and _action(api, action["id"])["tracker_key"] is None
    # The dead worker's lease runs out; another worker takes the job, finds the issue by its label, records it.
    with wired.write() as session:
        session.execute(update(jobs.Job).values(locked_until=utcnow()).where(jobs.Job.id == job.id))  # type: ignore[arg-type]
    Worker(wired, name="second").run_once()
    filed = _action(api, action["id"])
    assert filed["tracker_key"] == "OPS-1" and len(fake_jira.issues) == 1
    assert [e["kind"] for e in filed["ledger"]] == ["filed"]
