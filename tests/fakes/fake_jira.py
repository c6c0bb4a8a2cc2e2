"""A stateful fake Jira (Cloud or Server/DC) served over real HTTP on 127.0.0.1, for tests and benchmarks.

Serves REST v2 only, and only the endpoints JiraTracker reaches through jira 3.10.5: serverInfo, field, applinks,
issue create/read/edit, comments (add; list, newest first on request), remote link upsert, and search (search/jql on
Cloud, the classic search on Server/DC). Shapes and refusals follow the official spec excerpts in shared/specs; see
TRACKERS.md §1.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import jql, wiki

DEFAULT_ACCOUNT_ID = "5b10ac8d82e05b22cc7d4ef5"
CATEGORIES = {  # built-in statusCategory keys (TRACKERS.md §1.2), not the spec example's made-up ones
    "undefined": (1, "medium-gray", "No Category"),
    "new": (2, "blue-gray", "To Do"),
    "done": (3, "green", "Done"),
    "indeterminate": (4, "yellow", "In Progress"),
}
STATUS_IDS = {"To Do": "10000", "In Progress": "10001", "Done": "10002"}
WRITABLE = {"project", "issuetype", "summary", "description", "labels", "priority", "duedate", "assignee"}
REQUIRED = {"project", "issuetype", "summary"}  # on every screen
SYSTEM_FIELDS = (*sorted(WRITABLE), "status", "resolution", "created", "updated", "creator")
BOT = "aftermath-bot"  # the account the client authenticates as: it creates the issues and writes its comments
COMMENT_ORDERS = {"created": False, "+created": False, "-created": True}  # orderBy -> newest first
REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration "
    "guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


def jira_time(moment: datetime | None = None) -> str:
    """Jira's timestamp format, e.g. 2021-01-18T23:45:00.000+0000."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class ApiError(Exception):
    """An answer in Jira's ErrorCollection shape."""

    def __init__(self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None) -> None:
        super().__init__(status, messages, errors)
        self.status, self.body = status, {"errorMessages": messages or [], "errors": errors or {}}


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class Project:
    key: str
    id: str
    issue_types: dict[str, str]  # name -> id
    priorities: list[str]  # the project's priority scheme
    assignable: set[str]  # accountIds (Cloud) or user names (Server)
    screen: set[str] | None = None  # the fields its create and edit screens show; None: every writable field
    can_create: bool = True  # whether the bot has the Create Issues permission here


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, Any]
    remote_links: list[dict[str, Any]] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    indexed_at: float = 0.0  # monotonic time the issue becomes visible to search (see `search_lag`)


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: int | None
    path_contains: str | None
    after_effect: bool = False
    delay: float = 0.0
    retry_after_as_date: bool = False
    method: str | None = None


class FakeJira:
    """Start with `with FakeJira() as jira:`; point the client at `jira.url`; inspect `jira.issues`/`jira.requests`."""

    def __init__(self, deployment: str = "Cloud", user: str = "bot@example.com", token: str = "api-token") -> None:
        self.deployment, self.user, self.token = deployment, user, token
        self.projects: dict[str, Project] = {}
        self.issues: dict[str, Issue] = {}
        self.redirects: dict[str, str] = {}  # old key -> new key after a move
        self.custom_fields: dict[str, str] = {"customfield_10010": "Team"}  # on the create screen
        self.requests: list[LoggedRequest] = []
        self.rate_limit = 100
        self.search_lag = 0.0  # seconds before a new issue shows up in search (Jira's index is eventually consistent)
        self._faults: list[_Fault] = []
        self._minute, self._minute_count = datetime.now(UTC), 0
        self._lock = threading.RLock()
        self._next_id = 10000
        self._counters: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url = ""
        user_id = DEFAULT_ACCOUNT_ID if deployment == "Cloud" else "alice"
        self.add_project("OPS", assignable=(user_id,))

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> FakeJira:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        # Kept after stop(): a request still being answered while the test shuts the fake down renders its URLs.
        self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-jira", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeJira:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._url, "start() first"
        return self._url

    # -- test helpers ----------------------------------------------------------------------------------------------
    def add_project(
        self,
        key: str,
        issue_types: tuple[str, ...] = ("Task", "Bug"),
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest"),
        assignable: tuple[str, ...] = (),
        screen: set[str] | None = None,
        can_create: bool = True,
    ) -> Project:
        """A project; `screen` (field ids) narrows what its screens take: Jira refuses any other field by name."""
        pid = str(10000 + len(self.projects))
        types = {name: str(10001 + i) for i, name in enumerate(issue_types)}
        self.projects[key] = Project(key, pid, types, list(priorities), set(assignable), screen, can_create)
        return self.projects[key]

    def rendered(self, key: str) -> tuple[str, list[str]]:
        """The issue's description and comments as Jira shows them (wiki markup rendered to HTML)."""
        issue = self._issue(key)
        return wiki.render(issue.fields.get("description") or ""), [wiki.render(c["body"]) for c in issue.comments]

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: int | None = None,
        path_contains: str | None = None,
        after_effect: bool = False,
        retry_after_as_date: bool = False,
        method: str | None = None,
    ) -> None:
        """Answer the next `n` matching requests with `status`; `after_effect` does the work first (answer lost).
        `retry_after_as_date` sends Retry-After as the HTTP-date that many seconds from now, the header's other form."""
        self._faults.append(
            _Fault(n, status, retry_after, path_contains, after_effect, 0.0, retry_after_as_date, method)
        )

    def delay_next(self, seconds: float, path_contains: str | None = None) -> None:
        """Hold the next matching request `seconds` before handling it (it still takes effect, like a slow Jira)."""
        self._faults.append(_Fault(1, 0, None, path_contains, delay=seconds))

    def add_issue(self, project: str = "OPS", summary: str = "seeded", **fields: Any) -> str:
        """Create an issue without HTTP (v2 field shapes); returns its key."""
        with self._lock:
            body = {"project": {"key": project}, "issuetype": {"name": "Task"}, "summary": summary, **fields}
            return self._create(body).key

    def set_status(self, key: str, name: str, category_key: str, resolution: str | None = None) -> None:
        with self._lock:
            issue = self._issue(key)
            issue.fields["status"] = self._status(name, category_key)
            issue.fields["resolution"] = self._resolution(resolution) if resolution else None
            issue.fields["updated"] = jira_time()

    def add_comment(self, key: str, body: str, author: str = DEFAULT_ACCOUNT_ID) -> None:
        """A comment written by someone in Jira (not through the API client), e.g. when closing the issue."""
        with self._lock:
            self._comment(self._issue(key), body, author)

    def delete_issue(self, key: str) -> None:
        with self._lock:
            gone = self._issue(key).key
            del self.issues[gone]
            self.redirects = {old: new for old, new in self.redirects.items() if new != gone}

    def move_issue(self, key: str, project: str) -> str:
        """Move to another project; the old key keeps answering (under the new key), as Jira does."""
        with self._lock:
            issue, target = self._issue(key), self.projects[project]
            new_key = self._new_key(project)
            del self.issues[issue.key]
            self.redirects[issue.key] = issue.key = new_key
            issue.fields["project"] = self._project_ref(target)
            self.issues[new_key] = issue
            return new_key

    def count(self, path_contains: str = "", method: str | None = None) -> int:
        return sum(1 for r in self.requests if path_contains in r.path and method in (None, r.method))

    # -- request plumbing ------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any, auth: str | None) -> Any:
        with self._lock:
            self.requests.append(LoggedRequest(method, path, query, body))
            fault = next(
                (
                    f
                    for f in self._faults
                    if (f.path_contains is None or f.path_contains in path) and f.method in (None, method)
                ),
                None,
            )
            if fault:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
        if fault and fault.delay:
            time.sleep(fault.delay)
            fault = None
        if not self._authorized(auth):
            body = {"errorMessages": ["You are not authenticated. Authentication required to perform this operation."]}
            return 401, {**body, "errors": {}}, {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"}
        if fault and not fault.after_effect:
            return self._fault_answer(fault)
        try:
            with self._lock:
                status, payload = self._route(method, path, query, body)
        except ApiError as e:
            status, payload = e.status, e.body
        except (TypeError, ValueError, KeyError, AttributeError) as e:  # malformed input the fake did not foresee
            status, payload = 400, {"errorMessages": [f"Bad request: {e!r}"], "errors": {}}
        return self._fault_answer(fault) if fault else (status, payload, {})

    def _authorized(self, auth: str | None) -> bool:
        if self.deployment == "Cloud":
            return auth == "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        return auth == f"Bearer {self.token}"

    def _fault_answer(self, fault: _Fault) -> tuple[int, Any, dict[str, str]]:
        headers = {}
        retry_after = fault.retry_after if fault.retry_after is not None else (1 if fault.status == 429 else None)
        if retry_after is not None:
            at = formatdate(time.time() + retry_after, usegmt=True)
            headers["Retry-After"] = at if fault.retry_after_as_date else str(retry_after)
        if fault.status == 429:
            headers["RateLimit-Reason"] = "jira-burst-based"
        words = {400: "Bad request.", 403: "Forbidden.", 429: "Rate limit exceeded.", 503: "Service Unavailable"}
        words_for_status = words.get(fault.status, "Internal server error")
        return fault.status, {"errorMessages": [words_for_status], "errors": {}}, headers

    def rate_headers(self, status: int) -> dict[str, str]:
        """Informational only: the fake never throttles by itself (use fail_next(status=429) for that)."""
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        with self._lock:
            if minute != self._minute:
                self._minute, self._minute_count = minute, 0
            self._minute_count += 1
            remaining = 0 if status == 429 else max(0, self.rate_limit - self._minute_count)
        reset = (minute + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ")
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": reset,
        }

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if path == "/rest/applinks/latest/listApplicationlinks" and method == "GET":
            return 200, {"list": []}
        m = re.fullmatch(r"/rest/api/2/(.+?)/?", path)
        if not m:
            raise ApiError(404, [f"null for uri: {self.url}{path}"])
        rest = m[1]
        for verb, pattern, handler in _ROUTES:
            hit = re.fullmatch(pattern, rest)
            if hit and verb == method:
                return handler(self, query, body, *hit.groups())  # type: ignore[no-any-return]
        raise ApiError(404 if not any(re.fullmatch(p, rest) for _, p, _ in _ROUTES) else 405, ["Not found"])

    # -- model helpers ---------------------------------------------------------------------------------------------
    def _lookup(self, key_or_id: str) -> Issue | None:
        key = key_or_id.upper()
        for _ in range(10):  # follow move chains
            if key not in self.redirects:
                break
            key = self.redirects[key]
        return self.issues.get(key) or next((i for i in self.issues.values() if i.id == key_or_id), None)

    def _issue(self, key: str) -> Issue:
        issue = self._lookup(key)
        if issue is None:
            raise ApiError(404, ["Issue does not exist or you do not have permission to see it."])
        return issue

    def _new_key(self, project: str) -> str:
        self._counters[project] = self._counters.get(project, 0) + 1
        return f"{project}-{self._counters[project]}"

    def _project_ref(self, p: Project) -> dict[str, Any]:
        return {"self": f"{self.url}/rest/api/2/project/{p.id}", "id": p.id, "key": p.key, "name": p.key.title()}

    def _status(self, name: str, category_key: str) -> dict[str, Any]:
        cat_id, color, cat_name = CATEGORIES[category_key]
        sid = STATUS_IDS.get(name, str(10100 + len(name)))
        category = {"self": f"{self.url}/rest/api/2/statuscategory/{cat_id}", "id": cat_id, "key": category_key}
        return {
            "self": f"{self.url}/rest/api/2/status/{sid}",
            "id": sid,
            "name": name,
            "iconUrl": f"{self.url}/images/icons/statuses/generic.png",
            "statusCategory": {**category, "colorName": color, "name": cat_name},
        }

    def _resolution(self, name: str) -> dict[str, Any]:
        return {"self": f"{self.url}/rest/api/2/resolution/10000", "id": "10000", "name": name, "description": name}

    def _user(self, ident: str) -> dict[str, Any]:
        base = {"displayName": ident.title(), "active": True, "timeZone": "Etc/UTC"}
        if self.deployment == "Cloud":
            return {
                "self": f"{self.url}/rest/api/2/user?accountId={ident}",
                "accountId": ident,
                **base,
                "accountType": "atlassian",
            }
        return {"self": f"{self.url}/rest/api/2/user?username={ident}", "name": ident, "key": ident, **base}

    def render(self, issue: Issue, wanted: set[str] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"expand": "renderedFields,names,schema,operations,editmeta,changelog", "id": issue.id}
        out.update({"self": f"{self.url}/rest/api/2/issue/{issue.id}", "key": issue.key})
        if wanted is not None and wanted <= {"id", "key"}:
            return {"id": issue.id} if wanted == {"id"} else out
        fields = {k: val for k, val in issue.fields.items() if wanted is None or k in wanted}
        return {**out, "fields": fields}

    def _create(self, fields: Any) -> Issue:
        errors: dict[str, str] = {}
        if not isinstance(fields, dict):
            raise ApiError(400, ["Can not deserialize instance of fields"])
        pref = _obj(fields.get("project"))
        project = next((p for p in self.projects.values() if pref.get("key") == p.key or pref.get("id") == p.id), None)
        if project is None:
            raise ApiError(400, [], {"project": "Specify a valid project ID or key"})
        if not project.can_create:
            raise ApiError(400, [], {"project": "You do not have permission to create issues in this project."})
        self._check_names(project, fields, WRITABLE, errors)
        values = self._check_values(project, fields, errors, creating=True)
        if errors:
            raise ApiError(400, [], errors)
        self._next_id += 1
        now = jira_time()
        stored = {k: val for k, val in fields.items() if k in self.custom_fields}
        stored.update(project=self._project_ref(project), description=None, labels=[], duedate=None, assignee=None)
        stored.update(values)
        stored.update(status=self._status("To Do", "new"), resolution=None, created=now, updated=now)
        stored["creator"] = self._user(BOT)
        issue = Issue(
            str(self._next_id), self._new_key(project.key), stored, indexed_at=time.monotonic() + self.search_lag
        )
        self.issues[issue.key] = issue
        return issue

    def _edit(self, issue: Issue, body: Any) -> None:
        """PUT issue/{key}: `fields` sets values, `update` applies operations (labels: add/remove/set; others: set).

        Same checks as create; what an edit may not touch (project: that is a move; status: that is a transition)
        is refused like an unknown field. Nothing is stored unless every field passes.
        """
        errors: dict[str, str] = {}
        body = _obj(body)
        if not isinstance(body.get("fields") or {}, dict) or not isinstance(body.get("update") or {}, dict):
            raise ApiError(400, ["Can not deserialize instance of fields"])
        fields, ops = dict(body.get("fields") or {}), dict(body.get("update") or {})
        for name in sorted(set(fields) & set(ops)):
            errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."
        project = next(p for p in self.projects.values() if p.key == issue.fields["project"]["key"])
        self._check_names(project, {**fields, **ops}, WRITABLE - {"project"}, errors)
        for name, steps in ops.items():
            labels = list(issue.fields.get("labels") or [])
            for step in steps if isinstance(steps, list) else [steps]:
                verb, value = next(iter(step.items())) if isinstance(step, dict) and len(step) == 1 else ("?", None)
                if verb == "set":
                    labels = value if isinstance(value, list) else [value]
                    fields[name] = value
                elif name == "labels" and verb == "add":
                    labels += [] if value in labels else [value]
                elif name == "labels" and verb == "remove":
                    labels = [lb for lb in labels if lb != value]
                else:
                    errors[name] = f"Field '{name}' does not support operation '{verb}'."
            if name == "labels":
                fields["labels"] = labels
        values = self._check_values(project, fields, errors, creating=False)
        if errors:
            raise ApiError(400, [], errors)
        issue.fields.update({k: val for k, val in fields.items() if k in self.custom_fields})
        issue.fields.update(values)
        issue.fields["updated"] = jira_time()

    def _check_names(self, project: Project, fields: dict[str, Any], allowed: set[str], errors: dict[str, str]) -> None:
        on_screen = allowed | set(self.custom_fields)
        if project.screen is not None:
            on_screen &= project.screen | REQUIRED
        for name in fields:
            if name not in on_screen:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."

    def _check_values(
        self, project: Project, fields: dict[str, Any], errors: dict[str, str], *, creating: bool
    ) -> dict[str, Any]:
        """Jira's checks of the system fields given (on create, also the required ones); answers what to store."""
        out: dict[str, Any] = {}
        if creating or "issuetype" in fields:
            tref = _obj(fields.get("issuetype"))
            tname = next(
                (n for n, i in project.issue_types.items() if tref.get("name") == n or tref.get("id") == i), None
            )
            if tname is None:
                errors["issuetype"] = "The issue type selected is invalid."
            else:
                out["issuetype"] = {"id": project.issue_types[tname], "name": tname, "subtask": False}
        if creating or "summary" in fields:
            summary = fields.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif len(summary) > 255:
                errors["summary"] = "Summary must be less than 255 characters."
            elif "\n" in summary or "\r" in summary:
                errors["summary"] = "The summary is invalid because it contains newline characters."
            out["summary"] = summary
        if "description" in fields:
            desc = fields["description"]
            if desc is not None and not isinstance(desc, str):
                errors["description"] = "Operation value must be a string"
            out["description"] = desc
        if "labels" in fields:
            labels = fields["labels"] or []
            labels = labels if isinstance(labels, list) else [labels]
            bad = [lb for lb in labels if not isinstance(lb, str) or not lb or " " in lb or len(lb) > 255]
            if bad:
                errors["labels"] = f"The label '{bad[0]}' contains spaces which is invalid."
            out["labels"] = list(labels)
        if creating or "priority" in fields:
            prio = _obj(fields.get("priority")).get("name", "Medium" if creating else None)
            if prio not in project.priorities:
                errors["priority"] = "The priority selected is invalid."
            out["priority"] = {"self": f"{self.url}/rest/api/2/priority/3", "id": "3", "name": prio}
        if "duedate" in fields:
            due = fields["duedate"]
            try:
                out["duedate"] = date.fromisoformat(due).isoformat() if due else None
            except (TypeError, ValueError):
                errors["duedate"] = f"Error parsing date string: {due}"
        if "assignee" in fields:
            # Cloud names users by accountId only, Server/DC by name; null (or a null id) means unassigned.
            who, id_key = fields["assignee"], ("accountId" if self.deployment == "Cloud" else "name")
            ident = _obj(who).get(id_key)
            unassign = who is None or (isinstance(who, dict) and id_key in who and ident is None)
            if not unassign and ident not in project.assignable:
                errors["assignee"] = f"User '{ident or who}' cannot be assigned issues."
            out["assignee"] = self._user(ident) if ident else None
        return out

    # -- JQL -------------------------------------------------------------------------------------------------------
    def _search(self, text: str, *, strict: bool = True, bounded: bool = False) -> tuple[list[Issue], list[str]]:
        try:
            query = jql.parse(text)
        except jql.JqlError as e:
            raise ApiError(400, [str(e)]) from None
        if bounded and not query.clauses:
            raise ApiError(
                400, ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."]
            )
        known = {k for p in self.projects.values() for k in (p.key.upper(), p.id)}
        problems = jql.problems(query, lambda k: getattr(self._lookup(k), "key", None), known)
        if problems and strict:
            raise ApiError(400, problems)
        now = time.monotonic()
        visible = (i for i in self.issues.values() if i.indexed_at <= now)
        return jql.select(query, visible, lambda k: getattr(self._lookup(k), "key", None)), problems

    # -- endpoints ---------------------------------------------------------------------------------------------------
    def h_server_info(self, q: Any, body: Any) -> tuple[int, Any]:
        cloud = self.deployment == "Cloud"
        numbers = [1001, 0, 0] if cloud else [9, 12, 0]
        info: dict[str, Any] = {"baseUrl": self.url, "version": ".".join(map(str, numbers)), "versionNumbers": numbers}
        info.update(deploymentType=self.deployment, buildNumber=100282, serverTime=jira_time(), serverTitle="Jira")
        return 200, info

    def h_fields(self, q: Any, body: Any) -> tuple[int, Any]:
        system = [{"id": n, "key": n, "name": n.title(), "custom": False, "clauseNames": [n]} for n in SYSTEM_FIELDS]
        custom = [
            {"id": cid, "key": cid, "name": name, "custom": True, "clauseNames": [f"cf[{cid.split('_')[1]}]", name]}
            for cid, name in self.custom_fields.items()
        ]
        return 200, system + custom

    def h_create(self, q: Any, body: Any) -> tuple[int, Any]:
        issue = self._create(_obj(body).get("fields"))
        return 201, {"id": issue.id, "key": issue.key, "self": f"{self.url}/rest/api/2/issue/{issue.id}"}

    def h_edit(self, q: Any, body: Any, key: str) -> tuple[int, Any]:
        self._edit(self._issue(key), body)
        return 204, None

    def h_get_issue(self, q: dict[str, list[str]], body: Any, key: str) -> tuple[int, Any]:
        return 200, self.render(self._issue(key), _wanted(q.get("fields"), None))

    def h_add_link(self, q: Any, body: Any, key: str) -> tuple[int, Any]:
        issue, body = self._issue(key), _obj(body)
        obj, gid = _obj(body.get("object")), body.get("globalId")
        errors = {k: f"{k.title()} is required." for k in ("url", "title") if not obj.get(k)}
        if gid is not None and len(gid) > 255:
            errors["globalId"] = "Global id must be 255 characters or fewer."
        if errors:
            raise ApiError(400, [], errors)
        old = next((lk for lk in issue.remote_links if gid is not None and lk.get("globalId") == gid), None)
        link_id = old["id"] if old else sum(len(i.remote_links) for i in self.issues.values()) + 10000
        link = {"id": link_id, "self": f"{self.url}/rest/api/2/issue/{issue.key}/remotelink/{link_id}"}
        link.update({k: body.get(k) for k in ("globalId", "application", "relationship", "object")})
        issue.remote_links = [lk for lk in issue.remote_links if lk is not old] + [link]
        issue.fields["updated"] = jira_time()
        return (200 if old else 201), {"id": link_id, "self": link["self"]}

    def h_links(self, q: dict[str, list[str]], body: Any, key: str) -> tuple[int, Any]:
        links = self._issue(key).remote_links
        if q.get("globalId"):
            link = next((lk for lk in links if lk.get("globalId") == q["globalId"][0]), None)
            if link is None:
                raise ApiError(404, ["No remote link with that globalId."])
            return 200, link
        return 200, links

    def h_delete_link(self, q: Any, body: Any, key: str, link_id: str) -> tuple[int, Any]:
        issue = self._issue(key)
        kept = [lk for lk in issue.remote_links if str(lk["id"]) != link_id]
        if len(kept) == len(issue.remote_links):
            raise ApiError(404, ["The remote issue link does not exist."])
        issue.remote_links, issue.fields["updated"] = kept, jira_time()
        return 204, None

    def h_comment(self, q: Any, body: Any, key: str) -> tuple[int, Any]:
        issue, text = self._issue(key), _obj(body).get("body")
        if not (isinstance(text, str) and text.strip()):
            raise ApiError(400, [], {"comment": "Comment body must be a non-empty string."})
        return 201, self._comment(issue, text, BOT)

    def _comment(self, issue: Issue, text: str, author: str) -> dict[str, Any]:
        now = jira_time()
        cid = str(20000 + sum(len(i.comments) for i in self.issues.values()))
        comment = {"id": cid, "self": f"{self.url}/rest/api/2/issue/{issue.id}/comment/{cid}", "body": text}
        comment.update(author=self._user(author), updateAuthor=self._user(author), created=now, updated=now)
        issue.comments.append(comment)
        issue.fields["updated"] = now
        return comment

    def h_comments(self, q: dict[str, list[str]], body: Any, key: str) -> tuple[int, Any]:
        """PageOfComments, oldest first unless orderBy=-created; Jira refuses any other order and non-numbers."""
        issue = self._issue(key)
        order = (q.get("orderBy") or ["created"])[-1]
        if order not in COMMENT_ORDERS:
            raise ApiError(400, [f"The value '{order}' is not valid for orderBy. Valid values are: created, -created."])
        try:
            start, size = int((q.get("startAt") or ["0"])[-1]), int((q.get("maxResults") or ["5000"])[-1])
        except ValueError:
            raise ApiError(400, ["startAt and maxResults must be integers."]) from None
        if start < 0 or size < 0:
            raise ApiError(400, ["startAt and maxResults must not be negative."])
        ordered = list(reversed(issue.comments)) if COMMENT_ORDERS[order] else list(issue.comments)
        page = ordered[start : start + size]
        return 200, {"startAt": start, "maxResults": size, "total": len(ordered), "comments": page}

    def h_search_jql(self, q: Any, body: Any) -> tuple[int, Any]:
        if self.deployment != "Cloud":  # Server/DC only has the classic /search
            raise ApiError(404, [f"null for uri: {self.url}/rest/api/2/search/jql"])
        p = _obj(body)
        if len(p.get("reconcileIssues") or []) > 50:
            raise ApiError(400, ["The number of reconcileIssues must be 50 or fewer."])
        wanted = _wanted(p.get("fields"), {"id"})
        cap = 5000 if wanted is not None and wanted <= {"id", "key"} else 100
        size = max(1, min(int(p.get("maxResults") or 50), cap))
        token = p.get("nextPageToken")
        try:
            start = int(base64.urlsafe_b64decode(str(token)).decode().split(":")[1]) if token else 0
        except (ValueError, IndexError):
            raise ApiError(400, ["The provided next page token is invalid or expired."]) from None
        hits, _ = self._search(str(p.get("jql") or ""), bounded=True)
        page = [self.render(i, wanted) for i in hits[start : start + size]]
        out: dict[str, Any] = {"issues": page, "isLast": start + size >= len(hits)}
        if not out["isLast"]:
            out["nextPageToken"] = base64.urlsafe_b64encode(f"offset:{start + size}".encode()).decode()
        return 200, out

    def h_search_old(self, q: Any, body: Any) -> tuple[int, Any]:
        if self.deployment == "Cloud":
            raise ApiError(410, [REMOVED_SEARCH])
        p = _obj(body)
        strict = str(p.get("validateQuery", "true")).lower() in ("true", "strict")
        hits, warnings = self._search(p.get("jql") or "", strict=strict)
        start, size = int(p.get("startAt") or 0), max(0, min(int(p.get("maxResults") or 50), 1000))
        page = [self.render(i, _wanted(p.get("fields"), None)) for i in hits[start : start + size]]
        out = {"expand": "schema,names", "startAt": start, "maxResults": size, "total": len(hits), "issues": page}
        return 200, {**out, "warningMessages": warnings} if warnings else out


# The client's search calls all pass use_post=True, so the searches are POST only.
_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", r"serverInfo", FakeJira.h_server_info),
    ("GET", r"field", FakeJira.h_fields),
    ("POST", r"issue", FakeJira.h_create),
    ("GET", r"issue/([^/]+)", FakeJira.h_get_issue),
    ("PUT", r"issue/([^/]+)", FakeJira.h_edit),
    ("GET", r"issue/([^/]+)/remotelink", FakeJira.h_links),
    ("POST", r"issue/([^/]+)/remotelink", FakeJira.h_add_link),
    ("DELETE", r"issue/([^/]+)/remotelink/(\d+)", FakeJira.h_delete_link),
    ("GET", r"issue/([^/]+)/comment", FakeJira.h_comments),
    ("POST", r"issue/([^/]+)/comment", FakeJira.h_comment),
    ("POST", r"search/jql", FakeJira.h_search_jql),
    ("POST", r"search", FakeJira.h_search_old),
]


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else {} (so malformed bodies get Jira's validation errors, not a crash)."""
    return value if isinstance(value, dict) else {}


def _wanted(raw: Any, default: set[str] | None) -> set[str] | None:
    """Requested field names; None = all. `*all`/`*navigable` mean all; `-name` exclusions are ignored."""
    if raw is None:
        return default
    names = {n.strip() for part in ([raw] if isinstance(raw, str) else raw) for n in str(part).split(",") if n.strip()}
    if not names:
        return default
    return None if names & {"*all", "*navigable"} else {n for n in names if not n.startswith("-")}


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # else every answer waits ~40 ms for the client's delayed ACK
    protocol_version = "HTTP/1.1"  # keep-alive like a real Jira; every answer carries Content-Length

    def _serve(self) -> None:
        fake: FakeJira = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        status, payload, headers = fake.handle(
            self.command,
            unquote(parts.path),
            parse_qs(parts.query, keep_blank_values=True),
            body,
            self.headers.get("Authorization"),
        )
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in {**fake.rate_headers(status), **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return
