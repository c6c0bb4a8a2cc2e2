"""What a running process holds: settings, mappings, the database engine, configured tokens, tracker clients."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from app import budget
from app.db import make_engine, transaction
from app.mappings import Mappings, load_mappings
from app.settings import Settings, SettingsError
from app.tokens import Principal, from_settings
from connectors.targets import WRITE_LIMITS, TrackerKind, open_tracker
from connectors.tracker import REFUSED_PER_VALUE, Tracker

log = logging.getLogger(__name__)


@dataclass
class Context:
    settings: Settings
    mappings: Mappings
    engine: Engine
    tokens: dict[str, Principal]
    trackers: dict[TrackerKind, Tracker] = field(default_factory=dict)
    # Set when new inbound events are stored, so an idle in-process worker applies them at once.
    inbox_signal: threading.Event = field(default_factory=threading.Event)
    # Per target name, the optional issue parts its tracker refused (with the value, for parts refused per value) and
    # the tracker's message. Forgotten when the mappings are reloaded: the fix may have been made in the tracker.
    _refused: dict[str, dict[tuple[str, Any], str]] = field(default_factory=dict)

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

    def refused_fields(self, target: str, values: dict[str, Any]) -> dict[str, str]:
        """The parts of an issue with these optional `values` that this target is known to refuse, with why."""
        known = self._refused.get(target, {})
        return {part: message for (part, value), message in known.items() if value is None or values.get(part) == value}

    def remember_refused(self, target: str, refused: dict[str, str], values: dict[str, Any]) -> None:
        remembered = self._refused.setdefault(target, {})
        for part, message in refused.items():
            remembered[(part, values.get(part) if part in REFUSED_PER_VALUE else None)] = message

    def forget_refused(self) -> None:
        self._refused.clear()

    def reload_mappings(self) -> bool:
        """Read the mapping files again (on SIGHUP); when they are invalid, keep the ones in use and say why."""
        folder = self.settings.mappings_folder()
        try:
            mappings = load_mappings(folder)
        except SettingsError as exc:
            log.error("mappings not reloaded, the previous ones stay in use: %s", exc)
            return False
        # One assignment: request handlers and the worker read `mappings` once per unit of work, and see either the
        # old rules or the new ones, never a mix.
        self.mappings = mappings
        self.forget_refused()  # what a target refused may depend on what the mappings sent it
        log.info("mappings reloaded from %s", folder.resolve())
        return True

    def tracker(self, kind: str) -> Tracker | None:
        """The client of this tracker kind (made on first use), or None when it is not configured."""
        tracker_kind = TrackerKind(kind)
        if tracker_kind not in self.trackers:
            connection = self.settings.connection(tracker_kind)
            if connection is None:
                return None
            limits = WRITE_LIMITS.get(tracker_kind)
            key = budget.budget_key(connection.token, connection.url)
            gate = budget.gate(self.engine, key, budget.Budget.under(limits)) if limits else None
            self.trackers[tracker_kind] = open_tracker(tracker_kind, connection, write_gate=gate)
        return self.trackers[tracker_kind]


def build_context(settings: Settings, **engine_kwargs: Any) -> Context:
    """Validate mappings and tokens and open the engine; raises SettingsError with one line on bad config."""
    mappings = load_mappings(settings.mappings_folder())
    return Context(
        settings=settings,
        mappings=mappings,
        engine=make_engine(settings.database_url, **engine_kwargs),
        tokens=from_settings([entry.get_secret_value() for entry in settings.api_tokens]),
    )
