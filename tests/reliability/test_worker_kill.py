"""Four `aftermath worker` processes on PostgreSQL drain 1,000 filing jobs while one of them is killed with SIGKILL.

The killed worker dies holding a claim, its tracker request still in flight (the fake Jira creates the issue after
the worker is gone). No job is done twice (one create request per action, one issue each) and none is lost: the
dead worker's lease runs out, another worker takes the job, finds the issue by its key and records it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import actions
from app.api.main import create_app
from app.context import Context, build_context
from app.postmortems import Postmortem
from connectors.targets import JiraTarget
from tests.conftest import make_settings
from tests.fakes.fake_jira import FakeJira
from tests.reliability.support import Process, leaked, rows, service_env, start_worker, wait_until
from tests.reliability.trackers import JIRA_TARGET, jira_keys_by_label, open_postmortem
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]
JOBS = 1000
WORKERS = 4
LEASE_SECONDS = 5  # instead of 5 minutes: long enough for any one filing here, short enough to wait out
JIRA_TOKEN = "jira-token-reliability-0c9b"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(token=JIRA_TOKEN) as fake:
        yield fake


def _queue_actions(context: Context, count: int) -> None:
    """A postmortem with `count` actions, written as the API writes them (each with its durable filing job)."""
    with TestClient(create_app(context, embedded_worker=False)) as api:
        postmortem_ref, finding = open_postmortem(api)
    with context.write() as session:
        postmortem = session.get(Postmortem, postmortem_ref["id"])
        assert postmortem is not None
        for n in range(count):
            fields = {"title": f"Drain {n}", "owner": "alice@example.com", "due_date": date(2030, 1, 1) + timedelta(n)}
            target = JiraTarget.model_validate(JIRA_TARGET)
            actions.add(session, context.mappings, postmortem, fields, [finding["id"]], target, author="test")


def _job_counts(url: str, kind: str = "file_action") -> Counter[str]:
    found = rows(url, "SELECT status, count(*) FROM job WHERE kind = :kind GROUP BY status", kind=kind)
    return Counter({str(status): int(n) for status, n in found})


def _stuck_claim(url: str, older_than: float) -> tuple[int, str] | None:
    """(job id, worker id) of a job claimed more than `older_than` seconds ago and still running."""
    found = rows(
        url,
        "SELECT id, locked_by FROM job WHERE status = 'running' AND kind = 'file_action' "
        "AND locked_until < now() + make_interval(secs => :lease - :older) ORDER BY locked_until LIMIT 1",
        lease=LEASE_SECONDS,
        older=older_than,
    )
    return (int(found[0][0]), str(found[0][1])) if found else None


def test_four_workers_one_killed_no_job_twice_none_lost(
    pg_url: str, tracker_mappings: Path, jira: FakeJira, tmp_path: Path
) -> None:
    settings = make_settings(
        pg_url, mappings=tracker_mappings, jira_url=jira.url, jira_user=jira.user, jira_token=JIRA_TOKEN
    )
    context = build_context(settings)
    try:
        _queue_actions(context, JOBS)
    finally:
        context.engine.dispose()
    env = service_env(
        pg_url,
        AFTERMATH_WORKER="off",
        AFTERMATH_MAPPINGS=str(tracker_mappings),
        AFTERMATH_JIRA_URL=jira.url,
        AFTERMATH_JIRA_USER=jira.user,
        AFTERMATH_JIRA_TOKEN=JIRA_TOKEN,
        AFTERMATH_REMINDER_INTERVAL="0",
    )
    workers: list[Process] = []
    try:
        for n in range(WORKERS):
            workers.append(start_worker(tmp_path, env, f"worker-{n}", "--lease-seconds", str(LEASE_SECONDS)))
        assert wait_until(lambda: _job_counts(pg_url)["done"] >= JOBS // 5, timeout=60), _job_counts(pg_url)

        # Hold the next create (or backlink) request: the worker that sent it sits in its claim until it is killed.
        # Jira still carries the request out, after the worker is gone but before its lease ends: the issue exists
        # and nobody recorded it. (A request that outlives the lease is another matter: the lease must outlast
        # the tracker client's timeout.)
        jira.delay_next(LEASE_SECONDS - 2.0, path_contains="/rest/api/2/issue")
        assert wait_until(lambda: _stuck_claim(pg_url, 1.0) is not None, timeout=20)
        stuck = _stuck_claim(pg_url, 1.0)
        assert stuck is not None
        job_id, worker_id = stuck
        pid = int(worker_id.split(":")[1])
        victim = next(w for w in workers if w.pid == pid)
        victim.kill9()
        assert not victim.alive()

        assert wait_until(lambda: _job_counts(pg_url)["done"] == JOBS, timeout=60), _job_counts(pg_url)
        assert wait_until(lambda: set(_job_counts(pg_url, "update_issue")) <= {"done"}, timeout=20)
        assert all(w.alive() for w in workers if w is not victim), "the other workers kept running"
    finally:
        for w in workers:
            w.stop()

    assert _job_counts(pg_url) == {"done": JOBS}
    taken_over = rows(pg_url, "SELECT attempts, last_error FROM job WHERE id = :id", id=job_id)
    assert taken_over[0][0] == 2, taken_over
    attempts = Counter(int(r[0]) for r in rows(pg_url, "SELECT attempts FROM job WHERE kind = 'file_action'"))
    assert attempts == {1: JOBS - 1, 2: 1}, attempts
    # The one found again by its key may have been cut off before its backlink: it got a repair job, done too.
    assert sum(_job_counts(pg_url, "update_issue").values()) <= 1 and set(_job_counts(pg_url, "update_issue")) <= {
        "done"
    }

    # Done once each: one create request per action, one issue per action, each recorded on its own action.
    creates = [r for r in jira.requests if r.method == "POST" and r.path.rstrip("/").endswith("/rest/api/2/issue")]
    assert len(creates) == JOBS
    labels = Counter(label for label, _ in jira_keys_by_label(jira))
    assert len(jira.issues) == JOBS and set(labels.values()) == {1}
    assert all(len(issue.remote_links) == 1 for issue in jira.issues.values()), "every issue has its backlink"
    recorded = dict(rows(pg_url, "SELECT idempotency_key, tracker_key FROM action"))
    assert recorded == dict(jira_keys_by_label(jira))
    filed = rows(pg_url, "SELECT action_id, count(*) FROM ledger_entry WHERE kind = 'filed' GROUP BY action_id")
    assert len(filed) == JOBS and {int(n) for _, n in filed} == {1}
    assert not leaked([JIRA_TOKEN], *(w.output() for w in workers))
