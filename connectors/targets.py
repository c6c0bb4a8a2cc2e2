"""Where an action is filed: one target model per tracker, the union the app stores, and the client for a kind.

Kept free of the client libraries (they take a second to import), so mappings and the API can use the targets
without loading a tracker client; `open_tracker` imports the one it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from connectors.tracker import Tracker


class TrackerKind(StrEnum):
    JIRA = "jira"
    GITHUB = "github"


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JiraTarget(_Target):
    kind: Literal["jira"] = "jira"
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]+$")
    issue_type: str = Field(default="Task", min_length=1, max_length=255)

    @property
    def name(self) -> str:
        """Stable name of the target, for what Aftermath keeps per target (poll cursors)."""
        return f"jira:{self.project}"


class GitHubTarget(_Target):
    kind: Literal["github"] = "github"
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")

    @property
    def name(self) -> str:
        return f"github:{self.repo.lower()}"  # GitHub repository names are case-insensitive


Target = Annotated[JiraTarget | GitHubTarget, Field(discriminator="kind")]
TARGET = TypeAdapter[JiraTarget | GitHubTarget](Target)


@dataclass(frozen=True)
class WriteLimits:
    """A tracker's limits on content-creating requests (issues, comments, edits) per token, over all the clients that
    use the token: GitHub's secondary limits (docs.github.com, "Rate limits for the REST API")."""

    per_minute: int
    per_hour: int


WRITE_LIMITS = {TrackerKind.GITHUB: WriteLimits(per_minute=80, per_hour=500)}


@dataclass(frozen=True)
class Connection:
    """How to reach one tracker: its API base URL and credentials (`user` only where the tracker wants one)."""

    url: str
    token: str
    user: str | None = None


def open_tracker(kind: TrackerKind, connection: Connection, write_gate: Callable[[], None] | None = None) -> Tracker:
    """The client for `kind`, connected lazily (constructing it sends nothing); `write_gate` is called before each
    content-creating request, where the tracker has WRITE_LIMITS."""
    if kind == TrackerKind.JIRA:
        from connectors.jira_tracker import JiraTracker

        return JiraTracker(url=connection.url, user=connection.user, token=connection.token)
    from connectors.github_tracker import GitHubTracker

    return GitHubTracker(token=connection.token, api_url=connection.url, write_gate=write_gate)
