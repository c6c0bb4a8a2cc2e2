"""Inbound tracker webhooks (GitHub `issues`, Jira `jira:issue_*`): signature checks and parsing. Pure functions.

`HOOKS` describes each tracker's webhook (how it signs, which header names the delivery, how to read it), so the
app serves one route per entry without knowing the vendors.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from connectors.events import PayloadError, load_object
from connectors.formats import parse_time
from connectors.targets import TrackerKind
from connectors.tracker import IssueState


@dataclass(frozen=True)
class TrackerEvent:
    """One tracker-side change to an issue Aftermath may have filed."""

    tracker: TrackerKind
    key: str  # the issue's key before this event ("owner/repo#12", "OPS-12")
    state: IssueState | None  # None: the event does not tell the issue's state (e.g. deleted)
    deleted: bool = False


def _hmac_matches(secret: str | None, body: bytes, header: str | None) -> bool:
    # No secret configured means the route is off: an empty key would verify anyone's HMAC.
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256=").strip().lower())


def verify_github(*, secret: str | None, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`."""
    return _hmac_matches(secret, body, header)


def verify_jira(*, secret: str | None, body: bytes, header: str | None, url_secret: str | None) -> bool:
    """Jira admin webhooks with a secret send `X-Hub-Signature: sha256=…`; older set-ups put a secret in the URL."""
    if _hmac_matches(secret, body, header):
        return True
    return bool(secret and url_secret and hmac.compare_digest(secret.encode(), url_secret.encode()))


def parse_github(event_name: str | None, body: bytes) -> TrackerEvent | None:
    """An `issues` event as a TrackerEvent; None for events and actions that say nothing about status."""
    data = load_object(body)
    if event_name != "issues":
        return None
    issue, repo = data.get("issue"), data.get("repository")
    if not isinstance(issue, dict) or not isinstance(repo, dict):
        raise PayloadError("an issues event needs `issue` and `repository` objects")
    number, full_name = issue.get("number"), repo.get("full_name")
    if not isinstance(number, int) or not isinstance(full_name, str):
        raise PayloadError("issue.number (int) and repository.full_name (string) are required")
    key = f"{full_name}#{number}"
    action = data.get("action")
    if action == "deleted":
        return TrackerEvent(TrackerKind.GITHUB, key, None, deleted=True)
    moved_to = None
    if action == "transferred":
        changes = data.get("changes") or {}
        new_issue, new_repo = changes.get("new_issue") or {}, changes.get("new_repository") or {}
        if isinstance(new_issue.get("number"), int) and isinstance(new_repo.get("full_name"), str):
            moved_to = f"{new_repo['full_name']}#{new_issue['number']}"
    state = str(issue.get("state") or "open")
    reason = issue.get("state_reason") if isinstance(issue.get("state_reason"), str) else None
    raw = state if state == "open" else f"closed:{reason or 'completed'}"
    return TrackerEvent(
        TrackerKind.GITHUB,
        key,
        IssueState(
            key=key,
            raw_status=raw,
            category=state,
            resolution=reason,
            updated_at=parse_time(issue.get("updated_at")),
            moved_to=moved_to,
        ),
    )


def parse_jira(body: bytes) -> TrackerEvent | None:
    """`jira:issue_updated` / `jira:issue_deleted` as a TrackerEvent; None for other events."""
    data = load_object(body)
    event = data.get("webhookEvent")
    if event not in ("jira:issue_updated", "jira:issue_deleted", "jira:issue_created"):
        return None
    issue = data.get("issue")
    if not isinstance(issue, dict) or not isinstance(issue.get("key"), str):
        raise PayloadError("a jira:issue_* event needs issue.key")
    key = issue["key"]
    if event == "jira:issue_deleted":
        return TrackerEvent(TrackerKind.JIRA, key, None, deleted=True)
    # A move to another project arrives as an update whose changelog renames the key.
    old_key = key
    for item in (data.get("changelog") or {}).get("items") or []:
        if isinstance(item, dict) and item.get("field") == "Key" and isinstance(item.get("fromString"), str):
            old_key = item["fromString"]
    fields = issue.get("fields") or {}
    status = fields.get("status") or {}
    if not isinstance(status, dict) or not status.get("name"):
        raise PayloadError("issue.fields.status.name is required")
    category = (status.get("statusCategory") or {}).get("key") or "new"
    resolution = (fields.get("resolution") or {}).get("name") if isinstance(fields.get("resolution"), dict) else None
    return TrackerEvent(
        TrackerKind.JIRA,
        old_key,
        IssueState(
            key=old_key,
            raw_status=str(status["name"]),
            category=str(category),
            resolution=resolution,
            updated_at=None,
            moved_to=key if key != old_key else None,
        ),
    )


@dataclass(frozen=True)
class TrackerHook:
    """One tracker's webhook, as the route serving it needs to know it (headers by their lower-case names)."""

    kind: TrackerKind
    how_signed: str  # for the 401 detail
    verify: Callable[[str | None, bytes, Mapping[str, str], Mapping[str, str]], bool]  # secret, body, headers, query
    parse: Callable[[Mapping[str, str], bytes], TrackerEvent | None]
    delivery_header: str  # names the delivery, so a redelivery is recognised


HOOKS = (
    TrackerHook(
        kind=TrackerKind.GITHUB,
        how_signed="X-Hub-Signature-256",
        verify=lambda secret, body, headers, _query: verify_github(
            secret=secret, body=body, header=headers.get("x-hub-signature-256")
        ),
        parse=lambda headers, body: parse_github(headers.get("x-github-event"), body),
        delivery_header="x-github-delivery",
    ),
    TrackerHook(
        kind=TrackerKind.JIRA,
        how_signed="X-Hub-Signature (or ?secret=)",
        verify=lambda secret, body, headers, query: verify_jira(
            secret=secret, body=body, header=headers.get("x-hub-signature"), url_secret=query.get("secret")
        ),
        parse=lambda _headers, body: parse_jira(body),
        delivery_header="x-atlassian-webhook-identifier",
    ),
)
