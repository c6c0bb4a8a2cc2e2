"""A stateful fake of GitHub's REST issues API on 127.0.0.1, spoken to over real HTTP by PyGithub in tests.

Serves only what GitHubTracker calls (PyGithub is lazy, so no repository GET): list, create, read and edit issues,
and add and list comments. Models what the connector depends on: token auth, the core rate-limit budget and headers
(304s are free), the secondary limit on creates, ETags, Link pagination, validation errors, transferred/deleted issues
and injectable faults.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "/using-the-rest-api/rate-limits-for-the-rest-api"
PRIMARY_MESSAGE = "API rate limit exceeded for user ID 1. "
SECONDARY_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
SUPPORT = "If you reach out to GitHub Support for help, please include the request ID {rid}."
STATE_REASONS = {"completed", "not_planned", "reopened", "duplicate"}
_REPO_PATH = re.compile(r"^/(?:repos/(?P<owner>[^/]+)/(?P<name>[^/]+)|repositories/(?P<id>\d+))(?P<rest>/.*)?$")
_ISSUE_PATH = re.compile(r"^/issues/(?P<number>\d+)(?P<sub>/comments)?$")

Answer = tuple[int, dict[str, str], Any]  # status, extra headers, JSON-able body (None = empty)
Raw = tuple[int, dict[str, str], bytes]  # status, all headers, bytes on the wire


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Fault:
    count: int
    path_contains: str | None
    method: str | None
    after_effect: bool
    status: int = 502
    retry_after: int | None = None
    message: str | None = None
    delay: float = 0.0  # > 0 marks a delay rule instead of a failure
    retry_after_as_date: bool = False


@dataclass
class Budget:
    """One rate-limit resource ("core": 5000 an hour) with GitHub's header set."""

    resource: str
    limit: int
    window: int
    remaining: int = 0
    reset: int = 0

    def refill(self, now: float) -> None:
        if now >= self.reset:
            self.remaining, self.reset = self.limit, int(now) + self.window

    def as_json(self) -> dict[str, int]:
        left = max(self.remaining, 0)
        return {"limit": self.limit, "remaining": left, "used": self.limit - left, "reset": self.reset}

    def headers(self) -> dict[str, str]:
        return {f"x-ratelimit-{k}": str(v) for k, v in self.as_json().items()} | {"x-ratelimit-resource": self.resource}


class FakeComment(str):
    """A comment: its body (it compares as that text), who wrote it and when (the fake's clock)."""

    user: str
    created_at: float

    def __new__(cls, body: str, user: str, created_at: float) -> FakeComment:
        comment = super().__new__(cls, body)
        comment.user, comment.created_at = user, created_at
        return comment


@dataclass
class FakeIssue:
    id: int
    number: int
    title: str
    body: str | None
    creator: str
    created_at: float  # full precision inside (total order); rendered to seconds like GitHub
    updated_at: float
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    closed_at: float | None = None
    comments: list[FakeComment] = field(default_factory=list)
    deleted: bool = False
    moved_to: tuple[str, int] | None = None  # (full name, number) after a transfer


@dataclass
class FakeRepo:
    id: int
    full_name: str
    assignable: set[str]
    has_issues: bool = True
    issues: dict[int, FakeIssue] = field(default_factory=dict)
    writers: set[str] | None = None  # logins with push access; None: every token's user has it

    def live(self) -> list[FakeIssue]:
        return [i for i in self.issues.values() if not i.deleted and i.moved_to is None]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, message: str, doc: str = "", **extra: Any) -> Answer:
    return status, {}, {"message": message, "documentation_url": f"{DOCS}{doc}", "status": str(status), **extra}


def _invalid(field_name: str, code: str, **extra: Any) -> Answer:
    err = {"resource": "Issue", "field": field_name, "code": code, **extra}
    return _error(422, "Validation Failed", "/issues/issues#create-an-issue", errors=[err])


class FakeGitHub:
    """The server plus test helpers; all state sits behind one lock so handler threads see one consistent world."""

    def __init__(
        self,
        tokens: dict[str, str] | None = None,
        *,
        creates_per_minute: int = 80,
        creates_per_hour: int = 500,
        core_limit: int = 5000,
    ) -> None:
        self.tokens = tokens if tokens is not None else {"test-token": "aftermath-bot"}
        self.creates_per_minute, self.creates_per_hour = creates_per_minute, creates_per_hour
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Recorded] = []
        self.secondary_violations = 0  # content-creating requests refused for exceeding the secondary limit
        self.create_times: list[float] = []  # when each issue or comment was created (the fake's clock)
        self.core = Budget("core", core_limit, 3600)
        self.url = ""
        self._offset = self._last_tick = 0.0
        self._ids = itertools.count(1001)
        self._creates: deque[float] = deque()
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def core_remaining(self) -> int:
        return self.core.remaining

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        self.core.refill(self.now())
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": self}))
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a handler sleeping in delay_next must not hold up stop()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        # a short poll interval keeps stop() (and so every test's teardown) fast
        serve = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        serve.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- clock, seeding and test helpers ---------------------------------------------------------------------
    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def _tick(self) -> float:
        # strictly increasing, so "most recently updated" is a total order even within one rendered second
        self._last_tick = max(self.now(), self._last_tick + 1e-6)
        return self._last_tick

    def add_repo(
        self,
        full_name: str,
        assignable: set[str] | None = None,
        has_issues: bool = True,
        writers: set[str] | None = None,
    ) -> FakeRepo:
        """A repository; `writers` narrows who has push access (the others' labels and assignees are dropped)."""
        repo = FakeRepo(next(self._ids), full_name, set(assignable or ()), has_issues, writers=writers)
        self.repos[full_name.lower()] = repo
        return repo

    def add_issue(self, repo: str, title: str = "seeded", body: str = "", creator: str = "someone", **kw: Any) -> int:
        with self._lock:
            return self._new_issue(self.repos[repo.lower()], title, body, creator, **kw).number

    def _new_issue(self, repo: FakeRepo, title: str, body: str | None, creator: str, **kw: Any) -> FakeIssue:
        ts = self._tick()
        issue = FakeIssue(next(self._ids), max(repo.issues, default=0) + 1, title, body, creator, ts, ts, **kw)
        repo.issues[issue.number] = issue
        return issue

    def issue(self, repo: str, number: int) -> FakeIssue:
        return self.repos[repo.lower()].issues[number]

    def issues(self, repo: str) -> list[FakeIssue]:
        return self.repos[repo.lower()].live()

    def add_comment(self, repo: str, number: int, body: str, user: str = "alice") -> None:
        """A comment someone wrote on GitHub (not through the token), e.g. when closing the issue."""
        with self._lock:
            issue = self.issue(repo, number)
            issue.updated_at = self._tick()
            issue.comments.append(FakeComment(body, user, issue.updated_at))

    def close_issue(self, repo: str, number: int, reason: str = "completed") -> None:
        with self._lock:
            self._set_state(self.issue(repo, number), "closed", reason)

    def reopen_issue(self, repo: str, number: int) -> None:
        with self._lock:
            self._set_state(self.issue(repo, number), "open", None)

    def delete_issue(self, repo: str, number: int) -> None:
        with self._lock:
            self.issue(repo, number).deleted = True

    def transfer_issue(self, repo: str, number: int, new_repo: str) -> int:
        with self._lock:
            old, target = self.issue(repo, number), self.repos[new_repo.lower()]
            moved = self._new_issue(target, old.title, old.body, old.creator, state=old.state, comments=old.comments)
            moved.state_reason, moved.closed_at = old.state_reason, old.closed_at
            old.moved_to = (target.full_name, moved.number)
            return moved.number

    def fail_next(
        self,
        n: int = 1,
        status: int = 502,
        path_contains: str | None = None,
        after_effect: bool = False,
        retry_after: int | None = None,
        method: str | None = None,
        message: str | None = None,
        retry_after_as_date: bool = False,
    ) -> None:
        """Answer the next `n` matching requests with `status` (0 = drop the connection unanswered, a reset);
        `after_effect` performs the write first, the "created but the answer was lost" case. `retry_after_as_date`
        sends Retry-After as the HTTP-date that many seconds from now (wall clock, as the client reads it)."""
        with self._lock:
            fault = Fault(n, path_contains, method, after_effect, status, retry_after, message)
            fault.retry_after_as_date = retry_after_as_date
            self._faults.append(fault)

    def delay_next(
        self, seconds: float, path_contains: str | None = None, method: str | None = None, after_effect: bool = True
    ) -> None:
        """Hold the next matching answer for `seconds` (after doing the work by default: the slow-create case)."""
        with self._lock:
            self._faults.append(Fault(1, path_contains, method, after_effect, delay=seconds))

    def set_rate_limit(self, remaining: int, reset_in: float = 3600) -> None:
        self.core.remaining, self.core.reset = remaining, int(self.now() + reset_in)

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(1 for r in self.requests if method in (None, r.method) and (path_contains or "") in r.path)

    def _set_state(self, issue: FakeIssue, state: str, reason: str | None) -> None:
        issue.state, issue.updated_at = state, self._tick()
        issue.state_reason = (reason or "completed") if state == "closed" else "reopened"
        issue.closed_at = issue.updated_at if state == "closed" else None

    # ---- request handling ------------------------------------------------------------------------------------
    def _take(self, method: str, path: str, delay: bool) -> Fault | None:
        kind = [f for f in self._faults if f.count > 0 and (f.delay > 0) == delay and f.method in (None, method)]
        fault = next((f for f in kind if (f.path_contains or "") in path), None)
        if fault:
            fault.count -= 1
        return fault

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> Raw:
        parts = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        with self._lock:
            rec = Recorded(method, parts.path, query, dict(headers), body)
            self.requests.append(rec)
            fault, delay = self._take(method, parts.path, False), self._take(method, parts.path, True)
        if delay and not delay.after_effect:
            time.sleep(delay.delay)
        with self._lock:
            lower = {k.lower(): v for k, v in headers.items()}
            status, extra, payload = self._answer(method, parts.path, query, lower, body, fault)
            rec.status = status
            hdrs = {"content-type": "application/json; charset=utf-8", **self.core.headers(), **extra}
            hdrs["x-github-request-id"] = self._rid()
        if delay and delay.after_effect:
            time.sleep(delay.delay)
        return status, hdrs, b"" if payload is None else json.dumps(payload).encode()

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any, fault: Fault | None
    ) -> Answer:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        login = self.tokens.get(token) if scheme.lower() in ("token", "bearer") else None
        if login is None:
            return _error(401, "Bad credentials")
        if fault and not fault.after_effect:
            return self._fault_answer(fault)
        if body is ValueError:
            return _error(400, "Problems parsing JSON")
        now = self.now()
        self.core.refill(now)
        if method != "GET" and self.core.remaining <= 0:
            return self._primary_exceeded()
        creating = method == "POST" and path != "/graphql"  # a GraphQL query creates nothing
        if creating and self._creation_limited(now):
            self.secondary_violations += 1
            self.core.remaining -= 1
            message = SECONDARY_MESSAGE + SUPPORT.format(rid=self._rid())
            return 403, {"retry-after": "60"}, _error(403, message, RATE_DOCS + "#about-secondary-rate-limits")[2]
        status, extra, payload = self._route(method, path, query, body, login)
        if method == "GET" and status == 200:
            extra["etag"] = 'W/"' + hashlib.sha256(json.dumps(payload).encode()).hexdigest() + '"'
            extra["cache-control"] = "private, max-age=60, s-maxage=60"
            wanted = {t.strip().removeprefix("W/") for t in headers.get("if-none-match", "").split(",")}
            if extra["etag"].removeprefix("W/") in wanted or "*" in wanted:
                return 304, extra, None  # a conditional hit costs nothing, as GitHub documents
            if self.core.remaining <= 0:
                return self._primary_exceeded()
        self.core.remaining -= 1
        if creating and status == 201:
            self._creates.append(now)
            self.create_times.append(now)
        return self._fault_answer(fault) if fault else (status, extra, payload)

    def _fault_answer(self, fault: Fault) -> Answer:
        extra: dict[str, str] = {}
        if fault.retry_after is not None:
            at = formatdate(time.time() + fault.retry_after, usegmt=True)
            extra["retry-after"] = at if fault.retry_after_as_date else str(fault.retry_after)
        default = {500: "Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
        return fault.status, extra, {"message": fault.message or default.get(fault.status, "Error")}

    def _rid(self) -> str:
        return f"F4KE:{next(self._ids):X}"

    def _creation_limited(self, now: float) -> bool:
        while self._creates and self._creates[0] <= now - 3600:
            self._creates.popleft()
        last_minute = sum(1 for t in self._creates if t > now - 60)
        return last_minute >= self.creates_per_minute or len(self._creates) >= self.creates_per_hour

    def _primary_exceeded(self) -> Answer:
        message = PRIMARY_MESSAGE + SUPPORT.format(rid=self._rid())
        return _error(403, message, RATE_DOCS + "#about-primary-rate-limits")

    # ---- routes ----------------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], body: Any, login: str) -> Answer:
        if path == "/graphql" and method == "POST":
            return self._graphql(body if isinstance(body, dict) else {})
        m = _REPO_PATH.match(path)
        repo = None
        if m and m["id"]:
            repo = next((r for r in self.repos.values() if r.id == int(m["id"])), None)
        elif m:
            repo = self.repos.get(f"{m['owner']}/{m['name']}".lower())
        if m is None or repo is None:
            return _error(404, "Not Found", "/repos/repos#get-a-repository")
        rest, data = m["rest"] or "", body if isinstance(body, dict) else {}
        if rest.startswith("/issues") and not repo.has_issues:
            return _error(410, "Issues are disabled for this repo", "/issues/issues")
        if rest == "/issues" and method in ("GET", "POST"):
            return self._list(repo, path, query) if method == "GET" else self._create(repo, data, login)
        im = _ISSUE_PATH.match(rest)
        issue = repo.issues.get(int(im["number"])) if im else None
        if im is None or issue is None:
            return _error(404, "Not Found")
        if issue.moved_to:  # GitHub answers with the new home under /repositories/{id}
            new = self.repos[issue.moved_to[0].lower()]
            location = f"{self.url}/repositories/{new.id}/issues/{issue.moved_to[1]}{im['sub'] or ''}"
            return 301, {"location": location}, {"message": "Moved Permanently", "url": location}
        if issue.deleted:
            return _error(410, "This issue was deleted", "/issues/issues#get-an-issue")
        if im["sub"] and method == "POST":
            text = data.get("body")
            if not isinstance(text, str) or not text.strip():
                return _invalid("body", "missing_field")
            issue.updated_at = self._tick()  # a comment bumps the issue's updated_at
            issue.comments.append(FakeComment(text, login, issue.updated_at))
            return 201, {}, self._comment_json(repo, issue, issue.comments[-1], len(issue.comments))
        if im["sub"] and method == "GET":
            return self._comments(repo, issue, path, query)
        if not im["sub"] and method == "GET":
            return 200, {"last-modified": formatdate(issue.updated_at, usegmt=True)}, self._issue_json(repo, issue)
        if not im["sub"] and method == "PATCH":
            return self._patch(repo, issue, data)
        return _error(404, "Not Found")

    def _create(self, repo: FakeRepo, body: dict[str, Any], login: str) -> Answer:
        if repo.writers is not None and login not in repo.writers:
            # "labels, assignees, milestone ... silently dropped for users without push access" (the create docs)
            body = {k: v for k, v in body.items() if k not in ("labels", "assignees", "assignee", "milestone")}
        if (refused := self._check(repo, body, creating=True)) is not None:
            return refused
        labels = _label_names(body.get("labels"))
        issue = self._new_issue(repo, body["title"], body.get("body"), login, labels=labels, assignees=_assignees(body))
        location = {"location": f"{self.url}/repos/{repo.full_name}/issues/{issue.number}"}
        return 201, location, self._issue_json(repo, issue)

    def _check(self, repo: FakeRepo, body: dict[str, Any], *, creating: bool) -> Answer | None:
        """The validation create and PATCH share: GitHub's 422 for the first field it refuses, else None."""
        title, text = body.get("title"), body.get("body")
        if (creating or "title" in body) and (not isinstance(title, str) or not title.strip()):
            return _invalid("title", "missing_field")
        if isinstance(title, str) and len(title) > 256:
            return _invalid("title", "custom", message="title is too long (maximum is 256 characters)")
        if isinstance(text, str) and len(text) > 65536:
            return _invalid("body", "custom", message="body is too long (maximum is 65536 characters)")
        bad = [a for a in _assignees(body) if a.lower() not in {x.lower() for x in repo.assignable}]
        if bad:
            return _invalid("assignees", "invalid", value=bad[0] if len(bad) == 1 else bad)
        long = [name for name in _label_names(body.get("labels")) if len(name) > 50]
        if long:
            error = {"resource": "Label", "field": "name", "code": "custom", "value": long[0]}
            error["message"] = "name is too long (maximum is 50 characters)"
            return _error(422, "Validation Failed", "/issues/issues#create-an-issue", errors=[error])
        return None

    def _graphql(self, body: dict[str, Any]) -> Answer:
        """`nodes(ids:)` only: each issue's state and home repository, null (and a NOT_FOUND error) for one gone.
        Answers 200 even with errors, as GitHub's GraphQL does."""
        ids = (body.get("variables") or {}).get("ids")
        if "nodes(ids:" not in str(body.get("query")) or not isinstance(ids, list):
            return 200, {}, {"errors": [{"message": "this fake answers nodes(ids:) queries only"}]}
        if len(ids) > 100:
            message = f"You may not provide more than 100 node ids; you provided {len(ids)}."
            return 200, {}, {"errors": [{"type": "ARGUMENT_LIMIT", "message": message}]}
        issues = {f"I_{i.id}": (repo, i) for repo in self.repos.values() for i in repo.issues.values()}
        nodes, errors = [], []
        for n, node_id in enumerate(ids):
            repo, issue = issues.get(str(node_id), (None, None))
            while issue is not None and repo is not None and issue.moved_to:  # a transferred issue keeps its node
                repo = self.repos[issue.moved_to[0].lower()]
                issue = repo.issues[issue.moved_to[1]]
            if issue is None or repo is None or issue.deleted:
                nodes.append(None)
                message = f"Could not resolve to a node with the global id of '{node_id}'"
                errors.append({"type": "NOT_FOUND", "path": ["nodes", n], "message": message})
                continue
            reason = (issue.state_reason or "completed").upper() if issue.state == "closed" else None
            nodes.append(
                {
                    "number": issue.number,
                    "state": issue.state.upper(),
                    "stateReason": reason,
                    "updatedAt": _iso(issue.updated_at),
                    "repository": {"nameWithOwner": repo.full_name},
                }
            )
        return 200, {}, {"data": {"nodes": nodes}, **({"errors": errors} if errors else {})}

    def _patch(self, repo: FakeRepo, issue: FakeIssue, body: dict[str, Any]) -> Answer:
        state, reason = body.get("state", issue.state), body.get("state_reason")
        if state not in ("open", "closed"):
            return _invalid("state", "invalid", value=state)
        if reason is not None and reason not in STATE_REASONS:
            return _invalid("state_reason", "invalid", value=reason)
        if (refused := self._check(repo, body, creating=False)) is not None:
            return refused  # nothing is changed when one field is refused
        for key in ("title", "body"):
            if key in body:
                setattr(issue, key, body[key])
        if "labels" in body:  # replaces the whole set, as on GitHub
            issue.labels = _label_names(body["labels"])
        if "assignees" in body or "assignee" in body:  # replaces them all; [] or null unassigns
            issue.assignees = _assignees(body)
        issue.updated_at = self._tick()
        if state != issue.state:  # GitHub ignores state_reason unless the state changes
            self._set_state(issue, state, reason)
        return 200, {}, self._issue_json(repo, issue)

    def _list(self, repo: FakeRepo, path: str, query: dict[str, str]) -> Answer:
        state, since, creator = query.get("state", "open"), query.get("since"), query.get("creator", "")
        items = [i for i in repo.live() if state == "all" or i.state == state]
        if since:
            since_ts = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
            items = [i for i in items if int(i.updated_at) >= since_ts]
        items = [i for i in items if not creator or i.creator.lower() == creator.lower()]
        attr = "updated_at" if query.get("sort") == "updated" else "created_at"
        items.sort(key=lambda i: (getattr(i, attr), i.number), reverse=query.get("direction", "desc") == "desc")
        page, extra = self._paginate(items, path, query)
        extra["last-modified"] = formatdate(max((i.updated_at for i in items), default=0), usegmt=True)
        return 200, extra, [self._issue_json(repo, i) for i in page]

    def _comments(self, repo: FakeRepo, issue: FakeIssue, path: str, query: dict[str, str]) -> Answer:
        """Oldest first, as GitHub lists them (the endpoint takes no sort order); `since` = updated at or after."""
        numbered = list(enumerate(issue.comments, start=1))
        if query.get("since"):
            try:
                since = datetime.fromisoformat(query["since"].replace("Z", "+00:00")).timestamp()
            except ValueError:
                return _invalid("since", "invalid", value=query["since"])
            numbered = [(n, c) for n, c in numbered if int(c.created_at) >= since]
        page, extra = self._paginate(numbered, path, query)
        return 200, extra, [self._comment_json(repo, issue, c, n) for n, c in page]

    def _paginate(self, items: list[Any], path: str, query: dict[str, str]) -> tuple[list[Any], dict[str, str]]:
        per_page, page = max(1, min(int(query.get("per_page", "30")), 100)), max(1, int(query.get("page", "1")))
        last = max(1, -(-len(items) // per_page))
        rels = {"prev": page - 1, "first": 1, "next": page + 1, "last": last}
        shown = [r for r in ("prev", "first") if page > 1] + [r for r in ("next", "last") if page < last]
        link = ", ".join(f'<{self.url}{path}?{urlencode({**query, "page": rels[r]})}>; rel="{r}"' for r in shown)
        return items[(page - 1) * per_page : page * per_page], ({"link": link} if link else {})

    # ---- JSON shapes: every URL under self.url, because PyGithub follows `url` fields --------------------------
    def _user(self, login: str) -> dict[str, Any]:
        uid = int(hashlib.sha256(login.encode()).hexdigest()[:7], 16)
        return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": "User", "site_admin": False} | {
            "url": f"{self.url}/users/{login}",
            "html_url": f"{self.url}/{login}",
            "avatar_url": f"{self.url}/avatars/{login}",
        }

    def _issue_json(self, repo: FakeRepo, issue: FakeIssue) -> dict[str, Any]:
        base = f"{self.url}/repos/{repo.full_name}"
        url, users = f"{base}/issues/{issue.number}", [self._user(a) for a in issue.assignees]
        labels = [{"name": n, "url": f"{base}/labels/{quote(n)}", "color": "ededed"} for n in issue.labels]
        links = {"url": url, "repository_url": base, "comments_url": url + "/comments", "events_url": url + "/events"}
        links["html_url"] = f"{self.url}/{repo.full_name}/issues/{issue.number}"
        ident = {"id": issue.id, "node_id": f"I_{issue.id}", "number": issue.number, "title": issue.title}
        state = {"state": issue.state, "state_reason": issue.state_reason, "body": issue.body}
        people = {"user": self._user(issue.creator), "assignee": users[0] if users else None, "assignees": users}
        closed = _iso(issue.closed_at) if issue.closed_at else None
        times = {"created_at": _iso(issue.created_at), "updated_at": _iso(issue.updated_at), "closed_at": closed}
        return links | ident | state | people | times | {"labels": labels, "comments": len(issue.comments)}

    def _comment_json(self, repo: FakeRepo, issue: FakeIssue, comment: FakeComment, n: int) -> dict[str, Any]:
        cid, issue_url = issue.id * 1000 + n, f"{self.url}/repos/{repo.full_name}/issues"
        when = _iso(comment.created_at)
        return {"id": cid, "body": str(comment), "user": self._user(comment.user), "created_at": when} | {
            "updated_at": when,
            "url": f"{issue_url}/comments/{cid}",
            "html_url": f"{self.url}/{repo.full_name}/issues/{issue.number}#issuecomment-{cid}",
            "issue_url": f"{issue_url}/{issue.number}",
        }


def _label_names(raw: Any) -> list[str]:
    return [x if isinstance(x, str) else str(x.get("name")) for x in raw or []]


def _assignees(body: dict[str, Any]) -> list[str]:
    return [str(a) for a in body.get("assignees") or []] + ([body["assignee"]] if body.get("assignee") else [])


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # else every answer waits ~40 ms for the client's delayed ACK
    protocol_version = "HTTP/1.1"  # keep-alive like the real API; every answer carries Content-Length
    fake: FakeGitHub

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, data = self.fake.handle(self.command, self.path, dict(self.headers.items()), raw)
        if status == 0:  # injected reset: hang up without a status line
            self.close_connection = True
            return
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if status != 304:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if status != 304:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests): nobody to answer
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
