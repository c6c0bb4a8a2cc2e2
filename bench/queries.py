"""Query benchmark on PostgreSQL: 100,000 actions and 1,000,000 ledger entries loaded with SQL, then p50/p95 of the
action list filters, one action with its ledger, and the metrics summary, through `aftermath serve`.

    .venv/bin/python bench/queries.py [--requests 200] [--explain]

--explain also runs each route once in-process, captures every SELECT it sends, and writes EXPLAIN (ANALYZE,
BUFFERS) of each to bench/results/, slowest first: the plans that say which index is missing.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from common import AFTERMATH, RESULTS, TOKEN, Database, Server, free_port, machine, measure, server_env

POSTMORTEMS, INCIDENTS, FINDINGS, ACTIONS, LEDGER, OWNERS = 20_000, 25_000, 50_000, 100_000, 1_000_000, 300

# Generated inside PostgreSQL (INSERT … SELECT FROM generate_series): a million rows in seconds. Every postmortem
# has 2-3 findings and 5 actions; each action answers its postmortem's first finding, half of them its second one
# too; each action has 10 ledger entries. Status mix: 5 % unfiled, 30 % open, 15 % in progress, 45 % done, 5 %
# won't do; closed actions were due in the last 180 days, and one open action in twenty is overdue (a team that
# keeps up: the list of overdue actions is short, which is the hard case for a query that pages by id).
LOAD = f"""
INSERT INTO postmortem (id, key, title, status, owner, summary, impact_start, impact_end, review_due, trigger, version,
                        created_at, updated_at, published_at, participants)
SELECT g, 'PM-' || g, 'Postmortem ' || g, (ARRAY['draft','in_review','published','closed'])[1 + g % 4],
       'owner' || (g % {OWNERS}), 'Summary of postmortem ' || g,
       CASE WHEN g % 3 = 0 THEN now() - (g % 365) * interval '1 day' END,
       CASE WHEN g % 3 = 0 THEN now() - (g % 365) * interval '1 day' + interval '2 hours' END,
       current_date - (g % 365) + 7, 'high-severity', 1,
       now() - (g % 365) * interval '1 day', now() - (g % 365) * interval '1 day',
       CASE WHEN g % 4 >= 2 THEN now() - (g % 365) * interval '1 day' + interval '3 days' END,
       ('[{{"who": "owner' || (g % {OWNERS}) || '@example.com", "role": "facilitator"}}]')::json
FROM generate_series(1, {POSTMORTEMS}) g;

INSERT INTO incident (id, source, external_id, title, service, team, severity, priority, urgency, status, triggered_at,
                      acknowledged_at, resolved_at, url, fingerprint, postmortem_id, created_at, updated_at)
SELECT g, 'pagerduty', 'Q' || g, 'Incident ' || g, 'svc-' || (g % 40), 'team-' || (g % 12),
       (ARRAY['sev1','sev2','sev3','sev4'])[1 + g % 4], 'P' || (1 + g % 4), 'high',
       CASE WHEN g % 50 = 0 THEN 'triggered' ELSE 'resolved' END,
       now() - (g % 365) * interval '1 day', now() - (g % 365) * interval '1 day' + (g % 30) * interval '1 minute',
       CASE WHEN g % 50 <> 0 THEN now() - (g % 365) * interval '1 day' + (g % 300) * interval '1 minute' END,
       'https://acme.pagerduty.com/incidents/Q' || g, md5('fp' || (g % 5000)),
       CASE WHEN g <= {POSTMORTEMS} THEN g END,
       now() - (g % 365) * interval '1 day', now() - (g % 365) * interval '1 day'
FROM generate_series(1, {INCIDENTS}) g;

INSERT INTO finding (id, postmortem_id, kind, statement, evidence, category, whys, created_at, updated_at)
SELECT g, 1 + (g - 1) % {POSTMORTEMS},
       (ARRAY['root_cause','contributing_factor','detection_gap','response_gap','process_gap'])[1 + g % 5],
       'Finding ' || g, 'Evidence for finding ' || g, 'cat-' || (g % 25), '[]'::json, now(), now()
FROM generate_series(1, {FINDINGS}) g;

INSERT INTO action (id, postmortem_id, title, description, kind, owner, due_date, priority, success_metric, target,
                    tracker_kind, tracker_key, tracker_url, tracker_status, tracker_state, status, filed_at, closed_at,
                    created_at, updated_at, warnings, owner_key)
SELECT g, 1 + (g - 1) % {POSTMORTEMS}, 'Action ' || g, 'Do the thing number ' || g,
       (ARRAY['technical','process','organizational','monitoring','test'])[1 + g % 5],
       'owner' || ((g * 7) % {OWNERS}),
       CASE WHEN s.st IN ('done', 'wont_do') OR g % 20 = 0 THEN current_date - (g * 37) % 180 - 1
            ELSE current_date + (g * 37) % 90 END,
       (ARRAY['low','medium','high'])[1 + g % 3],
       'metric ' || g, json_build_object('kind', 'jira', 'project', 'OPS', 'issue_type', 'Task'),
       CASE WHEN s.st = 'unfiled' THEN NULL ELSE 'jira' END, CASE WHEN s.st = 'unfiled' THEN NULL ELSE 'OPS-' || g END,
       CASE WHEN s.st = 'unfiled' THEN NULL ELSE 'https://acme.atlassian.net/browse/OPS-' || g END,
       CASE WHEN s.st = 'unfiled' THEN NULL ELSE initcap(replace(s.st, '_', ' ')) END, 'ok', s.st,
       CASE WHEN s.st <> 'unfiled' THEN now() - ((g * 37) % 270) * interval '1 day' END,
       CASE WHEN s.st IN ('done', 'wont_do') THEN now() - ((g * 13) % 120) * interval '1 day' END,
       now() - ((g * 37) % 270) * interval '1 day', now(), '[]'::json, 'owner' || ((g * 7) % {OWNERS})
FROM generate_series(1, {ACTIONS}) g,
     LATERAL (SELECT CASE WHEN (g * 7919) % 100 < 5 THEN 'unfiled' WHEN (g * 7919) % 100 < 35 THEN 'open'
                          WHEN (g * 7919) % 100 < 50 THEN 'in_progress' WHEN (g * 7919) % 100 < 95 THEN 'done'
                          ELSE 'wont_do' END AS st) s;

INSERT INTO action_finding (action_id, finding_id)
SELECT g, 1 + (g - 1) % {POSTMORTEMS} FROM generate_series(1, {ACTIONS}) g
UNION ALL
SELECT g, 1 + (g - 1) % {POSTMORTEMS} + {POSTMORTEMS} FROM generate_series(1, {ACTIONS}) g WHERE g % 2 = 0;

INSERT INTO ledger_entry (id, at, kind, action_id, postmortem_id, source, from_status, to_status, tracker_status,
                          details, prev_hash, hash)
SELECT g, now() - ({LEDGER} - g) * interval '20 seconds',
       (ARRAY['filed','status_changed','status_changed','reminded','due_date_changed'])[1 + (g / {ACTIONS}) % 5],
       1 + (g - 1) % {ACTIONS}, 1 + ((g - 1) % {ACTIONS}) % {POSTMORTEMS}, (ARRAY['poll','webhook','api'])[1 + g % 3],
       'open', 'in_progress', 'In Progress', json_build_object('n', g),
       md5((g - 1)::text) || md5('x' || (g - 1)), md5(g::text) || md5('x' || g)
FROM generate_series(1, {LEDGER}) g;

"""
TABLES = ["postmortem", "incident", "finding", "action", "action_finding", "ledger_entry"]


def load(db: Database) -> float:
    started = time.monotonic()
    with psycopg.connect(db.url.replace("+psycopg", ""), autocommit=True) as conn:
        for statement in LOAD.split(";\n\n"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[arg-type]
        for table in TABLES:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("ANALYZE")
    return time.monotonic() - started


def routes(rng: random.Random) -> dict[str, Any]:
    """Each route's name and a maker of the next path (ids and owners vary from request to request)."""
    return {
        "GET /api/v1/actions?status=open&overdue=true": lambda: "/api/v1/actions?status=open&overdue=true",
        "GET /api/v1/actions?owner=": lambda: f"/api/v1/actions?owner=owner{rng.randrange(OWNERS)}",
        "GET /api/v1/actions?finding_id=": lambda: f"/api/v1/actions?finding_id={rng.randrange(1, FINDINGS)}",
        "GET /api/v1/actions/{id}": lambda: f"/api/v1/actions/{rng.randrange(1, ACTIONS)}",
        "GET /api/v1/metrics/summary": lambda: "/api/v1/metrics/summary",
    }


def explain(url: str, paths: dict[str, str], out: Path) -> None:
    """Run each route once in-process, capture its SELECTs and EXPLAIN ANALYZE them, slowest first."""
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from app.api.main import create_app
    from app.context import build_context
    from app.settings import Settings

    settings = Settings(_env_file=None, database_url=url, api_tokens=[f"bench={TOKEN}"], worker="off")  # type: ignore[call-arg]
    context = build_context(settings)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(context.engine, "before_cursor_execute")
    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    report = []
    with TestClient(create_app(context, embedded_worker=False)) as client:
        for name, path in paths.items():
            captured.clear()
            client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
            plans = []
            with psycopg.connect(url.replace("+psycopg", "")) as conn:
                for statement, parameters in list(captured):
                    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
                    text = "\n".join(r[0] for r in rows)
                    ms = float(text.rsplit("Execution Time: ", 1)[1].split(" ms")[0])
                    plans.append((ms, statement, text))
            plans.sort(key=lambda p: -p[0])
            report.append(f"### {name}  ({path})\n")
            for ms, statement, text in plans:
                report.append(f"-- {ms:.2f} ms\n{statement}\n{text}\n")
    context.engine.dispose()
    out.write_text("\n".join(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per route (after 10 warm-up ones)")
    parser.add_argument("--explain", action="store_true", help="also write EXPLAIN ANALYZE of every query")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--reuse", metavar="NAME", help="measure a database kept by --keep instead of loading one")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="aftermath-qbench-") as tmp:
        db = Database("postgres", Path(tmp), reuse=args.reuse)
        try:
            env = server_env(db.url, AFTERMATH_WORKER="embedded")
            subprocess.run([AFTERMATH, "migrate"], env=env, check=True, cwd=tmp, capture_output=True)
            print(f"database {db.name}: {'reused' if args.reuse else 'loading'}", flush=True)
            seconds = 0.0 if args.reuse else load(db)
            counts = {t: db.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
            print(f"loaded in {seconds:.0f} s: {counts}", flush=True)
            port = free_port()
            server = Server(
                [AFTERMATH, "serve", "--port", str(port)], env, RESULTS / "server-queries.log", port, Path(tmp)
            )
            results = {}
            try:
                server.start()
                for name, make_path in routes(rng).items():
                    results[name] = measure(port, make_path, args.requests)
                    print(f"{name}: {results[name]}", flush=True)
            finally:
                server.stop()
            if args.explain:
                fixed = {name: make() for name, make in routes(random.Random(11)).items()}
                explain(db.url, fixed, RESULTS / f"queries-explain-{stamp}.txt")
                print(f"plans: {RESULTS / f'queries-explain-{stamp}.txt'}")
        finally:
            if not args.keep and not args.reuse:
                db.close()
    out = RESULTS / f"queries-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "rows": counts, "load_s": seconds, "routes": results}, indent=1))
    print(f"\n{table(results)}\n\nresults: {out}")


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| route | p50 | p95 | goal (p95) | rows per answer |", "|---|---|---|---|---|"]
    for name, r in results.items():
        goal = 100 if "summary" in name else 20
        met = "met" if r["p95_ms"] <= goal and set(r["statuses"]) == {"200"} else "missed"
        rows = r["mean_items"] if "?" in name else ""
        lines.append(f"| `{name}` | {r['p50_ms']} ms | {r['p95_ms']} ms | ≤ {goal} ms: {met} | {rows} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
