"""Apply benchmark: how soon what was ingested shows in its incident, through `aftermath serve` as it ships.

    .venv/bin/python bench/apply.py [--db sqlite postgres] [--cases many one steady] [--events 1000]
                                    [--rate 50] [--duration 30] [--clients 8]

- many:   N `incident.triggered` events for N new incidents, posted by 8 client threads as fast as they are answered;
- one:    one trigger and N-1 notes on that one incident, posted the same way (arrival order is roughly, not exactly,
          event-time order: 8 threads take events off one queue);
- steady: events at a fixed rate (one new incident per 10 events, the rest notes and acknowledgements on the open
          ones), each measured from its 202 until its timeline entry is visible to a reader of the database.

For the backlog cases, "drain" is the time from the last 202 until every event is in a timeline (polled every 20 ms
on the database, then confirmed through GET /api/v1/incidents), and the drain rate is the backlog at the last 202
over that time. A fresh database and server per case. Results: bench/results/apply-*.json and a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import events
import loadgen
import uvloop
from common import AFTERMATH, RESULTS, TOKEN, Database, Server, free_port, machine, server_env

POLL = 0.02
DRAIN_TIMEOUT = 300.0


def _event(kind: str, incident: str, event_id: str, at: datetime) -> tuple[str, str, str]:
    """One signed PagerDuty v3 delivery of `kind` (triggered, annotated, acknowledged) for `incident` at `at`."""
    template = events.template(kind)
    doc = json.loads(template.replace(events.INCIDENT_ID, incident))
    doc["event"]["id"] = event_id
    doc["event"]["occurred_at"] = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    if kind == "triggered":
        doc["event"]["data"]["incident_key"] = f"key-{incident}"
    body = json.dumps(doc, separators=(",", ":"))
    return event_id, events.sign(body.encode()), body


def many(count: int) -> list[tuple[str, str, str]]:
    start = datetime.now(UTC) - timedelta(minutes=10)
    return [_event("triggered", f"M{n:013d}", f"M{n:013d}T", start + timedelta(milliseconds=n)) for n in range(count)]


def one(count: int) -> list[tuple[str, str, str]]:
    start = datetime.now(UTC) - timedelta(minutes=10)
    out = [_event("triggered", "ONE0000000001", "ONE-T", start)]
    for n in range(1, count):
        out.append(_event("annotated", "ONE0000000001", f"ONE-N{n:06d}", start + timedelta(milliseconds=n)))
    return out


def mixed(count: int) -> list[tuple[str, str, str]]:
    """One new incident per ten events; the other nine are notes and an acknowledgement on the newest ones."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    out = []
    for n in range(count):
        incident, step = n // 10, n % 10
        kind = "triggered" if step == 0 else "acknowledged" if step == 5 else "annotated"
        out.append(_event(kind, f"S{incident:013d}", f"S{n:013d}", start + timedelta(milliseconds=n)))
    return out


class Client:
    """One keep-alive connection posting signed deliveries; records each answer's status and time."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, signature: str, body: str) -> int:
        headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}
        self.conn.request("POST", "/webhooks/pagerduty", body=body.encode(), headers=headers)
        response = self.conn.getresponse()
        response.read()
        return response.status


def post_all(port: int, deliveries: list[tuple[str, str, str]], clients: int) -> dict[str, Any]:
    """Post every delivery over `clients` keep-alive connections, each sending its next one as soon as the last is
    answered (asyncio + httptools, so the client is not what limits the rate); when each was answered, and how."""
    return uvloop.run(_post_all(port, deliveries, clients))


async def _post_all(port: int, deliveries: list[tuple[str, str, str]], clients: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pending = list(reversed(deliveries))
    answered: dict[str, float] = {}
    statuses: dict[str, int] = {}

    async def connection() -> None:
        _, conn = await loop.create_connection(loadgen.Connection, "127.0.0.1", port)
        while pending:
            event_id, signature, body = pending.pop()
            status, _ = await conn.request(loadgen._request("127.0.0.1", port, signature, body.encode()))
            answered[event_id] = time.monotonic()
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        conn.transport.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(clients)))
    return {"started": started, "last_202": max(answered.values()), "answered": answered, "statuses": statuses}


def visible_count(db: Database) -> int:
    return int(db.query("SELECT count(*) FROM timeline_entry")[0][0])


def api_entries(port: int) -> int:
    """Timeline entries of every incident, as GET /api/v1/incidents shows them."""
    conn, total, cursor = http.client.HTTPConnection("127.0.0.1", port, timeout=60), 0, None
    while True:
        path = "/api/v1/incidents?limit=500" + (f"&cursor={cursor}" if cursor else "")
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        page = json.loads(conn.getresponse().read())
        total += sum(len(item["timeline"]) for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


def backlog(kind: str, case: str, count: int, clients: int, work: Path) -> dict[str, Any]:
    deliveries = many(count) if case == "many" else one(count)
    with served(kind, work / f"{kind}-{case}") as (db, port):
        posted = post_all(port, deliveries, clients)
        pending_at_last = count - visible_count(db)
        while (seen := visible_count(db)) < count and time.monotonic() - posted["last_202"] < DRAIN_TIMEOUT:
            time.sleep(POLL)
        all_visible = time.monotonic()
        shown = api_entries(port)
        confirmed = time.monotonic()
    drain = all_visible - posted["last_202"]
    return {
        "case": case,
        "db": kind,
        "events": count,
        "statuses": posted["statuses"],
        "ingest_s": round(posted["last_202"] - posted["started"], 3),
        "ingest_per_s": round(count / (posted["last_202"] - posted["started"]), 1),
        "pending_at_last_202": pending_at_last,
        "visible": seen,
        "api_shows": shown,
        "drain_s": round(drain, 3),
        "api_confirmed_s": round(confirmed - posted["last_202"], 3),
        "drain_per_s": round(pending_at_last / drain, 1) if drain > 0 else None,
        "events_per_drain_s": round(count / drain, 1) if drain > 0 else None,
        "end_to_end_per_s": round(count / (all_visible - posted["started"]), 1),
    }


def steady(kind: str, rate: float, duration: float, work: Path) -> dict[str, Any]:
    """Events at `rate`/s on a fixed schedule; per event, from its 202 until its timeline entry is visible."""
    deliveries = mixed(int(rate * duration))
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    statuses: dict[str, int] = {}
    with served(kind, work / f"{kind}-steady") as (db, port):
        done = threading.Event()

        def watch() -> None:
            last = 0
            while not done.is_set() or len(seen) < len(deliveries):
                found = db.query(
                    "SELECT t.id, i.external_id FROM timeline_entry t "
                    f"JOIN inbound_event i ON i.id = t.inbound_event_id WHERE t.id > {last} ORDER BY t.id"
                )
                now = time.monotonic()
                for entry_id, event_id in found:
                    seen.setdefault(event_id, now)
                    last = max(last, entry_id)
                if done.is_set() and time.monotonic() - done_at[0] > 30:
                    return
                time.sleep(0.01)

        done_at = [0.0]
        watcher = threading.Thread(target=watch)
        watcher.start()
        client, start = Client(port), time.monotonic() + 0.2
        for n, (event_id, signature, body) in enumerate(deliveries):
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
            status = client.post(signature, body)
            answered[event_id] = time.monotonic()
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        done_at[0] = time.monotonic()
        done.set()
        watcher.join()
    lags = sorted(seen[e] - answered[e] for e in answered if e in seen)

    def pct(q: float) -> float | None:
        return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1) if lags else None

    return {
        "case": "steady",
        "db": kind,
        "rate": rate,
        "events": len(deliveries),
        "statuses": statuses,
        "visible": len(lags),
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": round(lags[-1] * 1000, 1) if lags else None,
    }


class served:
    """A fresh database and `aftermath serve` on it (embedded worker, as shipped); both gone afterwards."""

    def __init__(self, kind: str, home: Path) -> None:
        home.mkdir(parents=True)
        self.db, self.home, self.port = Database(kind, home), home, free_port()
        command = [AFTERMATH, "serve", "--port", str(self.port)]
        log = RESULTS / f"server-apply-{home.name}.log"
        self.server = Server(command, server_env(self.db.url), log, self.port, home)

    def __enter__(self) -> tuple[Database, int]:
        try:
            self.server.start()
        except BaseException:
            self.db.close()
            raise
        return self.db, self.port

    def __exit__(self, *_: object) -> None:
        try:
            self.server.stop()
        finally:
            self.db.close()


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| case | database | events | ingest events/s | backlog at last 202 | drain after last 202 | drain rate "
        "| goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["case"] == "steady":
            continue
        ok = r["drain_per_s"] is None or r["drain_per_s"] >= 1000
        lines.append(
            f"| {r['case']} | {r['db']} | {r['events']:,} | {r['ingest_per_s']:,.0f} | {r['pending_at_last_202']:,} "
            f"| {r['drain_s']:.2f} s | {r['drain_per_s'] or 0:,.0f}/s | ≥ 1,000/s: {'met' if ok else 'missed'} |"
        )
    steady_rows = [r for r in results if r["case"] == "steady"]
    if steady_rows:
        lines += [
            "",
            "| steady rate | database | events | visible | p50 | p90 | p99 | max | goal |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in steady_rows:
            ok = r["visible"] == r["events"] and (r["p99_ms"] or 1e9) <= 1000
            lines.append(
                f"| {r['rate']:.0f}/s | {r['db']} | {r['events']:,} | {r['visible']:,} | {r['p50_ms']} ms "
                f"| {r['p90_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms | p99 ≤ 1 s: {'met' if ok else 'missed'} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--cases", nargs="+", choices=["many", "one", "steady"], default=["many", "one", "steady"])
    parser.add_argument("--events", type=int, default=1000, help="events per backlog case")
    parser.add_argument("--clients", type=int, default=8, help="posting threads in the backlog cases")
    parser.add_argument("--rate", type=float, default=50.0, help="events/s in the steady case")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of the steady case")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"apply-{time.strftime('%Y%m%d-%H%M%S')}.json"
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aftermath-abench-") as tmp:
        for kind in args.db:
            for case in args.cases:
                print(f"== {kind}: {case}", flush=True)
                if case == "steady":
                    result = steady(kind, args.rate, args.duration, Path(tmp))
                else:
                    result = backlog(kind, case, args.events, args.clients, Path(tmp))
                print(json.dumps(result), flush=True)
                results.append(result)
                out.write_text(json.dumps({"machine": machine(), "args": vars(args), "results": results}, indent=1))
    print(f"\n{table(results)}\n\nresults: {out}")


if __name__ == "__main__":
    main()
