"""Ingest benchmark: signed PagerDuty v3 deliveries against `aftermath serve` (embedded worker on) and against a bare
202 route served the same way; closed-loop ceiling with wrk, then open-loop latency at half the durable ceiling.

    .venv/bin/python bench/ingest.py --db sqlite --workers 1 [--duration 15] [--rate R] [--profile]
    .venv/bin/python bench/ingest.py --all        # sqlite/postgres x 1/2 processes, about 8 minutes
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import events
from common import AFTERMATH, PYTHON, RESULTS, ROOT, Database, Server, free_port, machine, server_env

BENCH = ROOT / "bench"
CONNECTIONS, WRK_THREADS = 64, 2


def wrk(port: int, duration: float, prefix: Path) -> dict[str, Any]:
    """Closed loop: 64 connections, each sends its next delivery as soon as the previous one is answered."""
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{int(duration)}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "signed.lua"),
        f"http://127.0.0.1:{port}/webhooks/pagerduty",
        "--",
        str(prefix),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    match = re.search(r"^BENCH_JSON (.*)$", out, re.M)
    assert match, out
    result: dict[str, Any] = json.loads(match.group(1))
    seconds = result["duration_us"] / 1e6
    result.update(
        {
            "rps": round(result["completed"] / seconds, 1),
            "p50_ms": round(result["p50_us"] / 1000, 2),
            "p99_ms": round(result["p99_us"] / 1000, 2),
            "non_2xx": result["non_2xx"] + result["timeouts"] + result["read_errors"] + result["connect_errors"],
        }
    )
    return result


def open_loop(port: int, rate: float, duration: float, events_file: Path, out: Path) -> dict[str, Any]:
    command = [
        PYTHON,
        str(BENCH / "loadgen.py"),
        "--port",
        str(port),
        "--rate",
        f"{rate:.0f}",
        "--duration",
        str(duration),
        "--connections",
        str(CONNECTIONS),
        "--events",
        str(events_file),
        "--out",
        str(out),
    ]
    subprocess.run(command, timeout=duration + 90, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def drain(db: Database, timeout: float) -> dict[str, Any]:
    """Wait until the embedded worker has applied every stored event (or the timeout passes); its pace."""
    pending_sql = "SELECT count(*) FROM inbound_event WHERE processed_at IS NULL"
    started, before = time.monotonic(), db.query(pending_sql)[0][0]
    while True:
        pending = db.query(pending_sql)[0][0]
        elapsed = time.monotonic() - started
        if pending == 0 or elapsed > timeout:
            rate = (before - pending) / elapsed if elapsed > 0 else 0.0
            return {
                "pending_at_end_of_load": before,
                "pending": pending,
                "drain_s": round(elapsed, 1),
                "applied_per_s": round(rate, 1),
            }
        time.sleep(0.5)


def profile(pids: list[int], seconds: float, out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on every server process for one run (collapsed stacks per thread, for flamegraph.pl or reading)."""
    spy = str(ROOT / ".venv" / "bin" / "py-spy")
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "200",
                "--format",
                "raw",
                "--threads",
                "--output",
                str(out.with_suffix(f".{pid}.txt")),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def durable(kind: str, workers: int, args: argparse.Namespace, work: Path, tag: str) -> dict[str, Any]:
    home = work / tag
    home.mkdir()
    db = Database(kind, home)
    port = free_port()
    command = [AFTERMATH, "serve", "--port", str(port), "--workers", str(workers)]
    server = Server(
        command, server_env(db.url, AFTERMATH_WORKER=args.worker), RESULTS / f"server-{tag}.log", port, home
    )
    try:
        server.start()
        pids = server.pids()  # the server, its uvicorn worker processes, and the embedded worker process
        spies = profile(pids, args.duration, RESULTS / f"profile-{tag}-closed") if args.profile == "closed" else []
        closed = wrk(port, args.duration, work / "closed")
        for spy in spies:
            spy.wait(timeout=60)
        # No pause for the backlog: the open-loop run meets the worker still applying the closed-loop burst.
        rate = args.rate or closed["rps"] / 2
        spies = profile(pids, args.open_duration, RESULTS / f"profile-{tag}-open") if args.profile == "open" else []
        opened = open_loop(port, rate, args.open_duration, work / "open", work / "open.json")
        for spy in spies:
            spy.wait(timeout=60)
        rss = server.peak_rss_mb()
        drained = drain(db, args.drain_timeout if args.worker == "embedded" else 0)
        rss = server.peak_rss_mb()
        rows, distinct = db.query("SELECT count(*), count(DISTINCT source || ':' || external_id) FROM inbound_event")[0]
        stored = {eid for (eid,) in db.query("SELECT external_id FROM inbound_event WHERE external_id LIKE 'O%'")}
        closed_rows = db.query("SELECT count(*) FROM inbound_event WHERE external_id NOT LIKE 'O%'")[0][0]
        failed = db.query("SELECT count(*) FROM inbound_event WHERE status = 'failed'")[0][0]
        incidents, postmortems = (db.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("incident", "postmortem"))
    finally:
        server.stop()
        db.close()
    accepted = opened.pop("accepted_ids")
    checks = {
        # wrk counts answered requests; requests cut off by the end of the run may be stored unanswered.
        "closed_answered_all_stored": closed["completed"] - closed["non_2xx"] <= closed_rows <= closed["sent"],
        "closed_no_wrap": closed["wraps"] == 0,
        "open_accepted_all_stored": set(accepted) <= stored and len(accepted) == len(set(accepted)),
        "open_accepted": len(accepted),
        "open_rows": len(stored),
        "closed_rows": closed_rows,
        "each_event_stored_once": rows == distinct,
        "inbox_drained": drained["pending"] == 0,
        "failed_events": failed,
        "incidents": incidents,
        "postmortems": postmortems,
    }
    return {
        "closed": closed,
        "open": opened,
        "rss_mb": rss,
        "drain": drained,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        "checks": checks,
    }


def bare(workers: int, rate: float, args: argparse.Namespace, work: Path, tag: str) -> dict[str, Any]:
    port = free_port()
    command = [PYTHON, str(BENCH / "bare_app.py"), "--port", str(port), "--workers", str(workers)]
    server = Server(command, server_env("sqlite://"), RESULTS / f"bare-{tag}.log", port, work)
    try:
        server.start()
        closed = wrk(port, args.duration, work / "closed")
        opened = open_loop(port, rate, args.open_duration, work / "open", work / "bare-open.json")
        opened.pop("accepted_ids")
        rss = server.peak_rss_mb()
    finally:
        server.stop()
    return {"closed": closed, "open": opened, "rss_mb": rss}


def prepare(work: Path, args: argparse.Namespace) -> None:
    """Enough distinct deliveries that no closed-loop run wraps around (7,000/s per run is well past the ceiling)."""
    per_thread = int(7000 * args.duration / WRK_THREADS) + 1
    for thread, prefix in enumerate("AB"[:WRK_THREADS]):
        events.write(work / f"closed.{thread}", events.generate(per_thread, prefix))
    events.write(work / "open", events.generate(int(6000 * args.open_duration), "O"))


def run_one(kind: str, workers: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    tag = f"{kind}-{workers}p"
    print(f"== {tag}: durable", flush=True)
    result = durable(kind, workers, args, work, tag)
    print(f"== {tag}: bare", flush=True)
    result["bare"] = bare(workers, result["open"]["rate"], args, work, tag)
    result.update(
        {"db": kind, "workers": workers, "ratio": round(result["closed"]["rps"] / result["bare"]["closed"]["rps"], 3)}
    )
    print(json.dumps({k: result[k] for k in ("closed", "open", "checks", "rss_mb", "drain")}, indent=1), flush=True)
    return result


def _drained(d: dict[str, Any]) -> str:
    done = f"in {d['drain_s']:.0f} s" if d["pending"] == 0 else f"{d['pending']:,} left after {d['drain_s']:.0f} s"
    return f"{d['pending_at_end_of_load']:,} events: {done} ({d['applied_per_s']:,.0f}/s)"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| database | processes | bare events/s | durable events/s | ratio | goal | durable p50 / p99 (closed) "
        "| open-loop rate | durable p50 / p99 (open) | bare p50 / p99 (open) | non-2xx | peak RSS / process "
        "| inbox backlog after the load: drained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, o, b = r["closed"], r["open"], r["bare"]
        goal = 0.40 if r["db"] == "postgres" else 0.25
        ok = r["ratio"] >= goal and (o["p99_ms"] or 1e9) <= 25 and c["non_2xx"] + o["non_2xx"] == 0
        rss = max(v for k, v in r["rss_mb"].items() if k != "main" or r["workers"] == 1)
        lines.append(
            f"| {r['db']} | {r['workers']} | {b['closed']['rps']:,.0f} | {c['rps']:,.0f} | {r['ratio']:.0%} "
            f"| {goal:.0%}: {'met' if ok else 'missed'} | {c['p50_ms']:.1f} / {c['p99_ms']:.1f} ms "
            f"| {o['rate']:,.0f}/s | {o['p50_ms']} / {o['p99_ms']} ms "
            f"| {b['open']['p50_ms']} / {b['open']['p99_ms']} ms "
            f"| {c['non_2xx'] + o['non_2xx']} | {rss:.0f} MiB | {_drained(r['drain'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--all", action="store_true", help="sqlite and postgres, 1 and 2 processes")
    parser.add_argument("--duration", type=float, default=12.0, help="closed-loop seconds")
    parser.add_argument("--open-duration", type=float, default=10.0, help="open-loop seconds")
    parser.add_argument("--rate", type=float, default=0.0, help="open-loop rate (default: half the durable ceiling)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the inbox to drain")
    parser.add_argument("--worker", choices=["embedded", "off"], default="embedded", help="off: diagnosis only")
    parser.add_argument("--profile", choices=["closed", "open"], help="py-spy the server during that run")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    RESULTS.mkdir(parents=True, exist_ok=True)
    matrix = [(d, w) for d in ("sqlite", "postgres") for w in (1, 2)] if args.all else [(args.db, args.workers)]
    results: list[dict[str, Any]] = []
    out = RESULTS / f"ingest-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with tempfile.TemporaryDirectory(prefix="aftermath-bench-") as tmp:
        work = Path(tmp)
        prepare(work, args)
        for kind, workers in matrix:
            results.append(run_one(kind, workers, args, work))
            out.write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=1))
    print(f"\n{table(results)}\n\nresults: {out}")


if __name__ == "__main__":
    main()
