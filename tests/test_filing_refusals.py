"""What real trackers refuse, driven through the product: REST → filing job → worker → real client → strict fake.

Optional fields degrade (the issue is filed without them, the action says what was dropped); only a target that
cannot take issues at all leaves the action unfiled, and then refile, a new target or cancel is the way back.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.context import Context
from app.worker import Worker
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import DEFAULT_ACCOUNT_ID, FakeJira
from tests.helpers import WRITE
from tests.tracker_fixtures import api, fake_github, fake_jira, gh_wired, new_action, tracker_mappings, wired

__all__ = ["api", "fake_github", "fake_jira", "gh_wired", "tracker_mappings", "wired"]
REPO = {"kind": "github", "repo": "acme/payments"}


def _action(client: TestClient, action_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/actions/{action_id}", headers=WRITE)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _creates(fake: FakeJira | FakeGitHub, path: str) -> int:
    return sum(1 for r in fake.requests if (r.method, r.path) == ("POST", path))


def _warned(action: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["field"]: w for w in action["warnings"]}


def _dropped(action: dict[str, Any]) -> list[str]:
    return [e["details"]["field"] for e in action["ledger"] if e["kind"] == "field_dropped"]


# -- GitHub ---------------------------------------------------------------------------------------------------------
def test_an_owner_github_cannot_assign_is_filed_at_once_without_the_assignee(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    fake_github.repos["acme/payments"].assignable.clear()  # alice left the organisation
    action = new_action(api, tracker=REPO)
    Worker(gh_wired).run_once()
    filed = _action(api, action["id"])
    assert filed["status"] == "open" and filed["tracker_key"] == "acme/payments#1" and filed["last_error"] is None
    issue = fake_github.issue("acme/payments", 1)
    assert issue.assignees == [] and "alice@example.com" in (issue.body or "")  # named in the text instead
    assert _warned(filed)["assignee"]["value"] == "alice"
    assert "Issue.assignees invalid 'alice'" in _warned(filed)["assignee"]["message"]
    assert _dropped(filed) == ["assignee"]
    # The next action for alice in that repository does not pay the refusal again: one create, not two.
    before = _creates(fake_github, "/repos/acme/payments/issues")
    second = new_action(api, incident_key="QT2", tracker=REPO)
    Worker(gh_wired).run_once()
    assert _creates(fake_github, "/repos/acme/payments/issues") - before == 1
    assert _warned(_action(api, second["id"]))["assignee"]["value"] == "alice"


def test_labels_and_assignee_github_drops_silently_become_warnings(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    fake_github.repos["acme/payments"].writers = {"someone-else"}  # the token has no push access
    action = new_action(api, tracker=REPO, priority="high")
    Worker(gh_wired).run_once()
    filed = _action(api, action["id"])
    assert filed["status"] == "open" and fake_github.issue("acme/payments", 1).labels == []
    assert set(_warned(filed)) == {"labels", "assignee"} and "push access" in _warned(filed)["labels"]["message"]
    assert "priority/high" in _warned(filed)["labels"]["value"]


def test_a_priority_edit_swaps_the_github_priority_label_and_keeps_the_others(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    action = new_action(api, tracker=REPO, priority="high")
    Worker(gh_wired).run_once()
    issue = fake_github.issue("acme/payments", 1)
    assert "priority/high" in issue.labels
    issue.labels.append("customer-facing")  # added by a person on GitHub
    assert api.patch(f"/api/v1/actions/{action['id']}", json={"priority": "low"}, headers=WRITE).status_code == 200
    Worker(gh_wired).run_once()
    assert "priority/low" in issue.labels and "priority/high" not in issue.labels
    assert {"customer-facing", "postmortem", "aftermath", "pm-1"} <= set(issue.labels)


def test_two_installations_filing_into_one_repository_never_adopt_each_others_issues(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub, tmp_path: Any
) -> None:
    """The second installation (a new database: its action ids start at 1 again) loses the answer to its create; the
    retry's lookup must find its own issue, not the first installation's action 1, and rewrite nothing."""
    from app.api.main import create_app
    from app.context import build_context
    from connectors.github_tracker import GitHubTracker
    from tests.conftest import make_settings

    first = new_action(api, tracker=REPO)
    Worker(gh_wired).run_once()
    theirs = fake_github.issue("acme/payments", 1)
    their_body = theirs.body

    settings = make_settings(f"sqlite:///{tmp_path / 'second.db'}", mappings=gh_wired.settings.mappings)
    from app import migrations

    migrations.upgrade(settings.database_url)
    other = build_context(settings)
    other.trackers["github"] = GitHubTracker("test-token", fake_github.url, seconds_between_writes=0, retry_backoff=0)
    try:
        with TestClient(create_app(other, embedded_worker=False)) as second_api:
            action = new_action(second_api, tracker=REPO)
            assert action["id"] == first["id"] == 1
            fake_github.fail_next(1, status=504, after_effect=True, path_contains="/issues", method="POST")
            Worker(other).run_once()
            _make_jobs_due(other)
            Worker(other).run_once()
            mine = _action(second_api, action["id"])
    finally:
        other.engine.dispose()
    assert len(fake_github.issues("acme/payments")) == 2
    assert mine["tracker_key"] == "acme/payments#2" and mine["status"] == "open"
    assert theirs.body == their_body  # the first installation's issue is untouched
    assert _action(api, first["id"])["tracker_key"] == "acme/payments#1"


def _make_jobs_due(context: Context) -> None:
    from sqlalchemy import update

    from app.db import utcnow
    from app.jobs import Job, JobStatus

    with context.write() as session:
        session.execute(update(Job).values(run_after=utcnow()).where(Job.status == JobStatus.PENDING))  # type: ignore[arg-type]


# -- Jira -----------------------------------------------------------------------------------------------------------
def test_a_jira_project_without_due_date_and_priority_on_its_screen_still_gets_the_issue(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    fake_jira.projects["OPS"].screen = {"description", "labels", "assignee"}
    action = new_action(api, priority="high")
    Worker(wired).run_once()
    filed = _action(api, action["id"])
    assert filed["status"] == "open" and filed["tracker_key"] == "OPS-1"
    assert set(_warned(filed)) == {"due_date", "priority"} and sorted(_dropped(filed)) == ["due_date", "priority"]
    assert "not on the appropriate screen" in _warned(filed)["due_date"]["message"]
    fields = fake_jira.issues["OPS-1"].fields
    assert fields["duedate"] is None and fields["assignee"]["accountId"] == DEFAULT_ACCOUNT_ID
    assert "*Due:* 2030-01-31" in fields["description"] and "*Priority:* high" in fields["description"]
    # Later edits leave the refused fields out too: the update goes through, nothing new is dropped.
    assert (
        api.patch(f"/api/v1/actions/{action['id']}", json={"due_date": "2030-02-28"}, headers=WRITE).status_code == 200
    )
    Worker(wired).run_once()
    assert "*Due:* 2030-02-28" in fake_jira.issues["OPS-1"].fields["description"]
    assert sorted(_dropped(_action(api, action["id"]))) == ["due_date", "priority"]


def test_an_owner_jira_cannot_assign_is_dropped_with_a_warning(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    fake_jira.projects["OPS"].assignable.clear()
    action = new_action(api)
    Worker(wired).run_once()
    filed = _action(api, action["id"])
    assert filed["tracker_key"] == "OPS-1" and fake_jira.issues["OPS-1"].fields["assignee"] is None
    assert "cannot be assigned issues" in _warned(filed)["assignee"]["message"]


def test_a_screen_without_labels_still_files_once_after_a_lost_answer(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    """Without labels the key label cannot be set either: the lookup finds the issue by its description marker."""
    fake_jira.projects["OPS"].screen = {"description", "duedate", "priority", "assignee"}
    first = new_action(api)
    Worker(wired).run_once()  # learns that OPS refuses labels
    assert fake_jira.issues["OPS-1"].fields["labels"] == [] and "labels" in _warned(_action(api, first["id"]))
    action = new_action(api, incident_key="QT2")
    fake_jira.fail_next(1, status=502, after_effect=True, path_contains="/rest/api/2/issue", method="POST")
    Worker(wired).run_once()  # created, but the answer is lost
    _make_jobs_due(wired)
    Worker(wired).run_once()
    filed = _action(api, action["id"])
    assert len(fake_jira.issues) == 2 and filed["tracker_key"] == "OPS-2" and "labels" in _warned(filed)


def test_a_target_that_cannot_take_issues_stays_unfiled_until_refiled_elsewhere(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    fake_jira.add_project("SEC", can_create=False)
    action = new_action(api, tracker={"kind": "jira", "project": "SEC", "issue_type": "Task"})
    Worker(wired).run_once()
    stuck = _action(api, action["id"])
    assert stuck["status"] == "unfiled" and "permission to create issues" in stuck["last_error"]
    assert [e["kind"] for e in stuck["ledger"]] == ["filing_failed"]
    refile = api.post(
        f"/api/v1/actions/{action['id']}/refile", json={"tracker": {"kind": "jira", "project": "OPS"}}, headers=WRITE
    )
    assert refile.status_code == 200 and refile.json()["last_error"] is None
    assert refile.json()["tracker"] == {"kind": "jira", "project": "OPS", "issue_type": "Task"}
    Worker(wired).run_once()
    filed = _action(api, action["id"])
    assert filed["tracker_key"] == "OPS-1" and [e["kind"] for e in filed["ledger"]] == ["filing_failed", "filed"]
    again = api.post(f"/api/v1/actions/{action['id']}/refile", headers=WRITE)
    assert again.status_code == 409 and "OPS-1" in again.json()["detail"]


def test_an_unknown_issue_type_is_fixed_by_a_new_target_and_a_mistake_is_cancelled(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api, tracker={"kind": "jira", "project": "OPS", "issue_type": "Epic"})
    mistake = new_action(api, incident_key="QT2", tracker={"kind": "jira", "project": "NOPE"})
    Worker(wired).run_once()
    assert "issue type" in _action(api, action["id"])["last_error"]
    retarget = {"tracker": {"kind": "jira", "project": "OPS", "issue_type": "Bug"}}
    assert api.patch(f"/api/v1/actions/{action['id']}", json=retarget, headers=WRITE).status_code == 200
    cancel = {"status": "wont_do", "wont_do_reason": "recorded twice by mistake"}
    cancelled = api.patch(f"/api/v1/actions/{mistake['id']}", json=cancel, headers=WRITE)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "wont_do"
    assert cancelled.json()["wont_do_reason"] == "recorded twice by mistake"
    Worker(wired).run_once()
    assert fake_jira.issues["OPS-1"].fields["issuetype"]["name"] == "Bug"
    assert len(fake_jira.issues) == 1 and _action(api, mistake["id"])["tracker_key"] is None
    # A filed action is closed in its tracker, not here; a cancelled one is not filed again.
    closing = api.patch(f"/api/v1/actions/{action['id']}", json=cancel, headers=WRITE)
    assert closing.status_code == 409 and "in the tracker" in closing.json()["detail"]
    assert api.post(f"/api/v1/actions/{mistake['id']}/refile", headers=WRITE).status_code == 409
    moving = api.patch(f"/api/v1/actions/{action['id']}", json={"tracker": REPO}, headers=WRITE)
    assert moving.status_code == 409
    no_reason = api.patch(f"/api/v1/actions/{mistake['id']}", json={"status": "wont_do"}, headers=WRITE)
    assert no_reason.status_code == 422


def test_a_failed_filing_is_tried_again_after_the_edit_that_fixes_it(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    fake_jira.projects["OPS"].screen = {"description"}  # everything optional refused: still filed
    fake_jira.add_project("NEW", assignable=(DEFAULT_ACCOUNT_ID,))
    action = new_action(api, tracker={"kind": "jira", "project": "GONE"})
    Worker(wired).run_once()
    assert _action(api, action["id"])["status"] == "unfiled"
    change = {"tracker": {"kind": "jira", "project": "NEW"}}
    assert api.patch(f"/api/v1/actions/{action['id']}", json=change, headers=WRITE).status_code == 200
    Worker(wired).run_once()
    assert _action(api, action["id"])["tracker_key"] == "NEW-1"


# -- text in each tracker's markup ---------------------------------------------------------------------------------
TRICKY = "Raise {code}max_conn{code} to [200|300] *now*; <!-- not a comment --> ping @acme/sre # h1. x"


def test_jira_issues_and_comments_read_cleanly_in_wiki_markup(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api, description=TRICKY, title="Pool *size* [x]", due_date="2020-01-01")
    Worker(wired).run_once()
    assert _action(api, action["id"])["tracker_key"] == "OPS-1"
    Worker(wired).run_once()  # the escalation the sweep queued for the overdue action (it stands in for a reminder)
    description, comments = fake_jira.rendered("OPS-1")
    for html in (description, *comments):
        assert "**" not in html and "](" not in html, html  # nothing of Markdown
    assert "<b>Owner:</b>" in description and "<b>Escalation, level 2 of 2:</b>" in comments[0]
    assert '<a href="http://aftermath.test/postmortems/1">PM-1 Checkout API down</a>' in description
    assert "{code}max_conn{code} to [200|300] *now*; &lt;!-- not a comment --&gt; ping @acme/sre # h1. x" in description
    assert "<pre>" not in description and "<b>now" not in description


def test_github_issues_are_markdown_that_shows_typed_text_and_pings_nobody(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    from markdown_it import MarkdownIt

    action = new_action(api, tracker=REPO, description=TRICKY)
    Worker(gh_wired).run_once()
    body = fake_github.issue("acme/payments", 1).body or ""
    rendered = MarkdownIt("commonmark").render(body)
    assert "<strong>Owner:</strong>" in rendered and "<code>" not in rendered and "<h1>" not in rendered
    assert "@acme/sre" not in body and "@\u2060acme/sre" in body  # shown as typed, not a team mention
    assert rendered.count("<!--") == 1 and "&lt;!-- not a comment" in rendered  # only Aftermath's marker hides
    assert _action(api, action["id"])["status"] == "open"
