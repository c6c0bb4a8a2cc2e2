"""Knowledge-base benchmark: 10,000 postmortems, 50,000 findings, 50,000 actions and 10,000 incidents of generated
prose, written through the models (so the migration's triggers build the search index as they would in use); then
p50/p95 of `GET /api/v1/search` for three query shapes and of `GET /api/v1/postmortems/{id}/similar`, through
`aftermath serve`, against a bare GET route served the same way, on SQLite and PostgreSQL.

    .venv/bin/python bench/search.py [--db sqlite postgres] [--requests 200] [--postmortems 10000]

The prose: a Zipf-distributed vocabulary of 3,000 words (about 150 of them the words of operations, the rest made
of syllables), so a few words are in most documents and most words in a few, as in real postmortems.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import AFTERMATH, PYTHON, RESULTS, ROOT, Database, Server, free_port, machine, measure, server_env

sys.path.insert(0, str(ROOT))

GOAL_MS = 50.0
OPERATIONS = """disk full latency timeout connection pool database replica failover deploy rollback
certificate expired dns
resolver cache memory leak cpu throttling queue backlog retry storm rate limit load balancer health check
alert paging runbook monitoring dashboard threshold capacity autoscaling node kubernetes pod crash restart
config change feature flag migration schema index lock deadlock partition network packet loss firewall vpn
proxy gateway api error budget slo latency p99 saturation thundering herd cron job batch scheduler token
expiry auth login session cookie redis kafka consumer lag producer topic broker zookeeper elasticsearch shard
cluster split brain quorum raft leader election clock skew ntp log rotation retention backup restore snapshot
storage bucket permissions iam role secret vault key rotation encryption tls handshake cipher http gateway
upstream downstream dependency vendor outage region zone datacenter power cooling hardware disk controller
raid firmware kernel upgrade patch release canary blue green traffic shift circuit breaker bulkhead fallback
degraded mode cache stampede hot key eviction ttl""".split()  # noqa: SIM905  (prose reads better as prose)
SYLLABLES = "ka ri to mo ne sa lu vi de po ga ze fi ru ta no me shi ko ba".split()  # noqa: SIM905


def vocabulary(rng: random.Random, size: int = 3000) -> list[str]:
    words = list(dict.fromkeys(OPERATIONS))
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in words:
            words.append(word)
    rng.shuffle(words)
    return words


class Prose:
    def __init__(self, rng: random.Random) -> None:
        self.rng, self.words = rng, vocabulary(rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]  # Zipf, s = 1

    def text(self, low: int, high: int) -> str:
        n = self.rng.randint(low, high)
        return " ".join(self.rng.choices(self.words, self.weights, k=n)).capitalize()


def load(url: str, postmortems: int, rng: random.Random) -> float:
    """Write the corpus through the models in batches; returns seconds."""
    from sqlmodel import Session

    from app.actions import Action, ActionFinding
    from app.db import make_engine
    from app.findings import Finding
    from app.incidents import Incident
    from app.postmortems import Postmortem
    from app.vocabulary import ActionKind, ActionStatus, Control, FindingKind, VerificationState

    prose, engine = Prose(rng), make_engine(url)
    services = [f"svc-{n}" for n in range(40)]
    categories = [f"cat-{n}" for n in range(25)]
    started, now = time.monotonic(), datetime.now(UTC)
    batch = 500
    with Session(engine) as session:
        for first in range(1, postmortems + 1, batch):
            ids = range(first, min(first + batch, postmortems + 1))
            rows: list[Any] = []
            for n in ids:
                at = now - timedelta(days=rng.randint(1, 700))
                rows.append(
                    Postmortem(
                        id=n,
                        key=f"PM-{n}",
                        title=prose.text(5, 9),
                        summary=prose.text(30, 60),
                        created_at=at,
                        updated_at=at,
                    )
                )
            session.add_all(rows)
            session.flush()
            incidents, findings, actions, links = [], [], [], []
            for n in ids:
                at = now - timedelta(days=rng.randint(1, 700))
                incidents.append(
                    Incident(
                        id=n,
                        source="pagerduty",
                        external_id=f"Q{n}",
                        title=prose.text(6, 10),
                        service=rng.choice(services),
                        fingerprint=f"fp{rng.randrange(4000)}",
                        postmortem_id=n,
                        triggered_at=at,
                        status="resolved",
                    )
                )
                for k in range(5):
                    fid = (n - 1) * 5 + k + 1
                    whys = [prose.text(6, 10) for _ in range(rng.randint(0, 3))]
                    findings.append(
                        Finding(
                            id=fid,
                            postmortem_id=n,
                            kind=rng.choice(list(FindingKind)),
                            statement=prose.text(8, 15),
                            evidence=prose.text(15, 30),
                            category=rng.choice(categories),
                            whys=whys,
                        )
                    )
                    done = rng.random() < 0.5
                    actions.append(
                        Action(
                            id=fid,
                            postmortem_id=n,
                            title=prose.text(5, 9),
                            description=prose.text(15, 30),
                            success_metric=prose.text(6, 10),
                            kind=rng.choice(list(ActionKind)),
                            control=rng.choice(list(Control)),
                            status=ActionStatus.DONE if done else ActionStatus.OPEN,
                            verification_state=rng.choice(list(VerificationState)) if done else None,
                        )
                    )
                    links.append(ActionFinding(action_id=fid, finding_id=fid))
            session.add_all(incidents)
            session.add_all(findings)
            session.flush()
            session.add_all(actions)
            session.flush()
            session.add_all(links)
            session.commit()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            from sqlalchemy import text

            for table in ("postmortem", "incident", "finding", "action", "action_finding"):
                conn.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
            conn.execute(text("ANALYZE"))
    engine.dispose()
    return time.monotonic() - started


def shapes(rng: random.Random, postmortems: int) -> dict[str, Any]:
    """Each measured request's name and a maker of its next path (the words vary from request to request)."""
    words = vocabulary(random.Random(7))  # the same vocabulary, in the same Zipf order, as the corpus
    common, middling = words[:40], words[200:1500]

    def q(text: str) -> str:
        from urllib.parse import quote

        return "/api/v1/search?q=" + quote(text)

    return {
        "search: one uncommon word": lambda: q(rng.choice(middling)),
        "search: two common words": lambda: q(f"{rng.choice(common)} {rng.choice(common)}"),
        "search: phrase OR prefix": lambda: q(
            f'"{rng.choice(common)} {rng.choice(common)}" OR {rng.choice(middling)[:3]}'
        ),
        "similar postmortems": lambda: f"/api/v1/postmortems/{rng.randrange(1, postmortems + 1)}/similar",
        "bare GET route (ceiling)": lambda: "/bare",
    }


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aftermath-sbench-") as tmp:
        db = Database(kind, Path(tmp))
        try:
            env = server_env(db.url, AFTERMATH_WORKER="off")
            subprocess.run([AFTERMATH, "migrate"], env=env, check=True, cwd=tmp, capture_output=True)
            seconds = load(db.url, args.postmortems, random.Random(7))
            counts = {
                t: db.query(f"SELECT count(*) FROM {t}")[0][0]
                for t in ("postmortem", "finding", "action", "incident", "search_document")
            }
            print(f"{kind}: loaded in {seconds:.0f} s: {counts}", flush=True)
            results: dict[str, Any] = {}
            port, bare_port = free_port(), free_port()
            server = Server(
                [AFTERMATH, "serve", "--port", str(port)], env, RESULTS / f"server-search-{kind}.log", port, Path(tmp)
            )
            bare = Server(
                [PYTHON, str(ROOT / "bench" / "bare_app.py"), "--port", str(bare_port)],
                env,
                RESULTS / "server-bare.log",
                bare_port,
                Path(tmp),
            )
            try:
                server.start()
                bare.start()
                for name, make_path in shapes(random.Random(11), args.postmortems).items():
                    target = bare_port if name.startswith("bare") else port
                    results[name] = measure(target, make_path, args.requests)
                    print(f"  {name}: {results[name]}", flush=True)
            finally:
                server.stop()
                bare.stop()
        finally:
            db.close()
    return {"rows": counts, "load_s": round(seconds, 1), "routes": results}


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| database | request | p50 | p95 | goal (p95 ≤ 50 ms) | items per answer |", "|---|---|---|---|---|---|"]
    for kind, result in results.items():
        for name, r in result["routes"].items():
            ok = r["p95_ms"] <= GOAL_MS and set(r["statuses"]) == {"200"}
            goal = "" if name.startswith("bare") else ("met" if ok else "missed")
            lines.append(f"| {kind} | {name} | {r['p50_ms']} ms | {r['p95_ms']} ms | {goal} | {r['mean_items']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per shape (after 10 warm-up ones)")
    parser.add_argument("--postmortems", type=int, default=10_000, help="each with 5 findings, 5 actions, 1 incident")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {kind: run(kind, args) for kind in args.db}
    out = RESULTS / f"search-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    print(f"\n{table(results)}\n\nresults: {out}")


if __name__ == "__main__":
    main()
