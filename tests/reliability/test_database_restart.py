"""PostgreSQL stopped and started under webhook load, with `aftermath serve` left running throughout.

While the database is down the service says so — 503 with Retry-After on /readyz and on webhooks, so the source
retries — and never 500 or a hang; once it is back the service recovers by itself, and every event it acknowledged
is stored. This test stops the machine's PostgreSQL: it always starts it again, whatever happens.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import PG_ADMIN
from tests.reliability.support import (
    API_TOKEN,
    PD_SECRET,
    leaked,
    pd_body,
    pd_headers,
    pg_ctl,
    pg_ready,
    rows,
    service_env,
    start_server,
    wait_until,
)

OUTAGE = 4.0  # seconds PostgreSQL stays down


@dataclass
class Load:
    """Signed webhook deliveries, one after another, each with a new id; every answer is kept."""

    url: str
    answers: list[tuple[str, int | str, float]] = field(default_factory=list)  # (event id, status or error, when)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self.stop.is_set():
                event_id = f"RESTART-EV-{n}"
                body = pd_body(event_id, f"RESTART-{n % 7}")
                try:
                    response = client.post(f"{self.url}/webhooks/pagerduty", content=body, headers=pd_headers(body))
                    outcome: int | str = response.status_code
                    if response.status_code == 503:
                        assert response.headers.get("retry-after"), response.headers
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.answers.append((event_id, outcome, time.monotonic()))
                n += 1
                time.sleep(0.01)


def _readyz(url: str) -> int:
    return httpx.get(f"{url}/readyz", timeout=10).status_code


def test_database_restart_answers_503_meanwhile_and_recovers_by_itself(pg_url: str, tmp_path: Path) -> None:
    server = start_server(tmp_path, service_env(pg_url, AFTERMATH_WORKER="embedded"), "restart")
    load = Load(server.url)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: sum(1 for _, s, _ in load.answers if s == 202) >= 20, timeout=20)
        down_from = down_until = time.monotonic()
        try:
            pg_ctl("stop")
            down_from = time.monotonic()
            assert not pg_ready(PG_ADMIN, timeout=0.5), "PostgreSQL did not stop"
            assert _readyz(server.url) == 503
            time.sleep(OUTAGE)
            down_readyz = _readyz(server.url)
        finally:
            down_until = time.monotonic()
            if not pg_ready(PG_ADMIN, timeout=0.2):
                pg_ctl("start")
            assert pg_ready(PG_ADMIN), "PostgreSQL did not come back"
        started_at = time.monotonic()
        assert down_readyz == 503
        # Back by itself: the pool's pre-ping replaces the dead connections; no restart of the service.
        assert wait_until(lambda: _readyz(server.url) == 200, timeout=20)
        assert wait_until(lambda: any(s == 202 and t > started_at for _, s, t in load.answers), timeout=20), Counter(
            s for _, s, t in load.answers if t > started_at
        )
        load.stop.set()
        thread.join(timeout=15)
        # The embedded worker came back too: it applies every stored event to its incident.
        pending = "SELECT count(*) FROM inbound_event WHERE processed_at IS NULL"
        assert wait_until(lambda: rows(pg_url, pending)[0][0] == 0, timeout=30), rows(pg_url, pending)
    finally:
        load.stop.set()
        thread.join(timeout=15)
        alive = server.alive()
        server.stop()
    assert alive, "the service kept running through the outage"

    outcomes = Counter(s for _, s, _ in load.answers)
    assert set(outcomes) <= {202, 503}, outcomes  # never a 500, a reset or a timeout
    during = [s for _, s, t in load.answers if down_from + 0.2 < t < down_until]
    assert during and set(during) == {503}, Counter(during)
    acknowledged = {e for e, s, _ in load.answers if s == 202}
    stored = Counter(
        str(r[0]) for r in rows(pg_url, "SELECT external_id FROM inbound_event WHERE source = 'pagerduty'")
    )
    assert acknowledged <= set(stored) and set(stored.values()) == {1}
    assert not leaked([PD_SECRET, API_TOKEN], server.output())
