"""kill -9 of `aftermath serve` in the middle of a 5,000-event webhook storm, then a restart and a full redelivery.

A 202 means "durably stored": every event that got one is in the inbox exactly once after the crash, and
redelivering all 5,000 stores only those that were lost (nothing twice, the stored ones answer `duplicate`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.reliability.support import API_TOKEN, PD_SECRET, leaked, rows, service_env, start_server, storm

EVENTS = 5000
KILL_AFTER = 1500  # answers seen before the SIGKILL: well inside the storm


def _stored(database_url: str) -> Counter[str]:
    found = rows(database_url, "SELECT external_id FROM inbound_event WHERE source = 'pagerduty'")
    return Counter(str(r[0]) for r in found)


def test_kill9_mid_storm_loses_no_acknowledged_event_and_redelivery_adds_nothing_twice(
    database_url: str, tmp_path: Path
) -> None:
    # The worker is off: what is tested is the inbox (a 202 = stored); applying 10,000 events to incidents in the
    # same two cores would only make the run several times longer.
    env = service_env(database_url, AFTERMATH_WORKER="off")
    ids = [f"STORM-EV-{n}" for n in range(EVENTS)]
    server = start_server(tmp_path, env, "first")
    killed = False

    def kill_midway(answered: int) -> None:
        nonlocal killed
        if answered >= KILL_AFTER and not killed:
            killed = True
            server.kill9()

    try:
        first = asyncio.run(storm(server.url, ids, concurrency=32, on_progress=kill_midway, timeout=20))
    finally:
        server.stop()
    assert killed, "the storm ended before the kill"
    acknowledged = {d.event_id for d in first if d.status_code == 202}
    assert all(d.status == "accepted" for d in first if d.status_code == 202)
    assert not [d for d in first if d.status_code not in (None, 202)], "only 202 or no answer at all"
    assert KILL_AFTER <= len(acknowledged) < EVENTS, len(acknowledged)

    stored = _stored(database_url)
    assert not [i for i, n in stored.items() if n != 1]
    assert acknowledged <= set(stored), f"acknowledged but lost: {sorted(acknowledged - set(stored))[:10]}"
    assert set(stored) <= set(ids)

    second = start_server(tmp_path, env, "second")
    try:
        redelivered = asyncio.run(storm(second.url, ids, concurrency=32, timeout=30))
    finally:
        second.stop()
    assert all(d.status_code == 202 for d in redelivered), Counter((d.status_code, d.error) for d in redelivered)
    duplicates = {d.event_id for d in redelivered if d.status == "duplicate"}
    accepted = {d.event_id for d in redelivered if d.status == "accepted"}
    assert duplicates == set(stored), "exactly the events stored before the crash are duplicates"
    assert accepted == set(ids) - set(stored)
    after = _stored(database_url)
    assert len(after) == EVENTS and set(after) == set(ids) and max(after.values()) == 1

    logs = server.output() + second.output()
    assert not leaked([PD_SECRET, API_TOKEN], logs)
