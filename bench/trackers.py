"""Tracker benchmarks (the issue's "Measure" section), against the stateful fakes on 127.0.0.1 over real HTTP.

    poll  — requests per `tracking.poll_all` cycle for N open actions on Jira and GitHub (cold, steady, 1 % changed)
            against the floor ⌈N/100⌉, and the GitHub rate-limit points of each cycle (goal for "unchanged": 0).
    file  — N GitHub actions filed by the real worker (`Worker.run_job()` loop, one worker) against the fake's
            secondary limit of 80 content-creating requests per minute on its real clock: wall time against the
            floor N/80 min, limit violations (goal 0), issues created (exactly N, no duplicates).

Run from the repository root, e.g. `.venv/bin/python -m bench.trackers poll` or `... file --actions 50`.
Results go to bench/results/trackers-*.json; Markdown tables are printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `python bench/trackers.py` works as well as `python -m bench.trackers`

from sqlalchemy import func  # noqa: E402
from sqlmodel import select  # noqa: E402

from app import actions, findings, migrations, tracking  # noqa: E402
from app.actions import Action  # noqa: E402
from app.context import Context, build_context  # noqa: E402
from app.db import utcnow  # noqa: E402
from app.jobs import Job  # noqa: E402
from app.postmortems import Postmortem  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.vocabulary import TrackerState  # noqa: E402
from app.worker import Worker  # noqa: E402
from connectors.github_tracker import MARKER, GitHubTracker  # noqa: E402
from connectors.targets import GitHubTarget, JiraTarget, Target, TrackerKind  # noqa: E402
from tests.fakes.fake_github import FakeGitHub  # noqa: E402
from tests.fakes.fake_jira import FakeJira  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("AFTERMATH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
GH_TOKEN, GH_LOGIN, GH_REPO = "bench-token", "aftermath-bot", "acme/big"
JIRA_TARGET = JiraTarget(project="OPS", issue_type="Task")
GH_TARGET = GitHubTarget(repo=GH_REPO)
PAGE = 100  # Jira search/jql batch and GitHub per_page: the floor is ⌈N/100⌉ requests per cycle
MARKED = re.compile(re.escape(MARKER).replace(re.escape("{key}"), "(\\S+)"))
SEED_SPACING = 600.0  # seeded GitHub issues were last updated 10 min apart (not all within the poll overlap)


# ---- wiring ---------------------------------------------------------------------------------------------------------
@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file in `workdir`, or a scratch PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        migrations.upgrade(url)
        yield url
        return
    import psycopg

    name = f"aftermath_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_context(url: str, **trackers: Any) -> Context:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        public_url="http://aftermath.bench",
        mappings=ROOT / "mappings",
        worker="off",
        poll_interval=3600,
        **trackers,
    )
    return build_context(settings)


def new_postmortem(context: Context) -> int:
    with context.write() as session:
        pm = Postmortem(key=f"PM-B{uuid.uuid4().hex[:6].upper()}", title="Benchmark postmortem", trigger="manual")
        session.add(pm)
        session.flush()
        assert pm.id is not None
        return pm.id


def seed_filed_actions(context: Context, target: Target, refs: list[tuple[str, str]]) -> None:
    """Already-filed, open actions (as the worker leaves them), straight into the database."""
    pm_id, now = new_postmortem(context), utcnow()
    for start in range(0, len(refs), 2000):
        with context.write() as session:
            session.add_all(
                Action(
                    postmortem_id=pm_id,
                    title=f"Benchmark action {start + i}",
                    target=target,
                    tracker_kind=TrackerKind(target.kind),
                    tracker_key=key,
                    tracker_url=url,
                    status="open",
                    filed_at=now,
                )
                for i, (key, url) in enumerate(refs[start : start + 2000])
            )


def count_missing(context: Context) -> int:
    with context.read() as session:
        query = select(func.count()).select_from(Action).where(Action.tracker_state == TrackerState.MISSING)
        return int(session.exec(query).one())


def count_status(context: Context, status: str) -> int:
    with context.read() as session:
        return int(session.exec(select(func.count()).select_from(Action).where(Action.status == status)).one())


# ---- poll benchmark -------------------------------------------------------------------------------------------------
def run_cycle(
    context: Context, log: Callable[[], list[Any]], points: Callable[[], int] | None, audit: bool = False
) -> dict[str, Any]:
    """One `poll_all` cycle (with the audit for deleted issues when `audit`); what it sent, per the fake's log."""
    before, left = len(log()), points() if points else None
    started = time.perf_counter()
    changed = tracking.poll_all(context, audit=audit)
    seconds = time.perf_counter() - started
    sent = log()[before:]
    endpoints = Counter(f"{r.method} {r.path}" + (f" → {r.status}" if getattr(r, "status", 0) else "") for r in sent)
    out: dict[str, Any] = {"requests": len(sent), "endpoints": dict(endpoints), "seconds": round(seconds, 2)}
    out["actions_updated"] = changed  # poll_all's count: actions whose stored tracker state changed
    if points:
        assert left is not None
        out["points"] = left - points()
    return out


def bench_poll_jira(db: str, n: int, changed_share: float, workdir: Path) -> dict[str, Any]:
    with FakeJira() as fake, database(db, workdir) as url:
        keys = [fake.add_issue("OPS", summary=f"Benchmark action {i}") for i in range(n)]
        context = make_context(url, jira_url=fake.url, jira_user=fake.user, jira_token=fake.token)
        try:
            seed_filed_actions(context, JIRA_TARGET, [(k, f"{fake.url}/browse/{k}") for k in keys])

            def log() -> list[Any]:
                return fake.requests

            cold = run_cycle(context, log, None)
            steady = run_cycle(context, log, None)
            moved = keys[:: max(1, round(1 / changed_share))]
            for key in moved:
                fake.set_status(key, "Done", "done", "Done")
            some = run_cycle(context, log, None)
            some["issues_changed"], some["recorded_done"] = len(moved), count_status(context, "done")
        finally:
            context.engine.dispose()
    return {
        "tracker": "jira",
        "db": db,
        "n": n,
        "floor": math.ceil(n / PAGE),
        "cold": cold,
        "steady": steady,
        "changed": some,
    }


def bench_poll_github(db: str, n: int, changed_share: float, workdir: Path) -> dict[str, Any]:
    with FakeGitHub(tokens={GH_TOKEN: GH_LOGIN}) as fake, database(db, workdir) as url:
        fake.add_repo(GH_REPO)
        numbers = [fake.add_issue(GH_REPO, f"Benchmark action {i}", creator=GH_LOGIN) for i in range(n)]
        # Filed over the past days, not all in the last second: otherwise every issue would sit inside the
        # connector's 60 s overlap window and a "1 % changed" poll would page through the whole repository.
        oldest = fake.now() - SEED_SPACING * (n + 1)
        for i, number in enumerate(numbers):
            issue = fake.issue(GH_REPO, number)
            issue.created_at = issue.updated_at = oldest + SEED_SPACING * i
        context = make_context(url, github_token=GH_TOKEN, github_api_url=fake.url)
        try:
            refs = [(f"{GH_REPO}#{k}", f"{fake.url}/{GH_REPO}/issues/{k}") for k in numbers]
            seed_filed_actions(context, GH_TARGET, refs)

            def log() -> list[Any]:
                return fake.requests

            def points() -> int:
                return fake.core_remaining

            cold = run_cycle(context, log, points)
            steady = run_cycle(context, log, points)
            moved = numbers[:: max(1, round(1 / changed_share))]
            for number in moved:
                fake.close_issue(GH_REPO, number, reason="completed")
            some = run_cycle(context, log, points)
            some["issues_changed"], some["recorded_done"] = len(moved), count_status(context, "done")
            again = run_cycle(context, log, points)
            for number in numbers[: max(1, n // 100)]:
                fake.delete_issue(GH_REPO, number)
            audit = run_cycle(context, log, points, audit=True)  # every sixth poll: what the listing cannot see
            audit["found_missing"] = count_missing(context)
        finally:
            context.engine.dispose()
    return {
        "tracker": "github",
        "db": db,
        "n": n,
        "floor": math.ceil(n / PAGE),
        "cold": cold,
        "steady": steady,
        "changed": some,
        "steady_after_change": again,
        "audit": audit,
    }


def poll_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| tracker | DB | N open actions | floor ⌈N/100⌉ | cold cycle | unchanged cycle | 1 % changed | "
        "GitHub points: cold / unchanged / 1 % | wall s: cold / unchanged / 1 % |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        c, s, x = r["cold"], r["steady"], r["changed"]
        pts = f"{c['points']} / {s['points']} / {x['points']}" if "points" in c else "n/a (Jira: no conditional GET)"
        lines.append(
            f"| {r['tracker']} | {r['db']} | {r['n']:,} | {r['floor']} | {c['requests']} | {s['requests']} | "
            f"{x['requests']} | {pts} | {c['seconds']} / {s['seconds']} / {x['seconds']} |"
        )
    lines += ["", "Requests by endpoint (→ status where the fake records it):", ""]
    for r in rows:
        for name in ("cold", "steady", "changed", "steady_after_change", "audit"):
            if name not in r:
                continue
            parts = ", ".join(f"`{k}` x{v}" for k, v in r[name]["endpoints"].items()) or "none"
            lines.append(f"- {r['tracker']}/{r['db']}/N={r['n']:,} {name}: {parts}")
        x = r["changed"]
        lines.append(
            f"- {r['tracker']}/{r['db']}/N={r['n']:,} 1 % cycle saw {x['issues_changed']} changed issues; "
            f"actions now done: {x['recorded_done']}"
        )
    return "\n".join(lines)


def cmd_poll(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="aftermath-bench-") as tmp:
        for db in args.db:
            for tracker in args.tracker:
                for n in args.n:
                    print(f"poll: {tracker} on {db}, N={n:,} …", file=sys.stderr, flush=True)
                    bench = bench_poll_jira if tracker == "jira" else bench_poll_github
                    rows.append(bench(db, n, args.changed, Path(tmp)))
    write_result("trackers-poll.json", {"benchmark": "poll", "rows": rows})
    print(poll_table(rows))
    return rows


# ---- filing benchmark -----------------------------------------------------------------------------------------------
def max_in_window(times: list[float], window: float = 60.0) -> int:
    """The most creates in any rolling `window` seconds (the fake refuses the 81st in (t-60, t])."""
    ordered, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def bench_file(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.actions
    with FakeGitHub(tokens={GH_TOKEN: GH_LOGIN}, creates_per_minute=args.creates_per_minute) as fake:
        fake.add_repo(GH_REPO)
        with database(args.db, workdir) as url:
            context = make_context(url, github_token=GH_TOKEN, github_api_url=fake.url)
            try:
                if args.seconds_between_writes is not None:
                    context.trackers["github"] = GitHubTracker(
                        GH_TOKEN, fake.url, seconds_between_writes=args.seconds_between_writes
                    )
                tracker = context.tracker("github")
                assert isinstance(tracker, GitHubTracker)
                pacing = tracker._gh.requester._Requester__seconds_between_writes  # type: ignore[attr-defined]
                pm_id = new_postmortem(context)
                with context.write() as session:
                    pm = session.get(Postmortem, pm_id)
                    assert pm is not None
                    finding = findings.add(
                        session,
                        pm,
                        {"kind": "contributing_factor", "statement": "Logs were never rotated"},
                        author="bench",
                    )
                    for i in range(n):
                        fields = {"title": f"Benchmark action {i}", "description": "Rotate logs", "priority": "high"}
                        actions.add(session, context.mappings, pm, fields, [finding.id], GH_TARGET, author="bench")
                worker, claimed = Worker(context, name="bench"), 0
                print(
                    f"file: {n} actions, {pacing} s between writes, limit {args.creates_per_minute}/min …",
                    file=sys.stderr,
                    flush=True,
                )
                started = time.perf_counter()
                while True:
                    if worker.run_job():
                        claimed += 1
                        if claimed % 50 == 0:
                            print(
                                f"  {claimed} jobs run, {time.perf_counter() - started:.0f} s",
                                file=sys.stderr,
                                flush=True,
                            )
                        continue
                    with context.read() as session:
                        left = session.exec(
                            select(func.count()).select_from(Job).where(Job.status.in_(("pending", "running")))
                        ).one()
                    if not left:
                        break
                    time.sleep(0.2)  # a job waits out a Retry-After: the loop idles like the real worker
                wall = time.perf_counter() - started
                with context.read() as session:
                    job_states = Counter(session.exec(select(Job.status)).all())
                    filed = session.exec(
                        select(func.count()).select_from(Action).where(Action.tracker_key.is_not(None))
                    ).one()
                    attempts = session.exec(select(func.sum(Job.attempts))).one()
            finally:
                context.engine.dispose()
        issues = fake.issues(GH_REPO)
        markers = Counter(m[1] if (m := MARKED.search(x.body or "")) else None for x in issues)
        posts = [r for r in fake.requests if r.method == "POST"]
        create_times = list(fake._creates)
    floor = n * 60.0 / args.creates_per_minute
    span = (max(create_times) - min(create_times)) if len(create_times) > 1 else 0.0
    return {
        "benchmark": "file",
        "actions": n,
        "db": args.db,
        "creates_per_minute_limit": args.creates_per_minute,
        "seconds_between_writes": pacing,
        "wall_seconds": round(wall, 1),
        "floor_seconds": round(floor, 1),
        "wall_over_floor": round(wall / floor, 3) if floor else None,
        "first_to_last_create_seconds": round(span, 1),
        "creates_per_minute_achieved": round((len(create_times) - 1) * 60 / span, 1) if span else None,
        "max_creates_in_any_60s": max_in_window(create_times),
        "secondary_violations": fake.secondary_violations,
        "post_statuses": dict(Counter(str(r.status) for r in posts)),
        "get_requests": sum(1 for r in fake.requests if r.method == "GET"),
        "issues_created": len(issues),
        "distinct_markers": len([k for k in markers if k]),
        "duplicate_issues": sum(c - 1 for k, c in markers.items() if k and c > 1),
        "actions_filed": filed,
        "job_attempts": attempts,
        "jobs": dict(job_states),
        "core_points_used": fake.core.limit - fake.core_remaining,
    }


def file_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| actions | s between writes | wall s | floor s (N/80 min) | wall/floor | violations | issues created | "
        "duplicates | max creates in 60 s | creates/min achieved | job attempts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['actions']} | {r['seconds_between_writes']} | {r['wall_seconds']} | {r['floor_seconds']} | "
            f"{r['wall_over_floor']} | {r['secondary_violations']} | {r['issues_created']} | {r['duplicate_issues']} | "
            f"{r['max_creates_in_any_60s']} | {r['creates_per_minute_achieved']} | {r['job_attempts']} |"
        )
    return "\n".join(lines)


def cmd_file(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aftermath-bench-") as tmp:
        row = bench_file(args, Path(tmp))
    name = args.label or f"{row['actions']}-{row['seconds_between_writes']}s"
    write_result(f"trackers-file-{name}.json", row)
    print(file_table([row]))
    return row


def cmd_table(args: argparse.Namespace) -> None:
    """Re-print the Markdown tables from the stored results."""
    poll = RESULTS / "trackers-poll.json"
    if poll.exists():
        print(poll_table(json.loads(poll.read_text())["rows"]), end="\n\n")
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("trackers-file-*.json"))]
    if rows:
        print(file_table(sorted(rows, key=lambda r: (r["actions"], r["seconds_between_writes"]))))


def write_result(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **data}
    (RESULTS / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS / name}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trackers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    poll = sub.add_parser("poll", help="requests and rate-limit points per poll cycle")
    poll.add_argument("--n", type=int, nargs="+", default=[1000, 10000], help="open filed actions (default 1000 10000)")
    poll.add_argument("--tracker", nargs="+", choices=["jira", "github"], default=["jira", "github"])
    poll.add_argument(
        "--db",
        nargs="+",
        choices=["sqlite", "postgres"],
        default=["sqlite"],
        help=f"postgres uses a scratch database on $AFTERMATH_BENCH_PG (default {PG_ADMIN})",
    )
    poll.add_argument("--changed", type=float, default=0.01, help="share of issues changed before cycle 3")
    file = sub.add_parser("file", help="file N GitHub actions through the worker under the secondary limit")
    file.add_argument("--actions", type=int, default=500)
    file.add_argument(
        "--seconds-between-writes",
        type=float,
        default=None,
        help="override the client's write pacing (default: what app.context.build_tracker ships)",
    )
    file.add_argument("--creates-per-minute", type=int, default=80, help="the fake's secondary content limit")
    file.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    file.add_argument("--label", help="results file suffix (default: <actions>-<pacing>s)")
    sub.add_parser("table", help="print the Markdown tables from bench/results/trackers-*.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    {"poll": cmd_poll, "file": cmd_file, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
