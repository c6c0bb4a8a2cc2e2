"""The tracker is unreachable (connection refused) for a while, then comes back.

While it is down nothing is lost and nothing hammers it: each waiting action is tried again only after a growing,
jittered delay. Once it is back everything is filed by itself, in the order of the actions' due dates.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import Context, build_context
from app.worker import Worker
from connectors.github_tracker import GitHubTracker
from connectors.jira_tracker import JiraTracker
from connectors.markup import Document, paragraph
from connectors.targets import GitHubTarget, JiraTarget
from connectors.tracker import IssueDraft, Unreachable
from tests.conftest import make_settings
from tests.fakes import fake_jira
from tests.fakes.fake_jira import FakeJira
from tests.helpers import READ
from tests.reliability.support import free_port
from tests.reliability.trackers import (
    GITHUB_TARGET,
    JIRA_TARGET,
    actions_by_id,
    job_states,
    open_postmortem,
    post_actions,
    wire,
)
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]
ACTIONS = 40
OUTAGE = 5.0  # seconds the tracker refuses connections while the worker runs


def text(plain: str) -> Document:
    return Document.of(paragraph(plain))


class PinnedJira(FakeJira):
    """The fake Jira on a port chosen in advance, so that it can be "down" (nothing listening) before it is up."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def start(self) -> PinnedJira:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), fake_jira._Handler)
        server.fake = self  # type: ignore[attr-defined]
        server.daemon_threads = True
        self._server = server
        Thread(target=server.serve_forever, args=(0.05,), name="pinned-jira", daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def jira() -> Iterator[PinnedJira]:
    fake = PinnedJira(free_port())  # not started: connection refused
    yield fake
    fake.stop()


@pytest.fixture
def service(database_url: str, tracker_mappings: Path, jira: PinnedJira) -> Iterator[Context]:
    context = wire(build_context(make_settings(database_url, mappings=tracker_mappings)), jira, None, 2.0)
    yield context
    context.engine.dispose()


def _drive(worker: Worker, seconds: float, until_done: bool = False) -> dict[int, list[tuple[float, float]]]:
    """Run the worker for `seconds`; answers, per action, the (start, end) of each run_job call in which its filing
    job was tried, as its job row's attempt count shows: an attempt happened somewhere inside that span."""
    tried: dict[int, list[tuple[float, float]]] = defaultdict(list)
    seen = {action_id: attempts for action_id, (_, attempts, _) in job_states(worker.context).items()}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        if worker.run_job():
            ended = time.monotonic()
            for action_id, (_, attempts, _) in job_states(worker.context).items():
                if attempts > seen.get(action_id, 0):
                    tried[action_id] += [(started, ended)] * (attempts - seen.get(action_id, 0))
                    seen[action_id] = attempts
            continue
        if until_done and all(s == "done" for s, _, _ in job_states(worker.context).values()):
            break
        time.sleep(0.05)
    return tried


def test_outage_then_recovery_files_everything_in_due_date_order_without_hammering(
    service: Context, jira: PinnedJira
) -> None:
    due_dates = [date(2030, 1, 1) + timedelta(days=n) for n in range(ACTIONS)]
    random.Random(4).shuffle(due_dates)  # created in one order, due in another
    with TestClient(create_app(service, embedded_worker=False)) as api:
        postmortem, finding = open_postmortem(api)
        created = post_actions(api, postmortem["id"], finding["id"], [JIRA_TARGET] * ACTIONS, due_dates)
        worker = Worker(service)

        attempts = _drive(worker, OUTAGE)
        assert not jira.issues
        first_due = min(created, key=lambda a: str(a["due_date"]))  # it goes first, so it is the one that tried
        waiting = api.get(f"/api/v1/actions/{first_due['id']}", headers=READ).json()
        assert waiting["status"] == "unfiled" and "Jira" in (waiting["last_error"] or ""), waiting
        total = sum(len(times) for times in attempts.values())
        # Unbounded retrying would make thousands of attempts in these seconds, and per-action backoff alone one
        # per waiting action each round; the tracker is probed by one job at a time, at 0 s, ~2 s, ~6 s …
        assert 1 <= total <= 3, attempts
        for action_id, spans in attempts.items():
            # From the end of one span to the start of the next: never more than the time between the two attempts.
            gaps = [later[0] - earlier[1] for earlier, later in itertools.pairwise(spans)]
            for n, gap in enumerate(gaps, start=1):
                assert gap >= 0.75 * 2**n - 0.1, (action_id, gaps)  # 2 s, 4 s, 8 s … less the jitter

        jira.start()
        _drive(worker, 30, until_done=True)

    states = job_states(service)
    assert {s for s, _, _ in states.values()} == {"done"}, states
    assert len(jira.issues) == ACTIONS
    actions = actions_by_id(service)
    assert all(a.status == "open" and a.tracker_key for a in actions.values())
    filing_order = sorted(actions.values(), key=lambda a: int((a.tracker_key or "X-0").split("-")[1]))
    assert [a.due_date for a in filing_order] == sorted(due_dates), "filed in the order of due dates"


def test_a_refused_connection_is_unreachable_not_an_unknown_outcome() -> None:
    """What lets the worker wait for the tracker as a whole: nothing was sent, so nothing can have been created."""
    down = f"http://127.0.0.1:{free_port()}"
    draft = IssueDraft(idempotency_key="aftermath-action-1", title="t", body=text("b"))
    with pytest.raises(Unreachable):
        JiraTracker(down, "bot@example.com", "token", timeout=2).create_issue(
            JiraTarget.model_validate(JIRA_TARGET), draft
        )
    with pytest.raises(Unreachable):
        github = GitHubTracker("token", down, timeout=2, retry_backoff=0)
        github.create_issue(GitHubTarget.model_validate(GITHUB_TARGET), draft)
