"""Jira Cloud and Server/DC as an Aftermath tracker, through the `jira` (pycontribs) client over REST v2.

Files one issue per action (marked with a label and a remote-link globalId so a retry finds it), rewrites it when the
action is edited, and polls status.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Set
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import requests
from jira import JIRA, JIRAError
from urllib3.exceptions import NewConnectionError

from connectors.formats import parse_time as _parse_time
from connectors.formats import retry_after_seconds
from connectors.markup import Document, to_jira_wiki
from connectors.targets import JiraTarget, Target, TrackerKind
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

LOG = logging.getLogger(__name__)

# REST v2 on purpose: `jira` 3.10 builds every URL as /rest/api/2 and sends description and comment bodies as plain
# strings, which is exactly what v2 takes (v3 demands Atlassian Document Format objects there and answers a plain
# string with 400). Same endpoints and field shapes otherwise, on Cloud and on Server/DC (which has no v3 at all).
REST_API_VERSION = "2"
POLL_BATCH = 100  # search/jql returns at most 100 issues per page once fields other than id/key are asked for
POLL_FIELDS = ("status", "resolution", "updated", "assignee", "duedate")
RECENT_COMMENTS = 50  # newest first: enough to look past Aftermath's own reminders and escalations
SUMMARY_MAX = 255
LABEL_MAX = 255
DESCRIPTION_MAX = 32_000  # Jira's text fields hold 32 767 chars; leave room for the marker line
GLOBAL_ID_PREFIX = "aftermath:"
MARKER_PREFIX = "Aftermath idempotency key: "
_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[0-9]+$")
# "An issue with key 'X-1' does not exist for field 'key'." (Cloud) / "The value 'X-1' does not exist for ..." (older)
_MISSING_KEY_RE = re.compile(r"(?:issue with key|value) '([A-Za-z][A-Za-z0-9_]*-[0-9]+)' does not exist", re.I)


def sanitize_label(text: str) -> str:
    """Jira labels may not contain whitespace and are at most 255 chars."""
    return re.sub(r"\s+", "-", text.strip())[:LABEL_MAX]


def global_id(idempotency_key: str, anchor: str | None = None) -> str:
    """A remote link's globalId: re-posting it updates that link instead of adding another."""
    return (GLOBAL_ID_PREFIX + idempotency_key + (f":{anchor}" if anchor else ""))[:255]


class JiraTracker:
    """One Jira site. Cloud when `user` (the account e-mail) is given: Basic email:API-token; else a Server/DC PAT."""

    kind = TrackerKind.JIRA
    lookup_settle = 60.0  # search/jql is eventually consistent: a fresh issue can be missing from it for a while

    def __init__(self, url: str, user: str | None, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._user = user
        self._token = token
        self._timeout = timeout
        self._jira: JIRA | None = None  # built on first use, so constructing a tracker never touches the network

    # -- Tracker protocol ------------------------------------------------------------------------------------------
    def find_issue(
        self, target: Target, idempotency_key: str, created_after: datetime | None = None
    ) -> IssueRef | None:
        """The issue carrying this key: by its label (1 search), else by the marker line of its description (1 more:
        a project whose screen refuses labels). Only an issue created after `created_after` counts: an older one with
        the same key cannot be this attempt's.

        Jira's search index is eventually consistent: a miss right after an OutcomeUnknown create proves little,
        so the caller should look again for a while before filing anew.
        """
        project, _ = _target(target)
        label, marker = sanitize_label(idempotency_key), MARKER_PREFIX + idempotency_key
        wanted = ["labels", "created", "description"]
        by_label = self._search(f"project = {_quote(project)} AND labels = {_quote(label)}", wanted)
        # `labels =` is an exact match and `~` a word search: verify here, a lookup must never adopt a stranger's issue.
        hits = [i for i in by_label if label in ((i.get("fields") or {}).get("labels") or [])]
        if not hits:
            by_text = self._search(f"project = {_quote(project)} AND description ~ {_quote(_quote(label))}", wanted)
            hits = [i for i in by_text if marker in str((i.get("fields") or {}).get("description") or "")]
        if created_after is not None:
            hits = [
                i
                for i in hits
                if (_parse_time((i.get("fields") or {}).get("created")) or created_after) >= created_after
            ]
        if not hits:
            return None
        hits.sort(key=lambda i: int(i.get("id") or 0))  # ids grow: the first one filed is the one to keep
        if len(hits) > 1:
            LOG.warning("Jira has %d issues keyed %s: %s", len(hits), label, [i.get("key") for i in hits])
        return self._ref(str(hits[0]["key"]), str(hits[0].get("id") or "") or None)

    def create_issue(self, target: Target, draft: IssueDraft) -> IssueRef:
        """POST the issue (1 request, no prefetch GET), then upsert one remote link per backlink (+1 applinks GET per
        client). A 400 naming only optional fields is FieldsRefused: nothing was created, the caller may file again
        without them."""
        project, issue_type = _target(target)
        jira = self._client()
        fields = self._fields(project, issue_type, draft, cloud=jira.deploymentType == "Cloud")
        with _translated(f"create a {issue_type} in {project}", create=True, optional=_optional_ids(draft)):
            raw = jira.create_issue(fields=fields, prefetch=False).raw or {}
        ref = self._ref(str(raw["key"]), str(raw.get("id") or "") or None)
        try:
            self._link_back(ref.key, draft, prune=False)
        except TrackerError as e:
            # The issue exists and carries its key, so failing here would only make the caller file it again. Links
            # are upserts (same globalId): the caller repairs them later (update_issue) without duplicates.
            LOG.warning("Jira issue %s filed, but its backlinks were not added: %s", ref.key, e.message)
            return replace(ref, backlinked=False)
        return ref

    def update_issue(self, target: Target, key: str, draft: IssueDraft, parts: Set[str] | None = None) -> None:
        """One GET (is it still this action's issue?), one PUT issue/{key}, and when the backlinks are among `parts`
        their upserts plus one GET of the issue's links to remove the stale ones.

        `target` is not needed: the key names the issue, wherever it has moved since. The status is never sent (Jira
        only changes it through transitions anyway). Refused optional fields raise FieldsRefused, nothing changed.
        """
        if not _KEY_RE.match(key):  # it goes into the URL path
            raise PermanentError(f"not a Jira issue key: {key!r}")
        want = ISSUE_PARTS if parts is None else parts
        jira = self._client()
        cloud = jira.deploymentType == "Cloud"
        self._check_ours(key, draft.idempotency_key)
        fields: dict[str, Any] = {}
        optional: dict[str, str] = {}
        if "title" in want:
            fields["summary"] = _summary(draft)
        if "body" in want:
            fields["description"] = _description(draft, cloud=cloud)
        if "due_date" in want and "due_date" not in draft.omitted:
            fields["duedate"] = draft.due_date.isoformat() if draft.due_date else None  # null clears it
            optional["duedate"] = "due_date"
        if "priority" in want and draft.priority:
            # An action priority the mappings do not map leaves Jira's alone: Jira has no "no priority" to set.
            fields["priority"] = {"name": draft.priority}
            optional["priority"] = "priority"
        if "assignee" in want and "assignee" not in draft.omitted:
            # An owner the mappings cannot map unassigns: the previous owner's name on the issue would be wrong.
            fields["assignee"] = _assignee(draft.assignee, cloud=cloud)
            optional["assignee"] = "assignee"
        body: dict[str, Any] = {"fields": fields}
        if "labels" not in draft.omitted:
            # Labels through the `update` verb's `add`, never `fields.labels`: that would replace the whole set and
            # drop labels people added. Adding is a no-op for labels already there, and brings back a removed key
            # label, which find_issue needs. Custom `extra_fields` are create-time defaults and are not re-sent.
            body["update"] = {"labels": [{"add": label} for label in _labels(draft)]}
            optional["labels"] = "labels"
        with _translated(f"update {key}", optional=optional):
            # Straight through the client's session: `Issue.update()` would first GET the issue for nothing.
            jira._session.put(jira._get_url(f"issue/{key}"), data=json.dumps(body))
        if "backlink" in want:
            self._link_back(key, draft, prune=True)

    def poll(self, target: Target, keys: list[str], cursor: str | None) -> PollResult:
        """One POST search/jql per 100 keys (+ one GET /field per client); `cursor` is unused and passed back.

        States are keyed by the key asked for; a moved issue answers under its new key, reported as `moved_to`.
        """
        given: dict[str, str] = {}  # normalized (upper-case) key -> the caller's spelling, which the answer uses
        for key in keys:
            given.setdefault(key.strip().upper(), key)
        valid = [k for k in given if _KEY_RE.match(k)]
        missing = [k for k in given if not _KEY_RE.match(k)]  # cannot exist, and would make the JQL invalid
        states: dict[str, IssueState] = {}
        for start in range(0, len(valid), POLL_BATCH):
            self._poll_batch(valid[start : start + POLL_BATCH], states, missing)
        return PollResult(
            states={given[k]: replace(s, key=given[k]) for k, s in states.items()},
            cursor=cursor,
            missing=tuple(given[k] for k in missing),
        )

    def audit(self, target: Target, issues: dict[str, str]) -> PollResult:
        """Nothing to do: `poll` asks for every key and already reports the deleted and the moved ones."""
        return PollResult(states={})

    def add_comment(self, key: str, text: Document) -> None:
        jira = self._client()
        body = to_jira_wiki(text, cloud=jira.deploymentType == "Cloud")[:DESCRIPTION_MAX]
        with _translated(f"comment on {key}"):
            jira.add_comment(key, body)  # v2: the body is a wiki-markup string

    def latest_comment(self, key: str) -> Comment | None:
        """Two GETs: the issue's creator (the account that filed it: Aftermath's), then its newest comments."""
        if not _KEY_RE.match(key):  # it goes into the URL path
            raise PermanentError(f"not a Jira issue key: {key!r}")
        jira = self._client()
        with _translated(f"read {key}"):
            creator = _person_id(((jira.issue(key, fields="creator").raw or {}).get("fields") or {}).get("creator"))
        with _translated(f"read the comments of {key}"):
            newest = jira.comments(key, max_results=RECENT_COMMENTS, order_by="-created")
        for raw in (c.raw or {} for c in newest):
            author = raw.get("author") or {}
            if creator is not None and _person_id(author) == creator:
                continue
            name = author.get("displayName") or _person_id(author)
            return Comment(author=name, text=str(raw.get("body") or ""), created_at=_parse_time(raw.get("created")))
        return None

    # -- backlinks ------------------------------------------------------------------------------------------------
    def _link_back(self, key: str, draft: IssueDraft, *, prune: bool) -> None:
        """One remote link per backlink, each upserted under its own globalId (re-posting it updates the link in
        place: 200, not a second link); with `prune`, this action's links that no longer belong are removed."""
        jira = self._client()
        wanted = {global_id(draft.idempotency_key, link.anchor): link for link in draft.backlinks}
        for gid, link in wanted.items():
            with _translated(f"link {key} back to Aftermath"):
                jira.add_remote_link(
                    key, {"url": link.url, "title": link.title}, globalId=gid, relationship="postmortem action"
                )
        if not prune:
            return
        base = global_id(draft.idempotency_key)
        with _translated(f"read the links of {key}"):
            existing = jira.remote_links(key)
        for remote in existing:
            gid = str(getattr(remote, "globalId", "") or "")
            if (gid == base or gid.startswith(base + ":")) and gid not in wanted:
                with _translated(f"remove a stale link from {key}"):
                    remote.delete()

    def _check_ours(self, key: str, idempotency_key: str) -> None:
        """Refuse to edit an issue that does not carry this action's key: a key reused by another installation, or an
        issue adopted by mistake, must never be rewritten with this action's text."""
        jira = self._client()
        with _translated(f"read {key}"):
            fields = (jira.issue(key, fields="labels,description").raw or {}).get("fields") or {}
        label, marker = sanitize_label(idempotency_key), MARKER_PREFIX + idempotency_key
        if label not in (fields.get("labels") or []) and marker not in str(fields.get("description") or ""):
            raise PermanentError(
                f"Jira issue {key} does not carry this action's key {idempotency_key}: not changing it"
            )

    # -- internals -------------------------------------------------------------------------------------------------
    def _client(self) -> JIRA:
        if self._jira is None:
            options: dict[str, str | bool | Any] = {"rest_api_version": REST_API_VERSION}
            with _translated("connect to Jira"):
                # max_retries=0: ResilientSession would otherwise re-send a POST after ConnectionError, 429 or 503,
                # sleeping up to 60 s inside the call, and a re-sent create can file a duplicate. We surface
                # RetryLater/OutcomeUnknown instead and let the caller's queue decide when to retry.
                # The constructor's GET serverInfo tells Cloud from Server/DC (search endpoint, assignee shape).
                if self._user:
                    self._jira = JIRA(
                        self.url,
                        options=options,
                        basic_auth=(self._user, self._token),
                        max_retries=0,
                        timeout=self._timeout,
                    )
                else:
                    self._jira = JIRA(
                        self.url, options=options, token_auth=self._token, max_retries=0, timeout=self._timeout
                    )
        return self._jira

    def _ref(self, key: str, issue_id: str | None = None) -> IssueRef:
        return IssueRef(key=key, url=f"{self.url}/browse/{key}", tracker_id=issue_id)

    def _fields(self, project: str, issue_type: str, draft: IssueDraft, *, cloud: bool) -> dict[str, Any]:
        # Extras first so they cannot override what identifies and finds the issue (project, summary, marker label).
        fields: dict[str, Any] = dict(draft.extra_fields)
        fields.update(
            project={"key": project},
            issuetype={"name": issue_type},  # by name and key: avoids the client's two lookup GETs
            summary=_summary(draft),
            description=_description(draft, cloud=cloud),
        )
        if "labels" not in draft.omitted:  # the screen refused them, the key label with them: found by its marker
            fields["labels"] = _labels(draft)
        if draft.due_date:
            fields["duedate"] = draft.due_date.isoformat()
        if draft.priority:
            fields["priority"] = {"name": draft.priority}
        if draft.assignee:
            fields["assignee"] = _assignee(draft.assignee, cloud=cloud)
        return fields

    def _search(self, jql: str, fields: list[str]) -> list[dict[str, Any]]:
        """All issues matching `jql` (raw JSON), via POST so a 100-key IN list never hits URL length limits."""
        jira = self._client()
        issues: list[dict[str, Any]] = []
        with _translated("search Jira"):
            if jira.deploymentType == "Cloud":  # /search/jql: token pages, no total (old /search answers 410)
                token: str | None = None
                while True:
                    page = jira.enhanced_search_issues(
                        jql,
                        nextPageToken=token,
                        maxResults=POLL_BATCH,
                        fields=list(fields),
                        json_result=True,
                        use_post=True,
                    )
                    issues += _as_dict(page).get("issues") or []
                    token = _as_dict(page).get("nextPageToken")
                    if not token:
                        return issues
            while True:  # Server/DC: classic /search with startAt/total
                page = _as_dict(
                    jira.search_issues(
                        jql,
                        startAt=len(issues),
                        maxResults=POLL_BATCH,
                        fields=list(fields),
                        json_result=True,
                        use_post=True,
                    )
                )
                got = page.get("issues") or []
                issues += got
                if not got or len(issues) >= int(page.get("total") or 0):
                    return issues

    def _poll_batch(self, batch: list[str], states: dict[str, IssueState], missing: list[str]) -> None:
        pending, found = list(batch), list[dict[str, Any]]()
        while pending:
            try:
                found = self._search(f"key in ({','.join(pending)})", list(POLL_FIELDS))
                break
            except PermanentError as e:
                # One deleted (or now invisible) key fails the whole JQL with 400; Jira names it, so drop it and ask
                # again: a batch costs one extra request per *set* of vanished keys, not a GET per key.
                gone = {k.upper() for k in _MISSING_KEY_RE.findall(e.message)} & set(pending)
                if not gone:
                    if not (isinstance(e.__cause__, JIRAError) and e.__cause__.status_code == 400):
                        raise  # credentials, permissions: nothing per-key reading would fix
                    # A 400 we cannot attribute to a key: only now fall back to reading the batch one GET at a time.
                    LOG.warning("Jira refused the batch search (%s); reading %d issues one by one", e, len(pending))
                    break
                missing += [k for k in pending if k in gone]
                pending = [k for k in pending if k not in gone]
        by_key = {str(i.get("key", "")).upper(): i for i in found}
        for key in pending:
            if key in by_key:
                states[key] = _state(key, by_key[key])
                continue
            # Not answered under its own key: moved to another project (Jira resolves the old key and answers the new
            # one) or not yet in the search index. Rare, so one GET each settles which.
            issue = self._get_issue(key)
            if issue is None:
                missing.append(key)
            else:
                states[key] = _state(key, issue)

    def _get_issue(self, key: str) -> dict[str, Any] | None:
        jira = self._client()
        try:
            with _translated(f"read {key}"):
                return jira.issue(key, fields=",".join(POLL_FIELDS)).raw or {}
        except PermanentError as e:
            if isinstance(e.__cause__, JIRAError) and e.__cause__.status_code == 404:
                return None
            raise


def _summary(draft: IssueDraft) -> str:
    return " ".join(draft.title.split())[:SUMMARY_MAX]  # Jira refuses newlines and > 255 chars


def _description(draft: IssueDraft, *, cloud: bool) -> str:
    # v2 description is a wiki-markup string; the marker line makes a human-visible, greppable trail.
    body = to_jira_wiki(draft.body, cloud=cloud)[:DESCRIPTION_MAX].rstrip()
    # The key is letters, digits and hyphens inside a word, which wiki markup leaves alone: it stays greppable.
    return f"{body}\n\n----\n{MARKER_PREFIX}{draft.idempotency_key}"


def _labels(draft: IssueDraft) -> list[str]:
    labels = [sanitize_label(lb) for lb in draft.labels if lb.strip()]
    return list(dict.fromkeys([*labels, sanitize_label(draft.idempotency_key)]))  # the key label: what find_issue finds


def _optional_ids(draft: IssueDraft) -> dict[str, str]:
    """Jira's field id of each optional part the create sends, to the part's name (see IssueDraft.optional)."""
    ids = {"assignee": "assignee", "duedate": "due_date", "priority": "priority", "labels": "labels"}
    return {jira_id: part for jira_id, part in ids.items() if part not in draft.omitted} | {
        k: k for k in draft.extra_fields
    }


def _assignee(who: str | None, *, cloud: bool) -> dict[str, str | None]:
    # Cloud identifies users by accountId only (GDPR); Server/DC by user name. A null id unassigns (on edit).
    return {"accountId": who} if cloud else {"name": who}


def _target(target: Target) -> tuple[str, str]:
    if not isinstance(target, JiraTarget):
        raise PermanentError(f"not a Jira target: {target!r}")
    return target.project, target.issue_type


def _quote(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_dict(page: Any) -> dict[str, Any]:
    if not isinstance(page, dict):  # json_result=True always answers a dict; guard against a client change
        raise RetryLater(f"unexpected Jira search answer: {type(page).__name__}")
    return page


def _state(asked: str, issue: dict[str, Any]) -> IssueState:
    f = issue.get("fields") or {}
    status = f.get("status") or {}
    resolution = f.get("resolution") or {}
    assignee = f.get("assignee") or {}
    key = str(issue.get("key") or asked)
    return IssueState(
        key=asked,
        raw_status=str(status.get("name") or ""),
        category=str((status.get("statusCategory") or {}).get("key") or "undefined"),
        resolution=resolution.get("name"),
        updated_at=_parse_time(f.get("updated")),
        assignee=assignee.get("accountId") or assignee.get("name"),
        due_date=_parse_date(f.get("duedate")),
        moved_to=key if key.upper() != asked.upper() else None,
    )


def _person_id(user: Any) -> str | None:
    """A user's id: accountId on Cloud, the user name on Server/DC."""
    if not isinstance(user, dict):
        return None
    return user.get("accountId") or user.get("name") or None


def _parse_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _error_text(resp: requests.Response | None, fallback: str) -> str:
    """Jira's ErrorCollection as one line: errorMessages, then `field: message` for each field error."""
    if resp is None:
        return fallback
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or fallback)[:500]
    if not isinstance(body, dict):
        return fallback
    parts = [str(m) for m in body.get("errorMessages") or []]
    parts += [f"{k}: {v}" for k, v in (body.get("errors") or {}).items()]
    parts += [str(body[k]) for k in ("message", "errorMessage") if body.get(k)]
    return "; ".join(parts) or fallback


def _refused_fields(resp: requests.Response | None, optional: dict[str, str]) -> dict[str, str] | None:
    """Part name -> Jira's message, when the 400 is only about optional fields we sent; else None (a general error
    message, or a refused required field such as the summary or the issue type, cannot be fixed by dropping)."""
    try:
        body = resp.json() if resp is not None else None
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("errorMessages") or not isinstance(body.get("errors"), dict):
        return None
    errors = {str(k): str(v) for k, v in body["errors"].items()}
    if not errors or any(field not in optional for field in errors):
        return None
    return {optional[field]: message for field, message in errors.items()}


def _retry_after(resp: requests.Response | None) -> float | None:
    return retry_after_seconds(resp.headers.get("Retry-After")) if resp is not None else None


@contextmanager
def _translated(action: str, *, create: bool = False, optional: dict[str, str] | None = None) -> Iterator[None]:
    """Map client/transport failures to the Tracker errors; `create` marks the non-idempotent issue POST, `optional`
    maps the Jira ids of the optional fields sent to their part names (a 400 refusing only those is FieldsRefused)."""
    try:
        yield
    except JIRAError as e:
        status, resp = e.status_code, e.response
        text = _error_text(resp, e.text or "no details")
        if status == 400 and optional and (refused := _refused_fields(resp, optional)):
            raise FieldsRefused(f"Jira refused to {action}: {text}", refused) from e
        if status in (401, 403):
            raise PermanentError(f"Jira refused the credentials or permission to {action} ({status}): {text}") from e
        if status == 429 or status == 408:
            raise RetryLater(f"Jira asked to slow down ({status}): {text}", _retry_after(resp)) from e
        if status is None or status >= 500 or 200 <= status < 300:  # 2xx here = an answer without the issue key
            # A 5xx on the create POST may come after Jira stored the issue: the caller must look before re-filing.
            kind = OutcomeUnknown if create else RetryLater
            raise kind(f"Jira failed to {action} ({status}): {text}", _retry_after(resp)) from e
        raise PermanentError(f"Jira refused to {action} ({status}): {text}") from e
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as e:
        raise PermanentError(f"bad Jira URL: {e}") from e
    except ValueError as e:  # a 2xx that is not JSON (a proxy's HTML page): the request did reach something
        kind = OutcomeUnknown if create else RetryLater
        raise kind(f"unreadable answer from Jira to {action}: {e}") from e
    except requests.RequestException as e:
        # Read timeout or a connection dropped mid-request: a create may have landed. A connection that was never
        # opened (refused, DNS, connect timeout) cannot have created anything, so plain RetryLater suffices there.
        if _never_sent(e):
            raise Unreachable(f"Jira unreachable, could not {action}: {type(e).__name__}: {e}") from e
        kind = OutcomeUnknown if create else RetryLater
        raise kind(f"no answer from Jira to {action}: {type(e).__name__}: {e}") from e


def _never_sent(e: requests.RequestException) -> bool:
    reason = getattr(e.args[0], "reason", None) if e.args else None
    return isinstance(e, requests.exceptions.ConnectTimeout) or isinstance(reason, NewConnectionError)
