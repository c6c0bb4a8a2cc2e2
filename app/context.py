"""What a running process holds: settings, mappings, the database engine, configured tokens, tracker clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from app.db import make_engine, transaction
from app.mappings import Mappings, load_mappings
from app.settings import Settings
from app.tokens import Principal, from_settings
from connectors.tracker import Tracker


@dataclass
class Context:
    settings: Settings
    mappings: Mappings
    engine: Engine
    tokens: dict[str, Principal]
    trackers: dict[str, Tracker] = field(default_factory=dict)
    # Set when new inbound events are stored, so an idle in-process worker applies them at once.
    inbox_signal: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends without error."""
        with transaction(self.engine) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        # Closing (not rolling back) ends the transaction without expiring what was read.
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def tracker(self, kind: str) -> Tracker | None:
        if kind not in self.trackers:
            built = build_tracker(self.settings, kind)
            if built is None:
                return None
            self.trackers[kind] = built
        return self.trackers[kind]


def build_tracker(settings: Settings, kind: str) -> Tracker | None:
    """The configured client for a tracker kind, or None when its settings are absent."""
    if kind == "jira" and settings.jira_enabled:
        from connectors.jira_tracker import JiraTracker

        assert settings.jira_url and settings.jira_token
        return JiraTracker(url=settings.jira_url, user=settings.jira_user, token=settings.jira_token)
    if kind == "github" and settings.github_enabled:
        from connectors.github_tracker import GitHubTracker

        assert settings.github_token
        return GitHubTracker(token=settings.github_token, api_url=settings.github_api_url)
    return None


def build_context(settings: Settings, **engine_kwargs: Any) -> Context:
    """Validate mappings and tokens and open the engine; raises SettingsError with one line on bad config."""
    mappings = load_mappings(settings.mappings)
    return Context(
        settings=settings,
        mappings=mappings,
        engine=make_engine(settings.database_url, **engine_kwargs),
        tokens=from_settings(settings.api_tokens),
    )
