"""Page benchmark on PostgreSQL: bench/queries.py's data (100,000 actions, 25,000 incidents, 20,000 postmortems,
1,000,000 ledger entries), then p50/p95 of `/`, `/actions` (default, filtered, sorted, a later page) and `/insights`
through `aftermath serve`, next to a bare GET route (bench/bare_app.py) measured in the same run.

    .venv/bin/python bench/pages.py [--requests 200] [--keep | --reuse NAME]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import AFTERMATH, RESULTS, Database, Server, free_port, machine, measure, server_env
from queries import OWNERS, TABLES, load

# The goals (p95): the overview and the list 100 ms, the charts 300 ms; the list's own goal here is 50 ms.
GOALS = {"/": 100, "/actions": 50, "/insights": 300}


def routes(rng: random.Random) -> dict[str, Any]:
    return {
        "GET /": lambda: "/",
        "GET /actions": lambda: "/actions",
        "GET /actions?overdue=true&sort=owner": lambda: "/actions?overdue=true&sort=owner",
        "GET /actions?team=&status=open": lambda: f"/actions?team=team-{rng.randrange(12)}&status=open",
        "GET /actions?owner=&sort=due_date&order=desc": lambda: (
            f"/actions?owner=owner{rng.randrange(OWNERS)}&sort=due_date&order=desc"
        ),
        "GET /actions?page=20": lambda: "/actions?page=20",
        "GET /insights": lambda: "/insights",
        "GET /insights?team=": lambda: f"/insights?team=team-{rng.randrange(12)}",
    }


def goal(name: str) -> int:
    path = name.split()[1].split("?")[0]
    return GOALS[path]


def table(results: dict[str, dict[str, Any]], bare: dict[str, Any]) -> str:
    lines = ["| route | p50 | p95 | goal (p95) |", "|---|---|---|---|"]
    lines.append(f"| bare `GET /bare-page` (ceiling) | {bare['p50_ms']} ms | {bare['p95_ms']} ms | |")
    for name, r in results.items():
        met = "met" if r["p95_ms"] <= goal(name) and set(r["statuses"]) == {"200"} else "missed"
        lines.append(f"| `{name}` | {r['p50_ms']} ms | {r['p95_ms']} ms | ≤ {goal(name)} ms: {met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per route (after 10 warm-up ones)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    parser.add_argument("--reuse", metavar="NAME", help="measure a database kept by --keep instead of loading one")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="aftermath-pbench-") as tmp:
        db = Database("postgres", Path(tmp), reuse=args.reuse)
        try:
            # The worker is off: the pages are measured alone, not next to a sweep filing 100,000 actions.
            env = server_env(db.url, AFTERMATH_WORKER="off")
            subprocess.run([AFTERMATH, "migrate"], env=env, check=True, cwd=tmp, capture_output=True)
            print(f"database {db.name}: {'reused' if args.reuse else 'loading'}", flush=True)
            seconds = 0.0 if args.reuse else load(db)
            counts = {t: db.query(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
            print(f"loaded in {seconds:.0f} s: {counts}", flush=True)
            bare_port = free_port()
            bare_server = Server(
                [sys.executable, str(Path(__file__).parent / "bare_app.py"), "--port", str(bare_port)],
                env,
                RESULTS / "server-bare-pages.log",
                bare_port,
                Path(tmp),
            )
            try:
                bare_server.start()
                bare = measure(bare_port, lambda: "/bare-page", args.requests)
            finally:
                bare_server.stop()
            print(f"bare: {bare}", flush=True)
            port = free_port()
            server = Server(
                [AFTERMATH, "serve", "--port", str(port)], env, RESULTS / "server-pages.log", port, Path(tmp)
            )
            results = {}
            try:
                server.start()
                for name, make_path in routes(rng).items():
                    results[name] = measure(port, make_path, args.requests)
                    print(f"{name}: {results[name]}", flush=True)
            finally:
                server.stop()
        finally:
            if args.keep and not args.reuse:
                print(f"kept database {db.name}")
            if not args.keep and not args.reuse:
                db.close()
    out = RESULTS / f"pages-{stamp}.json"
    report = {"machine": machine(), "rows": counts, "load_s": seconds, "bare": bare, "routes": results}
    out.write_text(json.dumps(report, indent=1))
    print(f"\n{table(results, bare)}\n\nresults: {out}")


if __name__ == "__main__":
    main()
