"""Edits of a filed action follow it to its tracker issue: PATCH → one coalesced job → worker → fake Jira / GitHub.

Through the real entry points (REST API, Worker, real `jira` and PyGithub clients over HTTP), on both databases.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import select

from app import jobs, tracking
from app.context import Context
from app.jobs import Job
from app.worker import Worker
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import DEFAULT_ACCOUNT_ID, FakeJira
from tests.helpers import READ, WRITE, issue_key
from tests.test_tracker_loop_jira import _make_job_due
from tests.tracker_fixtures import api, fake_github, fake_jira, gh_wired, new_action, tracker_mappings, wired

__all__ = ["api", "fake_github", "fake_jira", "gh_wired", "tracker_mappings", "wired"]
REPO = {"kind": "github", "repo": "acme/payments"}


def _action(client: TestClient, action_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/actions/{action_id}", headers=READ)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _patch(client: TestClient, action_id: int, **fields: Any) -> dict[str, Any]:
    response = client.patch(f"/api/v1/actions/{action_id}", json=fields, headers=WRITE)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _pm_key(client: TestClient, action: dict[str, Any]) -> str:
    return str(client.get(f"/api/v1/postmortems/{action['postmortem_id']}", headers=READ).json()["key"])


def _update_jobs(context: Context, action_id: int) -> list[Job]:
    with context.read() as session:
        query = select(Job).where(Job.kind == "update_issue", Job.action_id == action_id).order_by(Job.id)  # type: ignore[arg-type]
        return list(session.exec(query).all())


def _filed(client: TestClient, context: Context, **fields: Any) -> dict[str, Any]:
    action = new_action(client, **fields)
    Worker(context).run_once()
    filed = _action(client, action["id"])
    assert filed["tracker_key"], filed
    return filed


def test_title_and_due_date_edits_reach_the_jira_issue(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = _filed(api, wired)
    key, link_posts = action["tracker_key"], fake_jira.count("/remotelink", "POST")
    fake_jira.set_status(key, "In Progress", "indeterminate")
    tracking.poll_all(wired)
    fake_jira.issues[key].fields["labels"].append("customer-facing")  # added by someone in Jira

    _patch(api, action["id"], title="Rotate and compress logs", due_date="2030-03-15")
    [job] = _update_jobs(wired, action["id"])
    assert job.status == "pending" and job.payload == {"fields": ["due_date", "title"]}
    Worker(wired).run_once()

    issue = fake_jira.issues[key]
    f = issue.fields
    assert f["summary"] == f"[{_pm_key(api, action)}] Rotate and compress logs"
    assert f["duedate"] == "2030-03-15" and "*Due:* 2030-03-15" in f["description"]
    marker = issue_key(wired, action["id"])
    assert f["description"].endswith(f"Aftermath idempotency key: {marker}")
    assert marker in f["labels"] and "customer-facing" in f["labels"]
    assert f["status"]["name"] == "In Progress"  # an update never touches the status
    assert len(issue.remote_links) == 1 and fake_jira.count("/remotelink", "POST") == link_posts  # findings unchanged
    assert fake_jira.count(f"/rest/api/2/issue/{key}", "PUT") == 1
    after = _action(api, action["id"])
    assert (after["status"], after["last_error"]) == ("in_progress", None)
    assert [e["kind"] for e in after["ledger"]] == ["filed", "status_changed", "due_date_changed"]
    assert [j.status for j in _update_jobs(wired, action["id"])] == ["done"]


def test_many_edits_make_one_job_that_pushes_the_latest_state(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = _filed(api, wired)
    key = action["tracker_key"]
    _patch(api, action["id"], title="First try")
    _patch(api, action["id"], title="Second try", priority="high")
    _patch(api, action["id"], kind="process")  # not shown on the issue: nothing more to push
    [job] = _update_jobs(wired, action["id"])
    assert job.payload == {"fields": ["priority", "title"]}

    Worker(wired).run_once()
    assert fake_jira.count(f"/rest/api/2/issue/{key}", "PUT") == 1
    f = fake_jira.issues[key].fields
    assert f["summary"].endswith("] Second try") and f["priority"]["name"] == "High"
    assert "*Priority:* high" in f["description"]
    assert f["assignee"]["accountId"] == DEFAULT_ACCOUNT_ID  # the owner did not change

    _patch(api, action["id"], title="Third try")  # once that job ran, a new edit gets a new job
    assert [j.status for j in _update_jobs(wired, action["id"])] == ["done", "pending"]


def test_an_edit_while_the_job_runs_gets_a_job_of_its_own(api: TestClient, wired: Context) -> None:
    action = _filed(api, wired)
    _patch(api, action["id"], title="First")
    with wired.write() as session:
        claimed = jobs.claim(session, "another-worker")  # it may read the action before the next edit commits
        assert claimed is not None and claimed.kind == "update_issue"
    _patch(api, action["id"], description="Second")
    first, second = _update_jobs(wired, action["id"])
    assert (first.status, first.payload) == ("running", {"fields": ["title"]})
    assert (second.status, second.payload) == ("pending", {"fields": ["description"]})


def test_edits_before_filing_need_no_update_job(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    _patch(api, action["id"], title="Renamed before filing", due_date="2030-06-30")
    assert _update_jobs(wired, action["id"]) == []
    Worker(wired).run_once()  # the file job reads the action as it is now
    f = fake_jira.issues["OPS-1"].fields
    assert f["summary"].endswith("] Renamed before filing") and f["duedate"] == "2030-06-30"
    assert fake_jira.count("/rest/api/2/issue/OPS-1", "PUT") == 0


def test_title_edit_reaches_the_github_issue(api: TestClient, gh_wired: Context, fake_github: FakeGitHub) -> None:
    action = _filed(api, gh_wired, tracker=REPO, priority="high")
    issue = fake_github.issue("acme/payments", 1)
    labels = list(issue.labels)
    fake_github.close_issue("acme/payments", 1)
    _patch(api, action["id"], title="Rotate logs hourly")
    Worker(gh_wired).run_once()
    assert fake_github.count("PATCH") == 1
    assert issue.title == f"[{_pm_key(api, action)}] Rotate logs hourly"
    assert f"<!-- aftermath:key={issue_key(gh_wired, action['id'])} -->" in (issue.body or "")
    assert issue.labels == labels and issue.assignees == ["alice"] and issue.state == "closed"
    assert _action(api, action["id"])["last_error"] is None


def test_an_owner_jira_cannot_assign_is_dropped_from_the_update_and_taken_again_later(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = _filed(api, wired, owner="carol@example.com")  # no tracker identity: filed unassigned
    key = action["tracker_key"]
    assert fake_jira.issues[key].fields["assignee"] is None
    fake_jira.projects["OPS"].assignable.clear()  # alice can no longer be assigned issues in OPS

    _patch(api, action["id"], owner="alice@example.com", title="Rotate logs daily")
    Worker(wired).run_once()
    updated = _action(api, action["id"])
    f = fake_jira.issues[key].fields
    assert f["summary"].endswith("] Rotate logs daily") and f["assignee"] is None  # the rest of the edit went in
    assert "alice@example.com" in f["description"]  # the owner stays in the text
    assert updated["last_error"] is None and updated["status"] == "open"
    [warning] = updated["warnings"]
    assert (warning["field"], warning["value"]) == ("assignee", DEFAULT_ACCOUNT_ID)
    assert "cannot be assigned issues" in warning["message"]
    assert [e["kind"] for e in updated["ledger"]][-2:] == ["owner_changed", "field_dropped"]
    assert [j.status for j in _update_jobs(wired, action["id"])] == ["done"]

    # Once Jira accepts alice again and the mappings are reloaded (which forgets refusals), the next edit assigns her
    # and the warning goes.
    fake_jira.projects["OPS"].assignable.add(DEFAULT_ACCOUNT_ID)
    wired.forget_refused()
    _patch(api, action["id"], owner="bob@example.com")
    _patch(api, action["id"], owner="alice@example.com")
    Worker(wired).run_once()
    assert fake_jira.issues[key].fields["assignee"]["accountId"] == DEFAULT_ACCOUNT_ID
    assert _action(api, action["id"])["warnings"] == []


def test_a_transient_failure_is_retried_with_backoff(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = _filed(api, wired)
    key = action["tracker_key"]
    fake_jira.fail_next(1, status=503, path_contains=f"/rest/api/2/issue/{key}", method="PUT")
    _patch(api, action["id"], due_date="2030-04-01")
    Worker(wired).run_once()
    [job] = _update_jobs(wired, action["id"])
    assert job.status == "pending" and job.last_error and "503" in job.last_error
    assert fake_jira.issues[key].fields["duedate"] == "2030-01-31"
    assert _action(api, action["id"])["last_error"] is None  # a passing hiccup is not the action's error
    Worker(wired).run_once()  # not due yet: backoff
    assert fake_jira.count(f"/rest/api/2/issue/{key}", "PUT") == 1
    _make_job_due(wired)
    Worker(wired).run_once()
    assert fake_jira.issues[key].fields["duedate"] == "2030-04-01"
    assert [(j.status, j.attempts) for j in _update_jobs(wired, action["id"])] == [("done", 2)]


def test_control_and_counterfactual_are_in_the_issue_and_follow_edits(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub, fake_jira: FakeJira
) -> None:
    what_if = "The pool alert would have paged at 09:04, before customers noticed."
    jira = _filed(api, gh_wired, control="alerting", counterfactual=what_if)
    description = fake_jira.issues[jira["tracker_key"]].fields["description"]
    assert (
        "*Preventive control:* alerting" in description
        and f"*Would have changed this incident:* {what_if}" in description
    )
    github = _filed(api, gh_wired, incident_key="QT2", tracker=REPO, control="feature_flag")
    body = fake_github.issue("acme/payments", 1).body
    assert "**Preventive control:** feature flag" in body and "Would have changed" not in body
    _patch(api, github["id"], control="rollback", counterfactual="Rolled back in one click.")
    [job] = _update_jobs(gh_wired, github["id"])
    assert job.payload == {"fields": ["control", "counterfactual"]}
    Worker(gh_wired).run_once()
    body = fake_github.issue("acme/payments", 1).body
    assert "**Preventive control:** rollback" in body and "**Would have changed this incident:** Rolled back" in body


def test_a_finding_edit_reaches_the_issues_only_when_they_show_it(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = _filed(api, wired)
    finding = f"/api/v1/findings/{action['finding_ids'][0]}"
    risk = {"accepted_risk": "Also accepted: logs past 30 days are not needed (Dana)"}
    assert api.patch(finding, json=risk, headers=WRITE).status_code == 200
    assert _update_jobs(wired, action["id"]) == []  # the issue does not show the accepted risk
    assert api.patch(finding, json={"statement": "Disk filled: logs never rotated"}, headers=WRITE).status_code == 200
    assert [j.payload for j in _update_jobs(wired, action["id"])] == [{"fields": ["finding_ids"]}]
    Worker(wired).run_once()
    assert "Disk filled: logs never rotated" in fake_jira.issues[action["tracker_key"]].fields["description"]
