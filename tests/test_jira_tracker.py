"""JiraTracker (real `jira` 3.10.5 client) against the fake Jira over HTTP."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from connectors.jira_tracker import JiraTracker
from connectors.markup import Document, paragraph
from connectors.targets import GitHubTarget, JiraTarget
from connectors.tracker import Backlink, IssueDraft, OutcomeUnknown, PermanentError, RetryLater
from tests.fakes.fake_jira import DEFAULT_ACCOUNT_ID, FakeJira

TARGET = JiraTarget(project="OPS", issue_type="Task")


def text(plain: str) -> Document:
    return Document.of(paragraph(plain))


@pytest.fixture
def fake() -> Iterator[FakeJira]:
    with FakeJira() as server:
        yield server


@pytest.fixture
def server_dc() -> Iterator[FakeJira]:
    with FakeJira(deployment="Server", token="dc-pat") as server:
        yield server


@pytest.fixture
def tracker(fake: FakeJira) -> JiraTracker:
    return JiraTracker(fake.url, fake.user, fake.token, timeout=5)


def draft(n: int = 42, **overrides: Any) -> IssueDraft:
    values: dict[str, Any] = {
        "idempotency_key": f"aftermath-action-{n}",
        "title": "Add disk alerts",
        "body": text("b"),
    }
    return IssueDraft(**{**values, **overrides})


def call(fake: FakeJira, method: str, path: str, body: Any = None) -> httpx.Response:
    auth = base64.b64encode(f"{fake.user}:{fake.token}".encode()).decode()
    return httpx.request(method, fake.url + path, json=body, headers={"Authorization": f"Basic {auth}"})


def test_create_sends_all_fields_label_and_remote_link_in_two_requests(fake: FakeJira, tracker: JiraTracker) -> None:
    ref = tracker.create_issue(
        TARGET,
        draft(
            title="Line one\nline two " + "x" * 300,
            body=text("Disk filled up."),
            labels=("post mortem", "sev1"),
            assignee=DEFAULT_ACCOUNT_ID,
            due_date=date(2025, 2, 1),
            priority="High",
            backlinks=(Backlink("finding-3", "http://aftermath.example/postmortems/7#finding-3", "Finding 3"),),
            extra_fields={"customfield_10010": "SRE"},
        ),
    )
    assert ref.key == "OPS-1" and ref.url == f"{fake.url}/browse/OPS-1"
    issue = fake.issues["OPS-1"]
    f = issue.fields
    assert f["summary"].startswith("Line one line two") and len(f["summary"]) == 255
    assert f["description"].startswith("Disk filled up.") and "aftermath-action-42" in f["description"]
    assert f["labels"] == ["post-mortem", "sev1", "aftermath-action-42"]
    assert f["assignee"]["accountId"] == DEFAULT_ACCOUNT_ID
    assert (f["duedate"], f["priority"]["name"], f["customfield_10010"]) == ("2025-02-01", "High", "SRE")
    [link] = issue.remote_links
    assert link["globalId"] == "aftermath:aftermath-action-42:finding-3"
    assert link["object"] == {"url": "http://aftermath.example/postmortems/7#finding-3", "title": "Finding 3"}
    # serverInfo (client construction) + POST issue + applinks (once per client) + POST remotelink; no prefetch GET
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/rest/api/2/serverInfo"),
        ("POST", "/rest/api/2/issue"),
        ("GET", "/rest/applinks/latest/listApplicationlinks"),
        ("POST", "/rest/api/2/issue/OPS-1/remotelink"),
    ]
    tracker.create_issue(TARGET, draft(7, backlinks=(Backlink("finding-1", "http://aftermath.example/x", "x"),)))
    assert fake.count("/listApplicationlinks") == 1 and fake.count("/serverInfo") == 1


def test_backlinks_are_upserts_and_their_failure_does_not_fail_the_create(fake: FakeJira, tracker: JiraTracker) -> None:
    fake.fail_next(1, status=500, path_contains="/remotelink")
    ref = tracker.create_issue(TARGET, draft(backlinks=(Backlink("finding-1", "http://a.example/1", "Finding"),)))
    assert fake.issues[ref.key].remote_links == [] and not ref.backlinked
    two = (Backlink("finding-1", "http://a.example/1b", "One"), Backlink("finding-2", "http://a.example/2", "Two"))
    tracker.update_issue(TARGET, ref.key, draft(backlinks=two), {"backlink"})
    tracker.update_issue(TARGET, ref.key, draft(backlinks=two), {"backlink"})  # again: still one link per finding
    links = fake.issues[ref.key].remote_links
    assert sorted(lk["object"]["url"] for lk in links) == ["http://a.example/1b", "http://a.example/2"]
    # A finding no longer answered loses its link; a link of someone else's stays.
    fake.issues[ref.key].remote_links.append({"id": 99, "globalId": "someone-else", "object": {"url": "http://x"}})
    tracker.update_issue(TARGET, ref.key, draft(backlinks=two[1:]), {"backlink"})
    assert sorted(lk["globalId"] for lk in fake.issues[ref.key].remote_links) == [
        "aftermath:aftermath-action-42:finding-2",
        "someone-else",
    ]


def test_unknown_custom_field_is_permanent_with_jiras_words(fake: FakeJira, tracker: JiraTracker) -> None:
    with pytest.raises(PermanentError) as err:
        tracker.create_issue(TARGET, draft(extra_fields={"customfield_10099": "x"}))
    assert (
        "Field 'customfield_10099' cannot be set. It is not on the appropriate screen, or unknown." in err.value.message
    )
    assert "customfield_10099:" in err.value.message and fake.issues == {}


def test_unknown_project_and_bad_values_are_permanent(fake: FakeJira, tracker: JiraTracker) -> None:
    with pytest.raises(PermanentError, match="Specify a valid project ID or key"):
        tracker.create_issue(JiraTarget(project="NOPE"), draft())
    with pytest.raises(PermanentError, match="priority"):
        tracker.create_issue(TARGET, draft(priority="Blocker"))
    with pytest.raises(PermanentError, match="cannot be assigned"):
        tracker.create_issue(TARGET, draft(assignee="someone-else"))
    with pytest.raises(PermanentError):
        tracker.create_issue(GitHubTarget(repo="o/r"), draft())


def test_bad_credentials_are_permanent(fake: FakeJira) -> None:
    with pytest.raises(PermanentError, match="401"):
        JiraTracker(fake.url, fake.user, "wrong", timeout=5).poll(TARGET, ["OPS-1"], None)


def test_429_is_retry_later_with_retry_after_and_not_resent(fake: FakeJira, tracker: JiraTracker) -> None:
    tracker.poll(TARGET, [], None)  # construct the client first
    fake.fail_next(1, status=429, retry_after=7, path_contains="/rest/api/2/issue")
    with pytest.raises(RetryLater) as err:
        tracker.create_issue(TARGET, draft())
    assert err.value.retry_after == 7 and not isinstance(err.value, OutcomeUnknown)
    assert fake.count("/rest/api/2/issue", "POST") == 1 and fake.issues == {}


def test_503_is_retry_later_and_on_create_outcome_unknown(fake: FakeJira, tracker: JiraTracker) -> None:
    key = fake.add_issue()
    fake.fail_next(1, status=503, retry_after=3, path_contains="/search/jql")
    with pytest.raises(RetryLater) as err:
        tracker.poll(TARGET, [key], None)
    assert err.value.retry_after == 3
    fake.fail_next(1, status=503, path_contains="/rest/api/2/issue")
    with pytest.raises(OutcomeUnknown):  # an OutcomeUnknown is a RetryLater that asks to look before re-filing
        tracker.create_issue(TARGET, draft())
    assert fake.count("/rest/api/2/issue", "POST") == 1  # the client's own retry of POST on 503 is off


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_given_as_an_http_date_is_honoured(fake: FakeJira, tracker: JiraTracker, status: int) -> None:
    key = fake.add_issue()
    fake.fail_next(1, status=status, retry_after=120, path_contains="/search/jql", retry_after_as_date=True)
    with pytest.raises(RetryLater) as err:
        tracker.poll(TARGET, [key], None)
    assert err.value.retry_after is not None and 118 <= err.value.retry_after <= 120  # the date has whole seconds


def test_lost_answer_is_outcome_unknown_and_find_issue_prevents_a_duplicate(
    fake: FakeJira, tracker: JiraTracker
) -> None:
    assert tracker.find_issue(TARGET, "aftermath-action-42") is None
    fake.fail_next(1, status=502, path_contains="/rest/api/2/issue", after_effect=True)
    with pytest.raises(OutcomeUnknown):
        tracker.create_issue(TARGET, draft())
    found = tracker.find_issue(TARGET, "aftermath-action-42")
    assert found is not None and found.key == "OPS-1" and len(fake.issues) == 1
    fake.add_issue(labels=["aftermath-action-420"])  # a near-miss label is not a match
    assert tracker.find_issue(TARGET, "aftermath-action-4") is None


def test_find_issue_reads_every_search_page_and_keeps_the_first_filed(fake: FakeJira, tracker: JiraTracker) -> None:
    keys = [fake.add_issue(labels=["aftermath-action-42"]) for _ in range(150)]  # duplicates an old bug left
    found = tracker.find_issue(TARGET, "aftermath-action-42")
    assert found is not None and found.key == keys[0]
    pages = [r.body for r in fake.requests if r.path == "/rest/api/2/search/jql"]
    assert len(pages) == 2 and not pages[0].get("nextPageToken") and pages[1]["nextPageToken"]


def test_read_timeout_on_create_is_outcome_unknown(fake: FakeJira) -> None:
    tracker = JiraTracker(fake.url, fake.user, fake.token, timeout=0.5)
    tracker.poll(TARGET, [], None)
    fake.delay_next(1.5, path_contains="/rest/api/2/issue")
    with pytest.raises(OutcomeUnknown):
        tracker.create_issue(TARGET, draft())
    deadline = time.monotonic() + 5  # the slow request still lands, as a real Jira's would
    while tracker.find_issue(TARGET, "aftermath-action-42") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tracker.find_issue(TARGET, "aftermath-action-42") is not None


def test_unreachable_jira_is_retry_later() -> None:
    with pytest.raises(RetryLater) as err:
        JiraTracker("http://127.0.0.1:9", "u", "t", timeout=2).create_issue(TARGET, draft())
    assert not isinstance(err.value, OutcomeUnknown)  # connection refused: nothing can have been created


def test_poll_250_keys_in_three_searches(fake: FakeJira, tracker: JiraTracker) -> None:
    keys = [fake.add_issue(summary=f"s{i}") for i in range(250)]
    fake.set_status(keys[5], "In Progress", "indeterminate")
    fake.set_status(keys[200], "Done", "done", resolution="Won't Do")
    result = tracker.poll(TARGET, keys, "cursor-1")
    searches = [r for r in fake.requests if r.path.endswith("/search/jql")]
    assert len(searches) == 3 and all(r.method == "POST" for r in searches)
    assert [len(r.body["jql"].split(",")) for r in searches] == [100, 100, 50]
    assert fake.count("/field") <= 1 and len(fake.requests) == 1 + fake.count("/field") + 3  # + serverInfo
    assert set(result.states) == set(keys) and result.missing == () and result.cursor == "cursor-1"
    s = result.states[keys[200]]
    assert (s.raw_status, s.category, s.resolution, s.moved_to) == ("Done", "done", "Won't Do", None)
    assert result.states[keys[5]].category == "indeterminate" and result.states[keys[0]].category == "new"
    assert s.updated_at is not None and s.updated_at.tzinfo is not None
    tracker.poll(TARGET, keys, None)
    assert fake.count("/field") <= 1  # cached per client


def test_deleted_keys_go_to_missing_at_one_extra_search(fake: FakeJira, tracker: JiraTracker) -> None:
    keys = [fake.add_issue() for _ in range(5)]
    fake.delete_issue(keys[1])
    fake.delete_issue(keys[3])
    result = tracker.poll(TARGET, [*keys, "not a key"], None)
    assert set(result.missing) == {keys[1], keys[3], "not a key"}
    assert set(result.states) == {keys[0], keys[2], keys[4]}
    assert fake.count("/search/jql") == 2  # Jira names every missing key in the one 400


def test_unattributable_400_falls_back_to_one_get_per_key_but_403_does_not(
    fake: FakeJira, tracker: JiraTracker
) -> None:
    keys = [fake.add_issue() for _ in range(3)]
    fake.fail_next(1, status=400, path_contains="/search/jql")
    result = tracker.poll(TARGET, keys, None)
    assert set(result.states) == set(keys) and fake.count("/search/jql") == 1
    assert sum(fake.count(f"/rest/api/2/issue/{k}", "GET") for k in keys) == 3
    fake.fail_next(1, status=403, path_contains="/search/jql")
    with pytest.raises(PermanentError, match="403"):
        tracker.poll(TARGET, keys, None)


def test_moved_issue_reports_its_new_key(fake: FakeJira, tracker: JiraTracker) -> None:
    fake.add_project("PLAT")
    key, other = fake.add_issue(), fake.add_issue()
    new_key = fake.move_issue(key, "PLAT")
    result = tracker.poll(TARGET, [key, other], None)
    assert result.states[key].moved_to == new_key and result.states[other].moved_to is None
    assert result.missing == ()


def test_add_comment_sends_plain_text_on_v2(fake: FakeJira, tracker: JiraTracker) -> None:
    key = fake.add_issue()
    tracker.add_comment(key, text("Reminder: due tomorrow"))
    assert fake.issues[key].comments[0]["body"] == "Reminder: due tomorrow"
    with pytest.raises(PermanentError):
        tracker.add_comment("OPS-999", text("x"))


def test_server_dc_with_bearer_pat(server_dc: FakeJira) -> None:
    tracker = JiraTracker(server_dc.url, None, "dc-pat", timeout=5)
    ref = tracker.create_issue(
        TARGET, draft(assignee="alice", backlinks=(Backlink("finding-1", "http://a.example/1", "F"),))
    )
    assert server_dc.issues[ref.key].fields["assignee"]["name"] == "alice"  # Server takes {"name"}, not accountId
    assert tracker.find_issue(TARGET, "aftermath-action-42") == ref
    gone = server_dc.add_issue()
    server_dc.delete_issue(gone)
    result = tracker.poll(TARGET, [ref.key, gone], None)
    assert result.states[ref.key].assignee == "alice" and result.missing == (gone,)
    assert server_dc.count("/search/jql") == 0 and server_dc.count("/rest/api/2/search", "POST") == 3
    with pytest.raises(PermanentError, match="401"):
        JiraTracker(server_dc.url, None, "wrong", timeout=5).poll(TARGET, [ref.key], None)


def test_removed_search_answers_410_on_cloud(fake: FakeJira) -> None:
    # The connector only reaches the classic search on Server/DC; were it to send it to Cloud, this is the answer.
    r = call(fake, "POST", "/rest/api/2/search", {"jql": "project = OPS"})
    assert r.status_code == 410 and "CHANGE-2046" in r.json()["errorMessages"][0]


# -- updates (PUT issue/{key}) ----------------------------------------------------------------------------------------


def _filed(fake: FakeJira, tracker: JiraTracker) -> str:
    """An issue filed by the tracker, then touched by people in Jira: a label of their own and a status change."""
    ref = tracker.create_issue(
        TARGET,
        draft(
            labels=("postmortem",),
            priority="Medium",
            backlinks=(Backlink("finding-1", "http://a.example/pm/7#finding-1", "F1"),),
        ),
    )
    fake.issues[ref.key].fields["labels"].append("customer-facing")
    fake.set_status(ref.key, "In Progress", "indeterminate")
    return ref.key


def test_update_rewrites_the_issue_in_one_put_and_keeps_labels_link_and_status(
    fake: FakeJira, tracker: JiraTracker
) -> None:
    key = _filed(fake, tracker)
    before = len(fake.requests)
    tracker.update_issue(
        TARGET,
        key,
        draft(
            title="[PM-7] Rotate\nlogs",
            body=text("New body."),
            labels=("postmortem", "pm-pm-7"),
            assignee=DEFAULT_ACCOUNT_ID,
            due_date=date(2031, 3, 1),
            priority="High",
            backlinks=(Backlink("finding-2", "http://a.example/pm/7#finding-2", "F2"),),
            extra_fields={"customfield_10010": "SRE"},
        ),
    )
    # A GET (still this action's issue?), the PUT, and the backlinks: upsert the new one, list, remove the stale one
    assert [(r.method, r.path) for r in fake.requests[before:]] == [
        ("GET", f"/rest/api/2/issue/{key}"),
        ("PUT", f"/rest/api/2/issue/{key}"),
        ("POST", f"/rest/api/2/issue/{key}/remotelink"),
        ("GET", f"/rest/api/2/issue/{key}/remotelink"),
        ("DELETE", f"/rest/api/2/issue/{key}/remotelink/{fake.issues[key].remote_links[0]['id'] - 1}"),
    ]
    put = fake.requests[before + 1].body
    assert "labels" not in put["fields"] and "customfield_10010" not in put["fields"]  # set-less; extras not re-sent
    assert put["update"] == {"labels": [{"add": "postmortem"}, {"add": "pm-pm-7"}, {"add": "aftermath-action-42"}]}
    f = fake.issues[key].fields
    assert f["summary"] == "[PM-7] Rotate logs"
    assert f["description"].startswith("New body.") and f["description"].endswith("key: aftermath-action-42")
    assert f["labels"] == ["postmortem", "aftermath-action-42", "customer-facing", "pm-pm-7"]  # nothing removed
    assert (f["duedate"], f["priority"]["name"], f["assignee"]["accountId"]) == (
        "2031-03-01",
        "High",
        DEFAULT_ACCOUNT_ID,
    )
    assert f["status"]["name"] == "In Progress"
    [link] = fake.issues[key].remote_links  # the finding answered now; the old one's link is gone
    assert link["object"]["url"] == "http://a.example/pm/7#finding-2"


def test_update_of_some_parts_sends_only_those(fake: FakeJira, tracker: JiraTracker) -> None:
    key = _filed(fake, tracker)
    fake.issues[key].fields["priority"]["name"] = "Highest"  # raised by someone in Jira meanwhile
    before = len(fake.requests)
    tracker.update_issue(TARGET, key, draft(title="Renamed", priority="Low", due_date=date(2031, 1, 1)), {"title"})
    assert [(r.method, r.path) for r in fake.requests[before:]] == [
        ("GET", f"/rest/api/2/issue/{key}"),  # still this action's issue?
        ("PUT", f"/rest/api/2/issue/{key}"),
    ]
    assert set(fake.requests[before + 1].body["fields"]) == {"summary"}
    f = fake.issues[key].fields
    assert (f["summary"], f["priority"]["name"], f["duedate"]) == ("Renamed", "Highest", None)
    assert f["description"].startswith("b\n\n----")  # the body was not among the parts


def test_update_can_unassign_and_clear_the_due_date(fake: FakeJira, tracker: JiraTracker) -> None:
    ref = tracker.create_issue(TARGET, draft(assignee=DEFAULT_ACCOUNT_ID, due_date=date(2030, 1, 1)))
    tracker.update_issue(TARGET, ref.key, draft(), {"assignee", "due_date", "priority"})
    body = fake.requests[-1].body
    # Cloud unassigns with a null accountId; an unmapped priority (None) is not sent: Jira cannot empty it
    assert body["fields"] == {"duedate": None, "assignee": {"accountId": None}}
    f = fake.issues[ref.key].fields
    assert (f["assignee"], f["duedate"], f["priority"]["name"]) == (None, None, "Medium")


def test_update_refusals_are_permanent_with_jiras_words_and_change_nothing(
    fake: FakeJira, tracker: JiraTracker
) -> None:
    key = _filed(fake, tracker)
    snapshot = dict(fake.issues[key].fields)
    with pytest.raises(PermanentError, match="User 'someone-else' cannot be assigned issues"):
        tracker.update_issue(TARGET, key, draft(title="New", assignee="someone-else"))
    with pytest.raises(PermanentError, match="priority: The priority selected is invalid"):
        tracker.update_issue(TARGET, key, draft(title="New", priority="Blocker"))
    assert fake.issues[key].fields == snapshot  # all or nothing
    with pytest.raises(PermanentError, match="404"):
        tracker.update_issue(TARGET, "OPS-999", draft())
    with pytest.raises(PermanentError, match="not a Jira issue key"):
        tracker.update_issue(TARGET, "OPS-1/../x", draft())


def test_update_failures_are_plain_retry_later(fake: FakeJira, tracker: JiraTracker) -> None:
    key = _filed(fake, tracker)
    for status, retry_after in ((503, None), (429, 7)):
        fake.fail_next(1, status=status, retry_after=retry_after, path_contains=f"/issue/{key}", method="PUT")
        with pytest.raises(RetryLater) as caught:
            tracker.update_issue(TARGET, key, draft(title="New"), {"title"})
        # a PUT is idempotent: no "it may have happened" look-up is needed before the retry
        assert not isinstance(caught.value, OutcomeUnknown) and caught.value.retry_after == retry_after
    assert fake.count(f"/issue/{key}", "PUT") == 2  # not re-sent by the client


def test_update_on_server_dc_assigns_by_name(server_dc: FakeJira) -> None:
    tracker = JiraTracker(server_dc.url, None, "dc-pat", timeout=5)
    ref = tracker.create_issue(TARGET, draft())
    tracker.update_issue(TARGET, ref.key, draft(assignee="alice"), {"assignee"})
    assert server_dc.requests[-1].body["fields"] == {"assignee": {"name": "alice"}}
    assert server_dc.issues[ref.key].fields["assignee"]["name"] == "alice"


def test_an_issue_without_this_actions_key_is_never_rewritten(fake: FakeJira, tracker: JiraTracker) -> None:
    stranger = fake.add_issue(summary="someone else's", labels=["aftermath-0ther-action-42"])
    with pytest.raises(PermanentError, match="does not carry this action's key"):
        tracker.update_issue(TARGET, stranger, draft(title="Hijacked"))
    assert fake.issues[stranger].fields["summary"] == "someone else's"
    assert fake.count(f"/issue/{stranger}", "PUT") == 0


def test_find_ignores_an_issue_older_than_the_first_attempt(fake: FakeJira, tracker: JiraTracker) -> None:
    from datetime import UTC, datetime, timedelta

    old = tracker.create_issue(TARGET, draft())
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert tracker.find_issue(TARGET, "aftermath-action-42") == old
    assert tracker.find_issue(TARGET, "aftermath-action-42", created_after=later) is None


def test_latest_comment_is_the_newest_by_someone_else(fake: FakeJira, tracker: JiraTracker) -> None:
    key = fake.add_issue()
    assert tracker.latest_comment(key) is None  # no comment at all
    fake.add_comment(key, "First thoughts")
    fake.add_comment(key, "We replaced the pool with pgbouncer; this is moot.")
    tracker.add_comment(key, text("Reminder: due tomorrow"))  # Aftermath's own: no answer to "why"
    comment = tracker.latest_comment(key)
    assert comment is not None and comment.text == "We replaced the pool with pgbouncer; this is moot."
    assert comment.author == DEFAULT_ACCOUNT_ID.title() and comment.created_at is not None  # the fake's display name
    comments = [r for r in fake.requests if r.path == f"/rest/api/2/issue/{key}/comment" and r.method == "GET"]
    assert comments[-1].query == {"maxResults": ["50"], "orderBy": ["-created"]}
    with pytest.raises(PermanentError):
        tracker.latest_comment("OPS-999")
    with pytest.raises(PermanentError):
        tracker.latest_comment("not a key")


def test_latest_comment_on_server_dc_names_users_by_name(server_dc: FakeJira) -> None:
    tracker = JiraTracker(server_dc.url, None, "dc-pat", timeout=5)
    key = server_dc.add_issue()
    server_dc.add_comment(key, "Declined by the platform team", author="bob")
    tracker.add_comment(key, text("Escalation"))
    comment = tracker.latest_comment(key)
    assert comment is not None and (comment.author, comment.text) == ("Bob", "Declined by the platform team")


def test_fake_jira_refuses_comment_orders_it_does_not_know(fake: FakeJira) -> None:
    key = fake.add_issue()
    auth = (fake.user, fake.token)
    url = f"{fake.url}/rest/api/2/issue/{key}/comment"
    assert httpx.get(url, params={"orderBy": "updated"}, auth=auth).status_code == 400
    assert httpx.get(url, params={"maxResults": "many"}, auth=auth).status_code == 400
    assert httpx.get(url, auth=auth).json() == {"startAt": 0, "maxResults": 5000, "total": 0, "comments": []}
