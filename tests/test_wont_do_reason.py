"""Why an action will not be done, read from its tracker when the issue is closed as won't do there (by poll or by
the tracker's webhook): the resolution or state reason and the latest comment someone wrote, in a job."""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi.testclient import TestClient

from app import tracking
from app.context import Context
from app.worker import Worker
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import FakeJira
from tests.helpers import READ, WRITE
from tests.tracker_fixtures import api, fake_github, fake_jira, gh_wired, new_action, tracker_mappings, wired

__all__ = ["api", "fake_github", "fake_jira", "gh_wired", "tracker_mappings", "wired"]


def _action(client: TestClient, action_id: int) -> dict:
    return dict(client.get(f"/api/v1/actions/{action_id}", headers=READ).json())


def _missing(client: TestClient, pm_id: int) -> list[str]:
    body = client.get(f"/api/v1/postmortems/{pm_id}/completeness", headers=READ).json()
    return [m["code"] for m in body["missing"]]


def test_jira_wont_do_by_poll_takes_the_resolution_and_the_latest_comment(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    fake_jira.add_comment("OPS-1", "Superseded: the log volume moves to Loki next quarter.")
    fake_jira.issues["OPS-1"].comments.append(  # Aftermath's own reminder, after it: not the reason
        {**fake_jira.issues["OPS-1"].comments[0], "body": "*Reminder:* due", "author": {"accountId": "aftermath-bot"}}
    )
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Won't Do")
    tracking.poll_all(wired)
    assert _action(api, action["id"])["status"] == "wont_do"
    assert "wont_do_unexplained" in _missing(api, action["postmortem_id"])
    reads_before = fake_jira.count("/rest/api/2/issue/OPS-1/comment", method="GET")
    Worker(wired).run_once()  # the job reads the comment
    assert fake_jira.count("/rest/api/2/issue/OPS-1/comment", method="GET") - reads_before == 1
    reason = _action(api, action["id"])["wont_do_reason"]
    assert reason.startswith("Won't Do: Superseded: the log volume moves to Loki next quarter.")
    assert "wont_do_unexplained" not in _missing(api, action["postmortem_id"])
    revisions = api.get(f"/api/v1/postmortems/{action['postmortem_id']}/revisions", headers=READ).json()["items"]
    assert revisions[-1]["author"] == "tracker"
    assert revisions[-1]["changes"]["action_changed"]["wont_do_reason"] == {"from": None, "to": reason}
    Worker(wired).run_once()
    assert _action(api, action["id"])["wont_do_reason"] == reason  # read once


def test_jira_wont_do_by_webhook_without_a_comment_keeps_the_resolution(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Declined")
    issue = {
        "id": "10001",
        "key": "OPS-1",
        "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}, "resolution": {"name": "Declined"}},
    }
    payload = {"webhookEvent": "jira:issue_updated", "issue": issue, "changelog": {"items": []}}
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(b"jira-hook-secret", body, hashlib.sha256).hexdigest()
    hook = api.post("/webhooks/jira", content=body, headers={"X-Hub-Signature": signature})
    assert hook.status_code == 202, hook.text
    Worker(wired).run_once()
    assert _action(api, action["id"])["wont_do_reason"] == "Declined (closed in the tracker, no comment)"


def test_a_reason_given_here_is_not_overwritten(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    fake_jira.add_comment("OPS-1", "nope")
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Won't Fix")
    tracking.poll_all(wired)
    mine = {"wont_do_reason": "Replaced by action 7 (Bob, in the review)"}
    assert api.patch(f"/api/v1/actions/{action['id']}", json=mine, headers=WRITE).status_code == 200
    Worker(wired).run_once()
    assert _action(api, action["id"])["wont_do_reason"] == mine["wont_do_reason"]
    assert fake_jira.count("/rest/api/2/issue/OPS-1/comment", method="GET") == 0  # no request needed


def test_github_not_planned_takes_the_state_reason_and_the_comment(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    action = new_action(api, tracker={"kind": "github", "repo": "acme/payments"})
    Worker(gh_wired).run_once()
    fake_github.add_comment("acme/payments", 1, "Not planned: the service is retired in May.", user="bob")
    fake_github.close_issue("acme/payments", 1, reason="not_planned")
    tracking.poll_all(gh_wired)
    Worker(gh_wired).run_once()
    reason = _action(api, action["id"])["wont_do_reason"]
    assert reason == "not planned: Not planned: the service is retired in May. (bob)"
