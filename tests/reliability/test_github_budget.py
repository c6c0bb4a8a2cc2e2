"""Four `aftermath worker` processes on PostgreSQL share one GitHub token: together they stay under GitHub's secondary
limits (80 content-creating requests a minute, 500 an hour), because every write takes a slot from the one budget in
the database. The fake counts creates per rolling minute and hour and refuses what GitHub would refuse."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.context import build_context
from connectors.targets import GitHubTarget
from tests.conftest import make_settings
from tests.fakes.fake_github import FakeGitHub
from tests.reliability.support import Process, rows, service_env, start_worker, wait_until
from tests.reliability.trackers import GITHUB_REPO, github_keys_by_marker, queue_actions
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]
ACTIONS = 400
WORKERS = 4
TOKEN = "gh-budget-token-8c1f"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(tokens={TOKEN: "aftermath-bot"}) as fake:
        fake.add_repo(GITHUB_REPO, assignable={"alice"})
        yield fake


def _most_in_any_window(times: list[float], seconds: float) -> int:
    ordered, most, start = sorted(times), 0, 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_four_workers_file_400_github_actions_within_the_shared_write_budget(
    pg_url: str, tracker_mappings: Path, github: FakeGitHub, tmp_path: Path
) -> None:
    context = build_context(make_settings(pg_url, mappings=tracker_mappings))
    try:
        queue_actions(context, ACTIONS, GitHubTarget(repo=GITHUB_REPO))
    finally:
        context.engine.dispose()
    env = service_env(
        pg_url,
        AFTERMATH_WORKER="off",
        AFTERMATH_MAPPINGS=str(tracker_mappings),
        AFTERMATH_GITHUB_TOKEN=TOKEN,
        AFTERMATH_GITHUB_API_URL=github.url,
        AFTERMATH_REMINDER_INTERVAL="0",
    )
    workers: list[Process] = []
    started = time.monotonic()
    try:
        workers = [start_worker(tmp_path, env, f"worker-{n}") for n in range(WORKERS)]
        filed = lambda: int(rows(pg_url, "SELECT count(*) FROM action WHERE tracker_key IS NOT NULL")[0][0])  # noqa: E731
        assert wait_until(lambda: filed() == ACTIONS, timeout=900, interval=1.0), filed()
        took = time.monotonic() - started
    finally:
        for w in workers:
            w.stop()

    assert github.secondary_violations == 0, "a create was refused by the secondary limit"
    creates = github.create_times
    assert len(creates) == ACTIONS
    assert _most_in_any_window(creates, 60) <= 80 and _most_in_any_window(creates, 3600) <= 500
    markers = Counter(marker for marker, _ in github_keys_by_marker(github))
    assert len(markers) == ACTIONS and set(markers.values()) == {1}, "an action was filed twice"
    recorded = dict(rows(pg_url, "SELECT idempotency_key, tracker_key FROM action"))
    assert recorded == dict(github_keys_by_marker(github))
    # The floor GitHub's limits set: the first 80 at once, then 80 a minute.
    floor = 60 * ((ACTIONS - 1) // 80)
    print(f"\n{ACTIONS} GitHub actions by {WORKERS} workers: {took:.0f} s (floor {floor} s)")
    assert took >= floor
