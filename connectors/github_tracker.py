"""GitHub Issues behind the `Tracker` protocol (PyGithub): files with a hidden idempotency marker, finds issues again
by listing (the search index lags), and polls with one conditional repository listing whose 304 costs nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Set
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from github import Auth, Github, GithubException
from github.GithubObject import NotSet
from urllib3.exceptions import ConnectTimeoutError
from urllib3.util.retry import Retry

from connectors.formats import next_link, retry_after_seconds
from connectors.formats import parse_time as _parse_time
from connectors.markup import Document, to_markdown
from connectors.targets import GitHubTarget, Target, TrackerKind
from connectors.tracker import (
    ISSUE_PARTS,
    Comment,
    FieldsRefused,
    IssueDraft,
    IssueRef,
    IssueState,
    OutcomeUnknown,
    PermanentError,
    PollResult,
    RetryLater,
    TrackerError,
    Unreachable,
)

MARKER = "<!-- aftermath:key={key} -->"
TITLE_MAX, BODY_MAX, LABEL_MAX, LABELS_MAX = 256, 65536, 50, 100  # GitHub's own limits
PAGE = 100  # GitHub's maximum per_page
MAX_FIND_PAGES = 50  # 5,000 issues created since the first attempt: beyond any plausible backoff
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_KEY = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)#(?P<number>[1-9][0-9]*)$")
# the key lands inside an HTML comment: no "--", ">" or whitespace, or the marker could end early or be mangled
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:/=+-]{1,200}$")
_RETRYABLE_STATUSES = (500, 502, 503, 504)
# What a 422 names (its `field`, else its `resource`), for the optional parts of an issue (see IssueDraft.optional).
_OPTIONAL_PARTS = {"assignees": "assignee", "assignee": "assignee", "labels": "labels", "Label": "labels"}
# GitHub's secondary limit: 80 content-creating requests a minute per identity (and 500 an hour). PyGithub waits this
# long from the END of one write to the START of the next, so writes reach GitHub more than 0.8 s apart: at most 75 a
# minute, a margin of 5 for whatever else the identity creates. PyGithub's own 1.0 s (60/min) files 500 actions in
# 500 s instead of 400 s (floor 375 s). The pacing is per process: k workers sharing one token need >= 0.75*k s each.
WRITE_INTERVAL = 0.8
GRAPHQL_NODES = 100  # GitHub refuses more ids in one nodes() query
COMMENT_PAGES = 3  # pages of 100 comments read back from the newest, past Aftermath's own
NODES_QUERY = """query($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Issue { number state stateReason updatedAt repository { nameWithOwner } } }
}"""


class GitHubTracker:
    """One GitHub (github.com, or GHES via `api_url`) and one token; a target is a GitHubTarget (`owner/repo`)."""

    kind = TrackerKind.GITHUB
    lookup_settle = 0.0  # the repository listing is not an index: a created issue is in it at once

    def __init__(
        self,
        token: str,
        api_url: str = "https://api.github.com",
        *,
        timeout: int = 15,
        seconds_between_requests: float = 0.25,
        seconds_between_writes: float = WRITE_INTERVAL,
        get_retries: int = 2,
        retry_backoff: float = 0.5,
        find_pages: int = 2,
        creator: str | None = None,
        poll_overlap: float = 60.0,
        rebase_after: float = 86400.0,
        write_gate: Callable[[], None] | None = None,
    ) -> None:
        # Reads may be retried here; writes never are: a 502 or timeout after GitHub stored the issue would
        # otherwise file it twice (PyGithub's default GithubRetry re-sends POST). Rate limits are not slept on
        # in-process either: they surface as RetryLater so the job queue waits, not a worker thread.
        retry = Retry(
            total=get_retries,
            connect=get_retries,  # connection never made: the request did not reach GitHub, safe for any verb
            read=get_retries,
            status=get_retries,
            other=0,
            allowed_methods=frozenset({"GET", "HEAD"}),
            status_forcelist=_RETRYABLE_STATUSES,
            backoff_factor=retry_backoff,
            respect_retry_after_header=False,
            raise_on_status=False,  # hand the last 5xx to PyGithub so it becomes a GithubException we can map
        )
        self._gh = Github(
            auth=Auth.Token(token),
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            per_page=PAGE,
            retry=retry,
            seconds_between_requests=seconds_between_requests,
            # A gate shared by every process paces writes for the whole deployment; PyGithub's own is per process.
            seconds_between_writes=0 if write_gate else seconds_between_writes,
            lazy=True,  # get_repo()/get_issue() would otherwise spend a GET each before every write
        )
        self._find_pages = find_pages
        self._creator = creator  # the token's login: narrows find_issue's listing to our own issues
        self._overlap = timedelta(seconds=poll_overlap)
        self._rebase_after = timedelta(seconds=rebase_after)
        self._write_gate = write_gate or (lambda: None)

    # ---- Tracker protocol --------------------------------------------------------------------------------------
    def create_issue(self, target: Target, draft: IssueDraft) -> IssueRef:
        """One POST. A 422 about assignees or labels only is FieldsRefused (nothing was created); labels and assignees
        GitHub accepted but did not keep (a token without push access) come back in `dropped`."""
        repo = _target_repo(target)
        labels = _labels(draft.labels)
        assignees = [draft.assignee] if draft.assignee else []
        self._write_gate()
        try:
            issue = self._gh.get_repo(repo).create_issue(
                title=_title(draft.title),
                body=_body_with_marker(to_markdown(draft.body), draft.idempotency_key),
                labels=labels if labels else NotSet,
                assignees=assignees if assignees else NotSet,
            )
        except GithubException as exc:
            raise _status_error(exc.status, exc.headers, exc.data, f"repository {repo}", write=True) from exc
        except requests.RequestException as exc:
            raise _transport_error(exc, f"creating an issue in {repo}", write=True) from exc
        kept_labels = {label.name.lower() for label in issue.labels}
        kept_assignees = {user.login.lower() for user in issue.assignees}
        dropped = {}
        if labels and not {label.lower() for label in labels} <= kept_labels:
            dropped["labels"] = "GitHub did not keep the labels (the token may lack push access to the repository)"
        if assignees and not {a.lower() for a in assignees} <= kept_assignees:
            dropped["assignee"] = "GitHub did not keep the assignee (the token may lack push access to the repository)"
        return IssueRef(key=f"{repo}#{issue.number}", url=issue.html_url, tracker_id=issue.node_id, dropped=dropped)

    def update_issue(self, target: Target, key: str, draft: IssueDraft, parts: Set[str] | None = None) -> None:
        """One GET (is it still this action's issue? which labels does it carry?), then one PATCH of what changed:
        title, body (marker kept), assignees, and the priority label (`parts` title/body/assignee/priority; None =
        all). Labels people added stay: the new set is the current one with only a replaced priority label swapped.

        GitHub has no due date or priority field (the body shows them). `target` is not needed: the key names the
        repository. State is never sent, so the issue stays open or closed as it is.
        """
        repo, number = _split_key(key)
        want = ISSUE_PARTS if parts is None else parts
        if not want & {"title", "body", "assignee", "priority"}:
            return  # nothing GitHub shows changed (a due date, say): no request at all
        _, _, current = self._get(f"/repos/{repo}/issues/{number}", {}, f"issue {key}")
        if _marker(draft.idempotency_key) not in str(current.get("body") or ""):
            raise PermanentError(f"GitHub issue {key} does not carry this action's key {draft.idempotency_key}")
        changes: dict[str, Any] = {}
        if "title" in want:
            changes["title"] = _title(draft.title)
        if "body" in want:
            changes["body"] = _body_with_marker(to_markdown(draft.body), draft.idempotency_key)
        if "assignee" in want and "assignee" not in draft.omitted:  # the new owner replaces the old; none unassigns
            changes["assignees"] = [draft.assignee] if draft.assignee else []
        if "priority" in want and "labels" not in draft.omitted:
            names = [
                str(item.get("name") if isinstance(item, Mapping) else item) for item in current.get("labels") or []
            ]
            replaced = {label.lower() for label in draft.replaced_labels} - {label.lower() for label in draft.labels}
            wanted = _labels((*(n for n in names if n.lower() not in replaced), *draft.labels))
            if {n.lower() for n in wanted} != {n.lower() for n in names}:
                changes["labels"] = wanted
        if not changes:
            return  # nothing GitHub shows changed (a due date, say): no write at all
        self._write_gate()
        try:
            # lazy objects: no further GET of the repository or the issue before the PATCH
            self._gh.get_repo(repo).get_issue(number).edit(**changes)
        except GithubException as exc:
            # write=False: a PATCH is idempotent, so a 5xx is a plain retry, not "it may have happened"
            raise _status_error(exc.status, exc.headers, exc.data, f"issue {key}", write=False) from exc
        except requests.RequestException as exc:
            raise _transport_error(exc, f"updating {key}", write=False) from exc

    def audit(self, target: Target, issues: dict[str, str]) -> PollResult:
        """What the steady-state listing cannot see: issues deleted (a GraphQL node of null) or transferred (their
        repository changed). `issues` maps each key to its node id; one request per 100 of them."""
        repo = _target_repo(target)
        missing: list[str] = []
        states: dict[str, IssueState] = {}
        pairs = list(issues.items())
        for start in range(0, len(pairs), GRAPHQL_NODES):
            batch = pairs[start : start + GRAPHQL_NODES]
            nodes = self._nodes([node_id for _, node_id in batch])
            for (key, _), node in zip(batch, nodes, strict=True):
                if node is None:
                    missing.append(key)
                    continue
                home = str((node.get("repository") or {}).get("nameWithOwner") or repo)
                if home.lower() != repo.lower():
                    moved = f"{home}#{node.get('number')}"
                    state = "closed" if node.get("state") == "CLOSED" else "open"
                    reason = str(node.get("stateReason") or "completed").lower() if state == "closed" else None
                    raw = f"closed:{reason}" if state == "closed" else "open"
                    states[key] = IssueState(
                        key, raw, state, reason, _parse_time(node.get("updatedAt")), moved_to=moved
                    )
        return PollResult(states=states, missing=tuple(missing))

    def find_issue(
        self, target: Target, idempotency_key: str, created_after: datetime | None = None
    ) -> IssueRef | None:
        """Newest-first repository listing matched on the body marker; not search, whose index lags writes.

        With `created_after` (no earlier attempt can have created the issue before it), paging goes on until the
        listing reaches older issues, however busy the repository was since; without it, `find_pages` pages.
        """
        repo = _target_repo(target)
        marker = _marker(idempotency_key)
        params = {"state": "all", "sort": "created", "direction": "desc", "per_page": str(PAGE)}
        if self._creator:
            params["creator"] = self._creator
        url: str | None = f"/repos/{repo}/issues"
        pages = MAX_FIND_PAGES if created_after is not None else self._find_pages
        for _ in range(pages):
            if url is None:
                break
            _, headers, items = self._get(url, params, f"repository {repo}")
            hits = [i for i in items if "pull_request" not in i and marker in (i.get("body") or "")]
            if hits:  # more than one means an earlier duplicate: the oldest is the one to keep
                first = min(hits, key=lambda i: int(i["number"]))
                return IssueRef(key=f"{repo}#{first['number']}", url=str(first["html_url"]))
            oldest = _parse_time(items[-1].get("created_at")) if items else None
            if created_after is not None and (oldest is None or oldest < created_after):
                return None  # listed back past the first attempt: the issue was never created
            url, params = _next_link(headers), {}
        return None

    def poll(self, target: Target, keys: list[str], cursor: str | None) -> PollResult:
        """Changes since `cursor` from `GET /repos/o/r/issues?state=all&sort=updated&direction=desc` sent with
        If-None-Match: nothing changed = one free 304. Newest-first means any change lands on page 1 (so page 1's
        ETag covers the whole listing), and paging stops at issues older than the last poll's newest update.
        """
        repo = _target_repo(target)
        tracked = {
            int(m["number"]): key for key in keys if (m := _KEY.match(key)) and m["repo"].lower() == repo.lower()
        }
        state = _load_cursor(cursor)
        since, hwm = _parse_time(state.get("since")), _parse_time(state.get("hwm"))
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": str(PAGE)}
        if since:
            params["since"] = since.strftime(TIME_FORMAT)
        status, headers, items = self._get(f"/repos/{repo}/issues", params, f"repository {repo}", state.get("etag"))
        if status == 304:
            return PollResult(states={}, cursor=cursor)
        etag, newest = headers.get("etag"), hwm
        stop_below = hwm - self._overlap if hwm else None  # overlap: same-second and clock-skewed updates
        states: dict[str, IssueState] = {}
        while True:
            times = (_parse_time(i.get("updated_at")) for i in items)
            newest = max((t for t in (newest, *times) if t), default=None)
            for item in items:
                updated = _parse_time(item.get("updated_at"))
                if stop_below and updated and updated < stop_below:
                    break  # older than what the previous poll already saw: the rest is unchanged
                number = int(item["number"])
                if "pull_request" not in item and number in tracked:
                    states[tracked[number]] = _issue_state(tracked[number], item)
            else:
                next_url = _next_link(headers)
                first_poll_done = hwm is None and len(states) == len(tracked)  # all tracked found (or none asked)
                if next_url and not first_poll_done:
                    _, headers, items = self._get(next_url, {}, f"repository {repo}")
                    continue
            break
        complete = _next_link(headers) is None
        missing: tuple[str, ...] = ()
        if complete and since is None and hwm is None:  # a full listing proves absence (deleted or transferred)
            missing = tuple(sorted(key for number, key in tracked.items() if key not in states))
        base = _parse_time(state.get("base")) or newest
        if newest and base and newest - base > self._rebase_after:
            # narrow the window now and then so page 1 stays small; the new URL costs one 200 on the next poll
            since, base, etag = newest - self._overlap, newest, None
        new_cursor = {"since": _fmt_time(since), "etag": etag, "hwm": _fmt_time(newest), "base": _fmt_time(base)}
        return PollResult(states=states, cursor=json.dumps(new_cursor, sort_keys=True), missing=missing)

    def add_comment(self, key: str, text: Document) -> None:
        repo, number = _split_key(key)
        body = to_markdown(text)
        if len(body) > BODY_MAX:
            body = body[: BODY_MAX - 1] + "…"
        self._write_gate()
        try:
            self._gh.get_repo(repo).get_issue(number).create_comment(body)
        except GithubException as exc:
            raise _status_error(exc.status, exc.headers, exc.data, f"issue {key}", write=True) from exc
        except requests.RequestException as exc:
            raise _transport_error(exc, f"commenting on {key}", write=True) from exc

    def latest_comment(self, key: str) -> Comment | None:
        """One GET of the issue (who filed it: Aftermath's account; how many comments it has), then its comments from
        the last page back: the listing is oldest first, and has no sort order to ask for."""
        repo, number = _split_key(key)
        _, _, issue = self._get(f"/repos/{repo}/issues/{number}", {}, f"issue {key}")
        filer = str((issue.get("user") or {}).get("login") or "").lower()
        last_page = -(-int(issue.get("comments") or 0) // PAGE)
        for page in range(last_page, max(0, last_page - COMMENT_PAGES), -1):
            params = {"per_page": str(PAGE), "page": str(page)}
            _, _, items = self._get(f"/repos/{repo}/issues/{number}/comments", params, f"the comments of {key}")
            for item in reversed(items if isinstance(items, list) else []):
                login = str((item.get("user") or {}).get("login") or "")
                if login.lower() != filer:
                    return Comment(login or None, str(item.get("body") or ""), _parse_time(item.get("created_at")))
        return None

    def check_issue(self, key: str) -> IssueState | None:
        """One issue's state, for the rare 'is it still there?' check: None if deleted (410); `moved_to` is set
        when GitHub redirected (301, transferred) — PyGithub follows the redirect, the answer names the new repo."""
        repo, number = _split_key(key)
        status, _, item = self._get(f"/repos/{repo}/issues/{number}", {}, f"issue {key}", allow_gone=True)
        if status == 410:
            return None
        path = urlsplit(str(item.get("repository_url", ""))).path
        home = path.split("/repos/", 1)[1] if "/repos/" in path else repo
        moved = home.lower() != repo.lower() or int(item["number"]) != number
        return _issue_state(key, item, moved_to=f"{home}#{item['number']}" if moved else None)

    # ---- HTTP ---------------------------------------------------------------------------------------------------
    def _nodes(self, node_ids: list[str]) -> list[dict[str, Any] | None]:
        """GraphQL `nodes(ids:)` for up to 100 issue node ids: each Issue's state and home, None where it is gone."""
        requester = self._gh.requester
        query = {"query": NODES_QUERY, "variables": {"ids": node_ids}}
        try:
            # Not graphql_query(): it raises on any error, and a deleted issue's NOT_FOUND error is the answer here.
            _, data = requester.requestJsonAndCheck("POST", requester.graphql_url, input=query)
        except GithubException as exc:
            raise _status_error(exc.status, exc.headers, exc.data, "the issues' GraphQL nodes", write=False) from exc
        except requests.RequestException as exc:
            raise _transport_error(exc, "reading the issues' GraphQL nodes", write=False) from exc
        other = [e for e in data.get("errors") or [] if not (isinstance(e, dict) and e.get("type") == "NOT_FOUND")]
        nodes = (data.get("data") or {}).get("nodes")
        if other or not isinstance(nodes, list) or len(nodes) != len(node_ids):
            # GitHub answers a spent GraphQL budget with 200 and an error; whatever it is, ask again later.
            raise RetryLater(f"GitHub's GraphQL answer for {len(node_ids)} node ids: {other or 'no nodes'}"[:500])
        return [node if isinstance(node, dict) and node.get("number") else None for node in nodes]

    def _get(
        self, url: str, params: dict[str, str], what: str, etag: str | None = None, allow_gone: bool = False
    ) -> tuple[int, dict[str, Any], Any]:
        # requestJson instead of PaginatedList: it lets us send If-None-Match and see a 304 (which is free)
        try:
            status, headers, text = self._gh.requester.requestJson(
                "GET", url, parameters=params or None, headers={"If-None-Match": etag} if etag else None
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, f"reading {what}", write=False) from exc
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = {"message": text[:200]}
        if status == 304 or status < 300 or (allow_gone and status == 410):
            return status, headers, data if data is not None else []
        raise _status_error(status, headers, data, what, write=False)


# ---- pure helpers -----------------------------------------------------------------------------------------------
def _target_repo(target: Target) -> str:
    if not isinstance(target, GitHubTarget):
        raise PermanentError(f"not a GitHub target: {target!r}")
    return target.repo


def _split_key(key: str) -> tuple[str, int]:
    m = _KEY.match(key)
    if not m:
        raise PermanentError(f"Not a GitHub issue key ('owner/repo#12'): {key!r}")
    return m["repo"], int(m["number"])


def _title(text: str) -> str:
    title = " ".join(text.split())
    if not title:
        raise PermanentError("The issue title is empty")
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


def _marker(idempotency_key: str) -> str:
    if not _IDEMPOTENCY_KEY.match(idempotency_key) or "--" in idempotency_key:
        raise PermanentError(f"Idempotency key {idempotency_key!r} cannot be embedded in an HTML comment")
    return MARKER.format(key=idempotency_key)


def _body_with_marker(body: str, idempotency_key: str) -> str:
    # the marker goes last and survives truncation: it is what find_issue matches after a lost answer
    marker = _marker(idempotency_key)
    room = BODY_MAX - len(marker) - 2
    text = body.rstrip()
    if len(text) > room:
        notice = "\n\n…(truncated)"
        text = text[: room - len(notice)] + notice
    return f"{text}\n\n{marker}" if text else marker


def _labels(labels: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for raw in labels:
        name = " ".join(str(raw).split())[:LABEL_MAX]
        if name and name.lower() not in seen:  # GitHub label names are case-insensitive
            seen.add(name.lower())
            out.append(name)
    return out[:LABELS_MAX]


def _issue_state(key: str, item: Mapping[str, Any], moved_to: str | None = None) -> IssueState:
    closed = item.get("state") == "closed"
    # issues closed before state_reason existed carry null; GitHub shows them as completed
    reason = (item.get("state_reason") or "completed") if closed else None
    assignee = item.get("assignee") or {}
    return IssueState(
        key=key,
        raw_status=f"closed:{reason}" if closed else "open",
        category="closed" if closed else "open",
        resolution=reason,
        updated_at=_parse_time(item.get("updated_at")),
        assignee=assignee.get("login") if isinstance(assignee, Mapping) else None,
        moved_to=moved_to,
        tracker_id=str(item["node_id"]) if item.get("node_id") else None,
    )


def _next_link(headers: Mapping[str, Any]) -> str | None:
    return next_link(headers.get("link"))


def _fmt_time(value: datetime | None) -> str | None:
    return value.strftime(TIME_FORMAT) if value else None


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    # an unreadable cursor just means "start over": one full listing, never a crash in the poll loop
    try:
        data = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _status_error(status: int, headers: Mapping[str, Any] | None, data: Any, what: str, write: bool) -> TrackerError:
    """Map a GitHub error answer to retry-later / unknown-outcome / permanent, keeping GitHub's own words."""
    h = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    message = str((data.get("message") if isinstance(data, Mapping) else data) or f"HTTP {status}")
    lowered = message.lower()
    retry_after = retry_after_seconds(h.get("retry-after"))
    if status == 401:
        return PermanentError(f"Bad credentials: GitHub refused the token ({message})")
    secondary = "secondary rate limit" in lowered or lowered.endswith(("try again later.", "before you try again."))
    if status in (403, 429) and (secondary or retry_after is not None):
        return RetryLater(f"GitHub secondary rate limit while {what}: {message}", retry_after=retry_after or 60.0)
    if status in (403, 429) and (
        lowered.startswith("api rate limit exceeded") or h.get("x-ratelimit-remaining") == "0"
    ):
        reset = float(h["x-ratelimit-reset"]) if h.get("x-ratelimit-reset", "").isdigit() else time.time() + 60
        wait = max(reset - time.time(), retry_after or 0.0, 1.0)
        return RetryLater(f"GitHub API rate limit exhausted while {what}: {message}", retry_after=wait)
    if status == 429:
        return RetryLater(f"GitHub throttled {what}: {message}", retry_after=retry_after or 60.0)
    if status == 404:
        return PermanentError(f"GitHub {what} not found, or this token cannot see it ({message})")
    if status == 410:
        return PermanentError(f"GitHub {what}: {message}")
    if status == 422:
        errors = [e for e in (data.get("errors") or [] if isinstance(data, Mapping) else []) if isinstance(e, Mapping)]
        details = "; ".join(_describe(e) for e in errors)
        text = f"GitHub rejected {what}: {message}" + (f" ({details})" if details else "")
        parts = [
            _OPTIONAL_PARTS.get(str(e.get("field"))) or _OPTIONAL_PARTS.get(str(e.get("resource"))) for e in errors
        ]
        if errors and all(parts):
            return FieldsRefused(text, {str(part): _describe(e) for part, e in zip(parts, errors, strict=True)})
        return PermanentError(text)
    if status >= 500:
        kind = OutcomeUnknown if write else RetryLater
        return kind(f"GitHub answered {status} while {what}: {message}", retry_after=retry_after)
    return PermanentError(f"GitHub answered {status} for {what}: {message}")


def _describe(error: Any) -> str:
    if not isinstance(error, Mapping):
        return str(error)
    where = ".".join(str(error[k]) for k in ("resource", "field") if error.get(k))
    text = f"{where} {error.get('code', '')}".strip()
    if error.get("value") is not None:
        text += f" {error['value']!r}"
    return f"{text}: {error['message']}" if error.get("message") else text


def _transport_error(exc: requests.RequestException, doing: str, write: bool) -> RetryLater:
    # a write whose request may have reached GitHub (read timeout, reset) might have taken effect
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the real cause
    never_sent = isinstance(exc, requests.ConnectTimeout) or isinstance(reason, ConnectTimeoutError)
    if never_sent:
        return Unreachable(f"GitHub unreachable while {doing} ({type(exc).__name__}: {exc})")
    if write:
        return OutcomeUnknown(f"No answer from GitHub while {doing} ({type(exc).__name__}); it may have happened")
    return RetryLater(f"GitHub unreachable while {doing} ({type(exc).__name__}: {exc})")
