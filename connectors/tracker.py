"""The one small interface every outbound tracker implements, and the errors it raises."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from connectors.markup import Document

if TYPE_CHECKING:
    from connectors.targets import Target, TrackerKind


class TrackerError(Exception):
    """Base of tracker failures; `message` is the tracker's own words, safe to show a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryLater(TrackerError):
    """A transient failure (429, 5xx, timeout, rate limit): try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(RetryLater):
    """A create whose answer was lost (timeout, 5xx after send): the issue may exist. Look it up before retrying."""


class Unreachable(RetryLater):
    """No connection could be made (refused, DNS, connect timeout): nothing was sent, and every other request to this
    tracker would fail the same way until it is back, so the caller should wait for it as a whole."""


class PermanentError(TrackerError):
    """Retrying cannot fix this (unknown project or repo, refused field, bad credentials)."""


class FieldsRefused(PermanentError):
    """The tracker refused only optional parts of the issue and created or changed nothing: `fields` maps each refused
    part (see IssueDraft.optional) to the tracker's message. Sending the issue again without them can succeed."""

    def __init__(self, message: str, fields: dict[str, str]) -> None:
        super().__init__(message)
        self.fields = fields


# The parts of a filed issue that `Tracker.update_issue` can rewrite. Naming them lets an update push only what changed
# in Aftermath, so that it does not undo what people changed in the tracker meanwhile (a priority raised in Jira, a
# co-assignee added on GitHub). A tracker without such a field (GitHub: due date, priority) shows it in the body.
ISSUE_PARTS: frozenset[str] = frozenset({"title", "body", "assignee", "due_date", "priority", "backlink"})


# An assignee is refused for who it is (that person cannot be assigned there); the other optional parts for what they
# are (the field is not on the project's screen), whatever their value.
REFUSED_PER_VALUE = frozenset({"assignee"})


@dataclass(frozen=True)
class Backlink:
    """A link from the issue back to Aftermath; `anchor` names it among the issue's links (e.g. "finding-12")."""

    anchor: str
    url: str
    title: str


@dataclass(frozen=True)
class IssueDraft:
    """Everything needed to file one action as one tracker issue."""

    idempotency_key: str  # e.g. "aftermath-3f2a9c1d-action-42"; stored with the issue so a retry can find it
    title: str
    body: Document  # written in each tracker's own markup by its connector
    labels: tuple[str, ...] = ()
    assignee: str | None = None  # Jira accountId (Cloud) or user name (Server); GitHub login
    due_date: date | None = None
    priority: str | None = None  # tracker-side priority name (Jira) — already mapped
    backlinks: tuple[Backlink, ...] = ()  # Jira adds one remote link each; the body carries them everywhere
    extra_fields: dict[str, Any] = field(default_factory=dict)  # Jira custom fields etc.
    # Priority labels the mappings know (GitHub): on an edit, the one of them that is no longer the action's goes.
    replaced_labels: tuple[str, ...] = ()
    # Optional parts not to send at all (the target refuses them), as opposed to unset ones, which an edit clears.
    omitted: frozenset[str] = frozenset()

    def optional(self) -> dict[str, Any]:
        """The parts a tracker may refuse without the issue losing its point, with their values (only those set):
        the issue text repeats each of them, so dropping one loses nothing a person reads."""
        parts: dict[str, Any] = {
            "assignee": self.assignee,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "priority": self.priority,
            "labels": list(self.labels) or None,
            **self.extra_fields,
        }
        return {name: value for name, value in parts.items() if value is not None}

    def without(self, parts: Set[str]) -> IssueDraft:
        """This draft minus the named optional parts (unknown names are ignored)."""
        if not parts:
            return self
        return replace(
            self,
            assignee=None if "assignee" in parts else self.assignee,
            due_date=None if "due_date" in parts else self.due_date,
            priority=None if "priority" in parts else self.priority,
            labels=() if "labels" in parts else self.labels,
            extra_fields={k: v for k, v in self.extra_fields.items() if k not in parts},
            omitted=self.omitted | frozenset(parts),
        )


@dataclass(frozen=True)
class IssueRef:
    key: str  # "OPS-12" or "owner/repo#12"
    url: str  # human URL of the issue
    backlinked: bool = True  # False: filed, but the separate backlinks (Jira's remote links) could not be added yet
    tracker_id: str | None = None  # the tracker's own id of the issue (GitHub node id, Jira issue id)
    # Optional parts the tracker accepted but did not keep (GitHub drops labels and assignees from a token without
    # push access), each with why.
    dropped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IssueState:
    key: str
    raw_status: str  # the tracker's own status text, e.g. "In Progress" or "closed:not_planned"
    category: str  # Jira statusCategory key (new/indeterminate/done); GitHub "open"/"closed"
    resolution: str | None  # Jira resolution name; GitHub state_reason
    updated_at: datetime | None
    assignee: str | None = None
    due_date: date | None = None
    moved_to: str | None = None  # new key when the tracker redirected (Jira move, GitHub transfer)
    tracker_id: str | None = None  # the tracker's own id of the issue, where the answer carries it


@dataclass(frozen=True)
class Comment:
    """A comment on an issue, as the tracker keeps it."""

    author: str | None  # display name or login
    text: str  # in the tracker's own markup
    created_at: datetime | None


@dataclass(frozen=True)
class PollResult:
    states: dict[str, IssueState]
    cursor: str | None = None  # opaque; stored by the caller per target and passed back next time
    missing: tuple[str, ...] = ()


class Tracker(Protocol):
    """A tracker target (one Jira site, or GitHub) seen through the few calls Aftermath needs."""

    kind: TrackerKind

    # How long after a create of unknown outcome a lookup that finds nothing may still be wrong (a search index
    # that lags writes): until then the caller waits instead of creating again.
    lookup_settle: float

    def find_issue(
        self, target: Target, idempotency_key: str, created_after: datetime | None = None
    ) -> IssueRef | None:
        """Return the issue filed earlier with this key, if the tracker has one (created after `created_after`)."""

    def create_issue(self, target: Target, draft: IssueDraft) -> IssueRef:
        """File the issue. Raises RetryLater/OutcomeUnknown/PermanentError."""

    def update_issue(self, target: Target, key: str, draft: IssueDraft, parts: Set[str] | None = None) -> None:
        """Rewrite the filed issue `key` to match `draft`: only the `parts` named (see ISSUE_PARTS; None = all).

        Keeps what finds the issue again (the idempotency label or body marker) and never removes labels people
        added; never changes the status. An update is idempotent, so a lost answer is a plain RetryLater.
        Raises RetryLater/PermanentError.
        """

    def poll(self, target: Target, keys: list[str], cursor: str | None) -> PollResult:
        """States of the tracked `keys` under `target` in as few requests as possible.

        Jira answers every key (batches of 100 through JQL); GitHub answers only the issues that changed
        since `cursor` (a conditional repository listing). Keys the tracker no longer knows go in `missing`.
        """

    def audit(self, target: Target, issues: dict[str, str]) -> PollResult:
        """Now and then, what `poll` cannot see: which of these issues (key -> the tracker's id of it) are gone or
        have moved. A tracker whose poll already reports that answers an empty result without a request."""

    def add_comment(self, key: str, text: Document) -> None:
        """Comment on an issue (reminders, recurrence), in the tracker's own markup."""

    def latest_comment(self, key: str) -> Comment | None:
        """The newest comment on the issue by someone other than the account that filed it (Aftermath's own reminders
        and escalations say nothing about why the issue was closed), or None when there is none."""
