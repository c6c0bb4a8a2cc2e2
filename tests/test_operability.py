"""What an operator sees of a running service: JSON log lines with request and job ids and no secrets, Prometheus
counters summed over the server's processes, the integrations line, and a half-configured tracker refused."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.logs import bound, configure
from tests.reliability.support import API_TOKEN, PD_SECRET, pd_body, pd_headers, service_env, start_server, wait_until
from tests.reliability.trackers import JIRA_TARGET

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
JIRA_TOKEN = "jira-token-ops-77d1c0"
HOOK_SECRET = 'hook"se\\cret-42'  # quote and backslash: written escaped in JSON, and still found there


@pytest.fixture
def root_logging() -> Iterator[io.StringIO]:
    """The root logger configured as the service does, writing to a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [h for h in root.handlers if not getattr(h, "aftermath", False)]
    configure([PD_SECRET, HOOK_SECRET], "json")
    ours = next(h for h in root.handlers if getattr(h, "aftermath", False))
    assert isinstance(ours, logging.StreamHandler)
    ours.setStream(stream)
    yield stream
    root.handlers, root.level = saved


def test_json_lines_carry_bound_ids_and_no_secret(root_logging: io.StringIO) -> None:
    log = logging.getLogger("app.test")
    with bound(request_id="rid-1"), bound(job_id=7, action_id=3):
        log.info("signed with %s", PD_SECRET)
    try:
        raise ValueError(f"refused {HOOK_SECRET}")
    except ValueError:
        log.exception("while checking")
    lines = [json.loads(line) for line in root_logging.getvalue().splitlines()]
    assert lines[0]["message"] == "signed with [redacted]" and lines[0]["level"] == "INFO"
    assert (lines[0]["request_id"], lines[0]["job_id"], lines[0]["action_id"]) == ("rid-1", 7, 3)
    assert lines[0]["logger"] == "app.test" and "time" in lines[0]
    assert "request_id" not in lines[1], "ids are bound only for the block"
    assert "[redacted]" in lines[1]["exc_info"] and "se\\cret" not in json.dumps(lines[1])
    assert PD_SECRET not in root_logging.getvalue() and json.dumps(HOOK_SECRET)[1:-1] not in root_logging.getvalue()


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{want}}}" if labels else name) or (
            labels and head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items())
        ):
            return float(value)
    return 0.0


def test_a_served_process_logs_json_with_ids_and_counts_across_its_processes(database_url: str, tmp_path: Path) -> None:
    env = service_env(
        database_url,
        AFTERMATH_WORKER="embedded",
        AFTERMATH_LOG_FORMAT="json",
        AFTERMATH_JIRA_URL="http://127.0.0.1:9",  # nothing listens: the filing job is retried, and logs it
        AFTERMATH_JIRA_TOKEN=JIRA_TOKEN,
        AFTERMATH_JIRA_WEBHOOK_SECRET=HOOK_SECRET,
    )
    server = start_server(tmp_path, env, "ops", "--access-log")
    try:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as api:
            body = pd_body("EV-OPS-1", "OPS1")
            assert api.post("/webhooks/pagerduty", content=body, headers=pd_headers(body)).status_code == 202
            bad = {**pd_headers(body), "X-PagerDuty-Signature": "v1=00"}
            assert api.post("/webhooks/pagerduty", content=body, headers=bad).status_code == 401
            assert api.post("/webhooks/jira", params={"secret": HOOK_SECRET}, content=b"{}").status_code in (
                202,
                400,
                422,
            )
            assert wait_until(lambda: bool(api.get("/api/v1/incidents").json()["items"]), timeout=20)
            answer = api.get("/api/v1/incidents", headers={"X-Request-ID": "rid-ops-42"})
            assert answer.headers["x-request-id"] == "rid-ops-42"
            assert len(api.get("/healthz").headers["x-request-id"]) == 16, "one is made when none is given"
            incident = answer.json()["items"][0]
            postmortem = api.post(f"/api/v1/incidents/{incident['id']}/postmortem").json()
            finding = api.post(
                f"/api/v1/postmortems/{postmortem['id']}/findings",
                json={"kind": "root_cause", "statement": "s", "category": "c"},
            ).json()
            action = {"title": "a", "finding_ids": [finding["id"]], "tracker": JIRA_TARGET}
            assert api.post(f"/api/v1/postmortems/{postmortem['id']}/actions", json=action).status_code == 201

            def scraped() -> str:
                return api.get("/metrics").text

            assert wait_until(
                lambda: _metric(scraped(), "aftermath_jobs_run_total", kind="file_action", outcome="retry") >= 1, 20
            )
            text = scraped()
    finally:
        server.stop()
    # Counted in the server process (deliveries) and in the worker process (applied, lag, jobs): both in one scrape.
    assert _metric(text, "aftermath_webhook_deliveries_total", source="pagerduty", answer="accepted") == 1
    assert _metric(text, "aftermath_webhook_deliveries_total", source="pagerduty", answer="unauthorized") == 1
    assert _metric(text, "aftermath_inbox_applied_events_total", outcome="applied") == 1
    assert _metric(text, "aftermath_apply_lag_seconds_count") == 1
    assert _metric(text, "aftermath_tracker_retry_later_seconds_count", call="file_action") >= 1
    assert _metric(text, "aftermath_inbox_pending") == 0
    assert (
        _metric(text, "aftermath_jobs", kind="file_action", status="pending")
        + _metric(text, "aftermath_jobs", kind="file_action", status="running")
        == 1
    )

    lines = [line for line in server.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) == len(lines), [line for line in lines if not line.startswith("{")][:3]
    assert any(r["message"].startswith("integrations enabled: PagerDuty, Jira Server/Data Center") for r in records)
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert any(r.get("request_id") == "rid-ops-42" and "/api/v1/incidents" in r["message"] for r in access)
    assert all("request_id" in r for r in access), "every line a request causes names it"
    retried = [r for r in records if r["logger"] == "app.jobs" and "retry in" in r["message"]]
    assert retried and all(r.get("job_id") and r.get("action_id") for r in retried)
    assert any(r["logger"] == "app.worker" and r["message"].startswith("applied 1 event") for r in records)
    output = server.output()
    assert HOOK_SECRET not in output and json.dumps(HOOK_SECRET)[1:-1] not in output and JIRA_TOKEN not in output


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({"AFTERMATH_JIRA_URL": "https://acme.atlassian.net"}, "AFTERMATH_JIRA_TOKEN"),
        ({"AFTERMATH_JIRA_TOKEN": "t0ken"}, "AFTERMATH_JIRA_URL"),
        ({"AFTERMATH_JIRA_USER": "bot@example.com"}, "AFTERMATH_JIRA_URL"),
        ({"AFTERMATH_GITHUB_API_URL": "https://github.example.com/api/v3"}, "AFTERMATH_GITHUB_TOKEN"),
    ],
)
def test_a_half_configured_tracker_stops_start_up_with_one_line(
    tmp_path: Path, present: dict[str, str], missing: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env.update(
        {
            "AFTERMATH_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "AFTERMATH_MAPPINGS": str(ROOT / "mappings"),
            "PYTHONPATH": str(ROOT),
            **present,
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"aftermath: {missing}: not set"), result.stderr
    assert next(iter(present)) in lines[0]
