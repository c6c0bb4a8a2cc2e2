"""The worker's loops do not wait for each other: while Jira takes 20 s to answer a filing, new alert events still
show in their incidents within a second — with `aftermath serve`'s embedded worker, and with `aftermath worker`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.fake_jira import FakeJira
from tests.reliability.support import (
    API_TOKEN,
    Process,
    pd_body,
    pd_headers,
    service_env,
    start_server,
    start_worker,
    wait_until,
)
from tests.reliability.trackers import JIRA_TARGET
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]
JIRA_TOKEN = "jira-token-loops-3e1f"
HANG = 20.0
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(token=JIRA_TOKEN) as fake:
        yield fake


def _shows(api: httpx.Client, external_id: str) -> bool:
    items = api.get("/api/v1/incidents", params={"limit": 500}).json()["items"]
    return any(item["external_id"] == external_id for item in items)


def _trigger(api: httpx.Client, n: int) -> str:
    external_id = f"LOOPS-{n}"
    body = pd_body(f"EV-LOOPS-{n}", external_id)
    assert api.post("/webhooks/pagerduty", content=body, headers=pd_headers(body)).status_code == 202
    return external_id


@pytest.mark.parametrize("worker", ["embedded", "separate"])
def test_new_incidents_show_within_a_second_while_jira_hangs(
    database_url: str, tracker_mappings: Path, jira: FakeJira, tmp_path: Path, worker: str
) -> None:
    env = service_env(
        database_url,
        AFTERMATH_WORKER="embedded" if worker == "embedded" else "off",
        AFTERMATH_MAPPINGS=str(tracker_mappings),
        AFTERMATH_JIRA_URL=jira.url,
        AFTERMATH_JIRA_USER=jira.user,
        AFTERMATH_JIRA_TOKEN=JIRA_TOKEN,
        AFTERMATH_REMINDER_INTERVAL="0",
    )
    server = start_server(tmp_path, env, "server")
    separate: Process | None = start_worker(tmp_path, env, "worker") if worker == "separate" else None
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as api:
            first = _trigger(api, 0)
            assert wait_until(lambda: _shows(api, first), timeout=30), "the worker applied no event"
            incident = next(i for i in api.get("/api/v1/incidents").json()["items"] if i["external_id"] == first)
            postmortem = api.post(f"/api/v1/incidents/{incident['id']}/postmortem").json()
            finding = api.post(
                f"/api/v1/postmortems/{postmortem['id']}/findings",
                json={"kind": "root_cause", "statement": "s", "category": "c"},
            ).json()
            jira.delay_next(HANG, path_contains="/rest/api/2/issue")
            action = {"title": "a", "finding_ids": [finding["id"]], "tracker": JIRA_TARGET}
            assert api.post(f"/api/v1/postmortems/{postmortem['id']}/actions", json=action).status_code == 201
            assert wait_until(lambda: jira.count("/rest/api/2/issue", "POST") == 1, timeout=15), "no filing began"
            hung_at = time.monotonic()

            for n in range(1, 4):
                external_id = _trigger(api, n)
                posted = time.monotonic()
                assert wait_until(lambda e=external_id: _shows(api, e), timeout=1.0, interval=0.05), (
                    f"incident {external_id} did not show within a second while Jira hung"
                )
                assert time.monotonic() - posted <= 1.0
            assert time.monotonic() - hung_at < HANG, "Jira answered before the incidents were checked"
            assert not jira.issues, "the filing is still waiting for Jira"
    finally:
        if separate is not None:
            separate.stop()
        server.stop()
