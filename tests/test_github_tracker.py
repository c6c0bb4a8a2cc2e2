"""GitHubTracker against the fake GitHub over real HTTP with real PyGithub: filing, idempotent recovery without
search, error mapping, rate limits, conditional polling and deleted/transferred issues."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from connectors.github_tracker import GitHubTracker
from connectors.markup import Document, paragraph
from connectors.targets import GitHubTarget
from connectors.tracker import IssueDraft, OutcomeUnknown, PermanentError, RetryLater
from tests.fakes.fake_github import FakeGitHub

TOKEN = "test-token"
REPO = "acme/ops"
TARGET = GitHubTarget(repo=REPO)


def text(plain: str) -> Document:
    return Document.of(paragraph(plain))


def make_tracker(fake: FakeGitHub, **kw: object) -> GitHubTracker:
    options: dict[str, object] = {"timeout": 5, "seconds_between_requests": 0, "seconds_between_writes": 0}
    options["get_retries"] = 0
    options.update(kw)
    return GitHubTracker(TOKEN, fake.url, **options)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.add_repo(REPO, assignable={"alice"})
        server.add_repo("acme/other")
        yield server


@pytest.fixture
def tracker(fake: FakeGitHub) -> GitHubTracker:
    return make_tracker(fake)


def draft(key: str = "aftermath-action-42", **kw: object) -> IssueDraft:
    values: dict[str, object] = {"idempotency_key": key, "title": "PM-7: add disk alert", "body": text("Do it.")}
    values.update(kw)
    return IssueDraft(**values)  # type: ignore[arg-type]


# ---- filing ---------------------------------------------------------------------------------------------------------
def test_create_sends_labels_assignee_and_marker_in_one_request(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    ref = tracker.create_issue(TARGET, draft(labels=("aftermath", " sev  2 ", "Aftermath", ""), assignee="alice"))

    assert ref.key == "acme/ops#1"
    assert ref.url.startswith(fake.url)
    issue = fake.issue(REPO, 1)
    assert issue.labels == ["aftermath", "sev 2"]  # trimmed, blanks and case-duplicates dropped
    assert issue.assignees == ["alice"]
    assert issue.body == "Do it.\n\n<!-- aftermath:key=aftermath-action-42 -->"
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/repos/acme/ops/issues")]
    assert fake.requests[0].headers["Authorization"] == f"token {TOKEN}"


def test_overlong_title_and_body_are_cut_but_the_marker_survives(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    tracker.create_issue(TARGET, draft(title="t" * 400, body=text("b" * 70000)))
    issue = fake.issue(REPO, 1)
    assert len(issue.title) == 256
    assert issue.body is not None and len(issue.body) <= 65536
    assert issue.body.endswith("<!-- aftermath:key=aftermath-action-42 -->")


def test_unassignable_user_is_permanent_with_githubs_words(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    with pytest.raises(PermanentError) as caught:
        tracker.create_issue(TARGET, draft(assignee="mallory"))
    assert "Validation Failed" in caught.value.message
    assert "Issue.assignees invalid 'mallory'" in caught.value.message
    assert fake.issues(REPO) == []


def test_unknown_repo_is_permanent_and_named(tracker: GitHubTracker) -> None:
    target = GitHubTarget(repo="acme/nope")
    for call in (
        lambda: tracker.create_issue(target, draft()),
        lambda: tracker.find_issue(target, "aftermath-action-1"),
        lambda: tracker.poll(target, ["acme/nope#1"], None),
    ):
        with pytest.raises(PermanentError, match="acme/nope"):
            call()


def test_bad_token_and_disabled_issues_are_permanent(fake: FakeGitHub) -> None:
    with pytest.raises(PermanentError, match="Bad credentials"):
        GitHubTracker("wrong", fake.url, seconds_between_requests=0).create_issue(TARGET, draft())
    fake.add_repo("acme/no-issues", has_issues=False)
    with pytest.raises(PermanentError, match="Issues are disabled"):
        make_tracker(fake).create_issue(GitHubTarget(repo="acme/no-issues"), draft())


def test_keys_that_would_break_the_marker_are_refused(tracker: GitHubTracker) -> None:
    for bad in ("a-->b", "has space", "x--y", ""):
        with pytest.raises(PermanentError):
            tracker.create_issue(TARGET, draft(key=bad))


# ---- lost answers and idempotent recovery ---------------------------------------------------------------------------
def test_502_after_create_is_outcome_unknown_and_find_recovers_without_search(
    fake: FakeGitHub, tracker: GitHubTracker
) -> None:
    fake.fail_next(1, status=502, path_contains="/issues", method="POST", after_effect=True)
    with pytest.raises(OutcomeUnknown):
        tracker.create_issue(TARGET, draft())
    assert fake.count("POST") == 1  # the client did not re-send the POST on its own

    ref = tracker.find_issue(TARGET, "aftermath-action-42")

    assert ref is not None and ref.key == "acme/ops#1"
    assert len(fake.issues(REPO)) == 1
    assert fake.count(path_contains="/search") == 0  # its index lags writes: the listing is what finds the issue
    listing = fake.requests[-1]
    assert listing.query == {"state": "all", "sort": "created", "direction": "desc", "per_page": "100"}


def test_timeout_after_create_is_outcome_unknown(fake: FakeGitHub) -> None:
    tracker = make_tracker(fake, timeout=1)
    fake.delay_next(1.5, path_contains="/issues", method="POST")  # GitHub stores the issue, the answer is late
    with pytest.raises(OutcomeUnknown):
        tracker.create_issue(TARGET, draft())
    assert fake.count("POST") == 1
    assert tracker.find_issue(TARGET, "aftermath-action-42") is not None


def test_connection_reset_on_create_is_unknown_and_on_read_is_retried(fake: FakeGitHub) -> None:
    tracker = make_tracker(fake, get_retries=1, retry_backoff=0)
    fake.fail_next(1, status=0, path_contains="/issues", method="POST", after_effect=True)
    with pytest.raises(OutcomeUnknown):
        tracker.create_issue(TARGET, draft())
    fake.fail_next(1, status=0, path_contains="/issues", method="GET")
    assert tracker.find_issue(TARGET, "aftermath-action-42") is not None  # the read was re-sent once
    assert (fake.count("POST"), fake.count("GET"), len(fake.issues(REPO))) == (1, 2, 1)


def test_refused_connection_is_plain_retry_later_not_unknown(fake: FakeGitHub) -> None:
    tracker = make_tracker(fake)
    fake.stop()
    with pytest.raises(RetryLater) as caught:
        tracker.create_issue(TARGET, draft())
    assert not isinstance(caught.value, OutcomeUnknown)  # nothing was sent, so nothing can exist


def test_find_matches_the_marker_exactly_and_prefers_the_oldest(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    tracker.create_issue(TARGET, draft(key="aftermath-action-42"))
    tracker.create_issue(TARGET, draft(key="aftermath-action-4"))
    tracker.create_issue(TARGET, draft(key="aftermath-action-42"))  # a duplicate from an earlier bug

    four = tracker.find_issue(TARGET, "aftermath-action-4")
    forty_two = tracker.find_issue(TARGET, "aftermath-action-42")

    assert four is not None and four.key == "acme/ops#2"
    assert forty_two is not None and forty_two.key == "acme/ops#1"
    assert tracker.find_issue(TARGET, "aftermath-action-7") is None


def test_find_reads_at_most_two_pages_newest_first(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    tracker.create_issue(TARGET, draft(key="old-one"))
    for _ in range(150):
        fake.add_issue(REPO)
    before = fake.count("GET")
    assert tracker.find_issue(TARGET, "old-one") is not None
    assert fake.count("GET") - before == 2
    for _ in range(100):
        fake.add_issue(REPO)
    assert tracker.find_issue(TARGET, "old-one") is None  # documented reach: the newest 200 issues


def test_find_can_narrow_to_the_bots_own_issues(fake: FakeGitHub) -> None:
    tracker = make_tracker(fake, creator="aftermath-bot")
    tracker.create_issue(TARGET, draft())
    fake.add_issue(REPO, body="copied <!-- aftermath:key=aftermath-action-42 -->", creator="someone")
    ref = tracker.find_issue(TARGET, "aftermath-action-42")
    assert ref is not None and ref.key == "acme/ops#1"
    assert fake.requests[-1].query["creator"] == "aftermath-bot"


# ---- rate limits and transient errors -------------------------------------------------------------------------------
def test_secondary_limit_is_retry_later_without_a_client_retry() -> None:
    with FakeGitHub(creates_per_minute=3) as fake:
        fake.add_repo(REPO)
        tracker = make_tracker(fake)
        for n in range(3):
            tracker.create_issue(TARGET, draft(key=f"k{n}"))
        with pytest.raises(RetryLater) as caught:
            tracker.create_issue(TARGET, draft(key="k3"))
        assert not isinstance(caught.value, OutcomeUnknown)
        assert caught.value.retry_after is not None and caught.value.retry_after >= 60
        assert fake.count("POST") == 4
        assert fake.secondary_violations == 1
        assert len(fake.issues(REPO)) == 3


def test_primary_limit_waits_until_reset(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    fake.set_rate_limit(remaining=0, reset_in=600)
    for call in (lambda: tracker.create_issue(TARGET, draft()), lambda: tracker.poll(TARGET, [], None)):
        with pytest.raises(RetryLater, match="rate limit") as caught:
            call()
        assert caught.value.retry_after is not None and 590 <= caught.value.retry_after <= 601


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_given_as_an_http_date_is_honoured(fake: FakeGitHub, tracker: GitHubTracker, status: int) -> None:
    fake.fail_next(1, status=status, retry_after=120, method="GET", retry_after_as_date=True)
    with pytest.raises(RetryLater) as caught:
        tracker.poll(TARGET, [], None)
    assert caught.value.retry_after is not None and 118 <= caught.value.retry_after <= 120  # whole seconds


def test_reads_retry_5xx_a_few_times_then_give_retry_later(fake: FakeGitHub) -> None:
    tracker = make_tracker(fake, get_retries=2, retry_backoff=0)
    fake.fail_next(2, status=502, path_contains="/issues", method="GET")
    assert tracker.poll(TARGET, [], None).states == {}
    assert fake.count("GET") == 3
    fake.fail_next(3, status=503, path_contains="/issues", method="GET")
    with pytest.raises(RetryLater) as caught:
        tracker.poll(TARGET, [], None)
    assert not isinstance(caught.value, OutcomeUnknown)


def test_comment_is_posted_once(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    ref = tracker.create_issue(TARGET, draft())
    tracker.add_comment(ref.key, text("Reminder: due Friday"))
    assert fake.issue(REPO, 1).comments == ["Reminder: due Friday"]
    fake.fail_next(1, status=500, path_contains="/comments", after_effect=True)
    with pytest.raises(OutcomeUnknown):
        tracker.add_comment(ref.key, text("again"))
    assert fake.count("POST", "/comments") == 2


# ---- polling --------------------------------------------------------------------------------------------------------
def _file(tracker: GitHubTracker, n: int) -> list[str]:
    return [tracker.create_issue(TARGET, draft(key=f"action-{i}")).key for i in range(n)]


def test_poll_then_free_304_then_not_planned(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    keys = _file(tracker, 3)
    fake.add_issue(REPO, title="untracked")

    first = tracker.poll(TARGET, keys[:2], None)
    assert set(first.states) == set(keys[:2])
    assert {s.raw_status for s in first.states.values()} == {"open"}
    assert first.states[keys[0]].category == "open" and first.states[keys[0]].resolution is None

    budget = fake.core_remaining
    second = tracker.poll(TARGET, keys[:2], first.cursor)
    assert second.states == {} and second.cursor == first.cursor
    assert fake.requests[-1].status == 304 and "If-None-Match" in fake.requests[-1].headers
    assert fake.core_remaining == budget  # the conditional hit cost nothing

    fake.advance(120)
    fake.close_issue(REPO, 1, "not_planned")
    third = tracker.poll(TARGET, keys[:2], second.cursor)
    state = third.states[keys[0]]
    assert (state.raw_status, state.category, state.resolution) == ("closed:not_planned", "closed", "not_planned")
    # keys[1] was last updated right at the previous high-water mark: re-read by the overlap, unchanged
    assert {s.raw_status for k, s in third.states.items() if k != keys[0]} <= {"open"}

    tracker.poll(TARGET, keys[:2], third.cursor)
    assert fake.requests[-1].status == 304


def test_poll_250_tracked_issues_in_three_requests_and_catches_a_change_on_the_last_page(
    fake: FakeGitHub, tracker: GitHubTracker
) -> None:
    numbers = []
    for i in range(250):
        fake.advance(1)  # a repository's history is spread out; the poll overlap is 60 s
        numbers.append(fake.add_issue(REPO, body=f"n{i}"))
    keys = [f"{REPO}#{n}" for n in numbers]
    before = fake.count("GET")
    tracker.poll(TARGET, [], None)  # nothing tracked: page 1 is enough to set up a cursor
    assert fake.count("GET") - before == 1

    before = fake.count("GET")
    first = tracker.poll(TARGET, keys, None)
    assert len(first.states) == 250 and first.missing == ()
    assert fake.count("GET") - before == 3

    fake.advance(120)
    fake.close_issue(REPO, numbers[0])  # the oldest: it sat on page 3, an ascending listing would keep page 1 as is
    before = fake.count("GET")
    second = tracker.poll(TARGET, keys, first.cursor)
    assert second.states[keys[0]].raw_status == "closed:completed"
    assert len(second.states) < 70  # the change plus the overlap window, not the whole repository
    assert fake.count("GET") - before == 1


def test_poll_only_reports_this_repos_tracked_keys_and_reopen(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    keys = _file(tracker, 2)
    other = make_tracker(fake).create_issue(GitHubTarget(repo="acme/other"), draft()).key
    first = tracker.poll(TARGET, [*keys, other, "not-a-key"], None)
    assert set(first.states) == set(keys)

    fake.advance(120)
    fake.close_issue(REPO, 2)
    fake.reopen_issue(REPO, 2)
    again = tracker.poll(TARGET, keys, first.cursor)
    assert again.states[keys[1]].raw_status == "open" and again.states[keys[1]].resolution is None


def test_first_poll_lists_absent_keys_as_missing(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    keys = _file(tracker, 3)
    fake.delete_issue(REPO, 2)
    result = tracker.poll(TARGET, keys, None)
    assert result.missing == (keys[1],)
    assert set(result.states) == {keys[0], keys[2]}


def test_cursor_window_is_rebased_after_a_day_then_304_again(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    keys = _file(tracker, 2)
    cursor = tracker.poll(TARGET, keys, None).cursor
    assert cursor is not None and json.loads(cursor)["since"] is None

    fake.advance(2 * 86400)
    fake.close_issue(REPO, 2)
    moved = tracker.poll(TARGET, keys, cursor)
    assert moved.states[keys[1]].raw_status == "closed:completed"
    assert moved.cursor is not None and json.loads(moved.cursor)["since"] is not None

    settled = tracker.poll(TARGET, keys, moved.cursor)  # new window: one 200 (the overlap), then free 304s
    assert fake.requests[-1].query["since"] == json.loads(moved.cursor)["since"]
    tracker.poll(TARGET, keys, settled.cursor)
    assert fake.requests[-1].status == 304


def test_garbage_cursor_starts_over(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    keys = _file(tracker, 1)
    assert set(tracker.poll(TARGET, keys, "{not json").states) == set(keys)


# ---- the rare single-issue check ------------------------------------------------------------------------------------
def test_check_issue_sees_state_deletion_and_transfer(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    a, b, c = _file(tracker, 3)
    fake.close_issue(REPO, 1, "completed")
    state = tracker.check_issue(a)
    assert state is not None and state.raw_status == "closed:completed" and state.moved_to is None

    fake.delete_issue(REPO, 2)
    assert tracker.check_issue(b) is None

    new_number = fake.transfer_issue(REPO, 3, "acme/other")
    moved = tracker.check_issue(c)
    assert moved is not None and moved.key == c and moved.moved_to == f"acme/other#{new_number}"
    assert any(r.status == 301 for r in fake.requests)

    with pytest.raises(PermanentError, match="acme/ops#99"):
        tracker.check_issue("acme/ops#99")


# ---- updates (PATCH) -------------------------------------------------------------------------------------------------
def _filed(fake: FakeGitHub, tracker: GitHubTracker) -> str:
    """An issue filed by the tracker, then touched by people: a label of their own, and closed."""
    ref = tracker.create_issue(TARGET, draft(labels=("postmortem",), assignee="alice"))
    fake.issue(REPO, 1).labels.append("customer-facing")
    fake.close_issue(REPO, 1, "not_planned")
    return ref.key


def test_update_patches_title_body_and_assignee_once_and_keeps_labels_and_state(
    fake: FakeGitHub, tracker: GitHubTracker
) -> None:
    key = _filed(fake, tracker)
    fake.repos[REPO].assignable.add("bob")
    before = len(fake.requests)
    tracker.update_issue(TARGET, key, draft(title="PM-7:  new\ntitle", body=text("New body."), assignee="bob"))
    # One GET (is it still this action's issue, and its labels), one PATCH; never the repository.
    [read, patch] = fake.requests[before:]
    assert (read.method, read.path, patch.method, patch.path) == ("GET", "/repos/acme/ops/issues/1", "PATCH", read.path)
    assert set(patch.body) == {"title", "body", "assignees"}  # labels unchanged are not sent (would replace them)
    issue = fake.issue(REPO, 1)
    assert (issue.title, issue.assignees) == ("PM-7: new title", ["bob"])
    assert issue.body == "New body.\n\n<!-- aftermath:key=aftermath-action-42 -->"
    assert issue.labels == ["postmortem", "customer-facing"]
    assert (issue.state, issue.state_reason) == ("closed", "not_planned")
    assert tracker.find_issue(TARGET, "aftermath-action-42") is not None  # the marker still finds it


def test_update_sends_only_the_parts_github_shows(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    key = _filed(fake, tracker)
    before = len(fake.requests)
    tracker.update_issue(TARGET, key, draft(), {"due_date", "backlink"})  # nothing GitHub has a field for
    assert len(fake.requests) == before
    tracker.update_issue(TARGET, key, draft(), {"priority"})  # no priority label mapped: one GET, nothing to write
    assert [r.method for r in fake.requests[before:]] == ["GET"]
    tracker.update_issue(TARGET, key, draft(assignee=None), {"assignee"})
    assert fake.requests[-1].body == {"assignees": []}  # an unmapped owner unassigns
    assert fake.issue(REPO, 1).assignees == [] and fake.issue(REPO, 1).title == "PM-7: add disk alert"


def test_update_refusals_are_permanent_and_change_nothing(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    key = _filed(fake, tracker)
    with pytest.raises(PermanentError, match=r"Issue\.assignees invalid 'mallory'"):
        tracker.update_issue(TARGET, key, draft(title="Renamed", assignee="mallory"))
    assert fake.issue(REPO, 1).title == "PM-7: add disk alert" and fake.issue(REPO, 1).assignees == ["alice"]
    with pytest.raises(PermanentError, match="not found"):
        tracker.update_issue(TARGET, "acme/ops#99", draft())
    with pytest.raises(PermanentError, match="Not a GitHub issue key"):
        tracker.update_issue(TARGET, "acme/ops/issues/1", draft())


def test_update_5xx_and_reset_are_plain_retry_later_not_unknown(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    key = _filed(fake, tracker)
    for status in (502, 0):  # 0: the connection is dropped without an answer
        fake.fail_next(1, status=status, method="PATCH", after_effect=True)
        with pytest.raises(RetryLater) as caught:
            tracker.update_issue(TARGET, key, draft(title="Renamed"), {"title"})
        assert not isinstance(caught.value, OutcomeUnknown)  # a PATCH is idempotent: just send it again
    assert fake.count("PATCH") == 2  # writes are never re-sent by the client itself
    tracker.update_issue(TARGET, key, draft(title="Renamed"), {"title"})
    assert fake.issue(REPO, 1).title == "Renamed"


def test_an_issue_without_this_actions_marker_is_never_rewritten(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    number = fake.add_issue(REPO, title="someone else's", body="<!-- aftermath:key=aftermath-0ther-action-42 -->")
    with pytest.raises(PermanentError, match="does not carry this action's key"):
        tracker.update_issue(TARGET, f"{REPO}#{number}", draft(title="Hijacked"))
    assert fake.issue(REPO, number).title == "someone else's" and fake.count("PATCH") == 0


def test_a_label_over_githubs_fifty_characters_is_cut_to_fit(fake: FakeGitHub, tracker: GitHubTracker) -> None:
    ref = tracker.create_issue(TARGET, draft(labels=("team/" + "x" * 60,)))
    [label] = fake.issue(REPO, int(ref.key.split("#")[1])).labels
    assert len(label) == 50  # the fake refuses longer ones with 422, as GitHub does


def test_latest_comment_skips_the_filers_own_and_reads_from_the_last_page(
    fake: FakeGitHub, tracker: GitHubTracker
) -> None:
    ref = tracker.create_issue(TARGET, draft())
    assert tracker.latest_comment(ref.key) is None
    fake.add_comment(REPO, 1, "Not worth it: the service is being retired in May.", user="alice")
    for n in range(120):  # Aftermath's own reminders, past the first page
        fake.add_comment(REPO, 1, f"Reminder {n}", user="aftermath-bot")
    before = fake.count("GET", "/comments")
    comment = tracker.latest_comment(ref.key)
    assert comment is not None and comment.author == "alice"
    assert comment.text == "Not worth it: the service is being retired in May."
    assert fake.count("GET", "/comments") - before == 2  # the last page (2), then the one before
    pages = [r.query for r in fake.requests if r.path.endswith("/comments") and r.method == "GET"][-2:]
    assert [p["page"] for p in pages] == ["2", "1"] and {p["per_page"] for p in pages} == {"100"}
    fake.add_comment(REPO, 1, "Closing as not planned.", user="bob")
    newest = tracker.latest_comment(ref.key)
    assert newest is not None and (newest.author, newest.text) == ("bob", "Closing as not planned.")
    with pytest.raises(PermanentError):
        tracker.latest_comment("acme/ops#99")
