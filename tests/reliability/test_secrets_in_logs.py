"""After a run full of refusals and tracker errors, no configured secret appears in any log line or API answer.

In-process, every log record at DEBUG (ours and the libraries': requests, urllib3, jira, PyGithub) is checked as
raw text, before any redaction; the real `aftermath serve` is checked on what it actually prints (uvicorn's access
log included).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import Context, build_context
from app.worker import Worker
from connectors.github_tracker import GitHubTracker
from connectors.jira_tracker import JiraTracker
from tests.conftest import make_settings
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import FakeJira
from tests.helpers import pd_event
from tests.reliability.support import leaked, service_env, start_server, wait_until
from tests.reliability.trackers import GITHUB_REPO, GITHUB_TARGET, JIRA_TARGET, open_postmortem, post_actions
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]
SECRETS = {
    "pagerduty": ["pd-sec-ret-one-4f1d", "pd-sec-ret-two-9a7c", "pd-secret-new"],  # the last: tests.helpers signs
    "opsgenie": "og-sec-ret-77b2c1",
    "jira_token": "jira-sec-ret-a1b2c3",
    "github_token": "ghp_secRet0123456789abcdef",
    "github_webhook": "gh-hook-sec-ret-5e6f",
    "jira_webhook": "jira-hook-sec-ret-8d9e",
    "write_token": "api-write-sec-ret-3c4d",
    "read_token": "api-read-sec-ret-6a7b",
}
ALL = [*SECRETS["pagerduty"], *(v for k, v in SECRETS.items() if k != "pagerduty" and isinstance(v, str))]
WRITE = {"Authorization": f"Bearer {SECRETS['write_token']}"}


def _sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def service(database_url: str, tracker_mappings: Path) -> Iterator[tuple[Context, FakeJira, FakeGitHub]]:
    # Both trackers know other credentials than the service was given: every filing is refused (401).
    with FakeJira(token="the-right-jira-token") as jira, FakeGitHub(tokens={"the-right-gh-token": "bot"}) as github:
        github.add_repo(GITHUB_REPO)
        settings = make_settings(
            database_url,
            mappings=tracker_mappings,
            # The suite's own test token too, for the builders in tests.helpers (it is no secret of this test).
            api_tokens=[
                f"writer={SECRETS['write_token']}",
                f"reader={SECRETS['read_token']}:read",
                "t=test-write-token",
            ],
            pagerduty_secrets=SECRETS["pagerduty"],
            opsgenie_token=SECRETS["opsgenie"],
            jira_url=jira.url,
            jira_user=jira.user,
            jira_token=SECRETS["jira_token"],
            github_token=SECRETS["github_token"],
            github_api_url=github.url,
            github_webhook_secret=SECRETS["github_webhook"],
            jira_webhook_secret=SECRETS["jira_webhook"],
        )
        context = build_context(settings)
        context.trackers["jira"] = JiraTracker(jira.url, jira.user, SECRETS["jira_token"], timeout=5)
        context.trackers["github"] = GitHubTracker(
            SECRETS["github_token"], github.url, seconds_between_requests=0, seconds_between_writes=0, retry_backoff=0
        )
        yield context, jira, github
        context.engine.dispose()


def _exercise(client: TestClient) -> list[str]:
    """Everything that could echo a secret: wrong and right credentials on every door; the answers' text."""
    answers: list[str] = []
    body = pd_event("incident.triggered", event_id="EV-SECRET", incident_id="SECRET1")
    for signature in (
        "v1=" + _sign("not-the-secret", body),
        "garbage",
        "",
        "v1=" + _sign(SECRETS["pagerduty"][1], body),
    ):
        headers = {"X-PagerDuty-Signature": signature, "Content-Type": "application/json"}
        answers.append(client.post("/webhooks/pagerduty", content=body, headers=headers).text)
    og = json.dumps({"action": "Create", "alert": {"alertId": "a1", "message": "m", "createdAt": 1}}).encode()
    basic = "Basic " + base64.b64encode(f"x:{SECRETS['opsgenie']}".encode()).decode()
    for headers in (
        {"X-Aftermath-Token": "wrong"},
        {"X-Aftermath-Token": SECRETS["opsgenie"]},
        {"Authorization": basic},
    ):
        answers.append(client.post("/webhooks/opsgenie", content=og, headers=headers).text)
    answers.append(client.post("/webhooks/github", content=b"{}", headers={"X-Hub-Signature-256": "sha256=00"}).text)
    answers.append(client.post(f"/webhooks/jira?secret={SECRETS['jira_webhook']}x", content=b"{}").text)
    answers.append(client.post(f"/webhooks/jira?secret={SECRETS['jira_webhook']}", content=b"{}").text)
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {SECRETS['read_token']}"}):
        answers.append(client.post("/api/v1/incidents/1/postmortem", headers=headers).text)
    return answers


def test_no_secret_in_logs_or_answers_in_process(
    service: tuple[Context, FakeJira, FakeGitHub], caplog: pytest.LogCaptureFixture
) -> None:
    context, jira, github = service
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(context, embedded_worker=False)) as client:
        answers = _exercise(client)
        Worker(context).apply_inbox()
        postmortem, finding = open_postmortem(client, "SECRET2")
        created = post_actions(client, postmortem["id"], finding["id"], [JIRA_TARGET, GITHUB_TARGET])
        Worker(context).run_once()  # both filings are refused: bad credentials
        for action in created:
            answer = client.get(f"/api/v1/actions/{action['id']}", headers=WRITE)
            assert answer.json()["last_error"], answer.text  # the refusal is shown …
            answers.append(answer.text)
        answers.append(client.get("/api/v1/ledger", headers=WRITE).text)
        answers.append(client.get("/metrics").text)
    assert jira.requests and github.count("POST"), "the trackers were called"
    # httpx is the test's own client here (the service does not use it): its request lines are not the service's.
    ours = [r for r in caplog.records if not r.name.startswith("httpx")]
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in ours)
    assert {"urllib3.connectionpool", "app.jobs"} <= {r.name for r in ours}  # ours and the libraries
    assert not leaked(ALL, records), "secret in a log record"
    assert not leaked(ALL, *answers), "secret in an API answer"  # … without the credentials


def _first_incident(client: httpx.Client) -> dict[str, Any]:
    def found() -> list[dict[str, Any]]:
        return list(client.get("/api/v1/incidents", headers=WRITE).json()["items"])

    assert wait_until(lambda: bool(found()), timeout=15), "the embedded worker applied no event"
    return found()[0]


def test_no_secret_in_what_the_server_prints(database_url: str, tmp_path: Path) -> None:
    env = service_env(
        database_url,
        AFTERMATH_WORKER="embedded",
        AFTERMATH_PAGERDUTY_SECRETS=",".join(SECRETS["pagerduty"]),
        AFTERMATH_OPSGENIE_TOKEN=SECRETS["opsgenie"],
        AFTERMATH_JIRA_URL="http://127.0.0.1:9",  # nothing listens: the worker's errors are logged too
        AFTERMATH_JIRA_USER="bot@example.com",
        AFTERMATH_JIRA_TOKEN=SECRETS["jira_token"],
        AFTERMATH_GITHUB_TOKEN=SECRETS["github_token"],
        AFTERMATH_GITHUB_WEBHOOK_SECRET=SECRETS["github_webhook"],
        AFTERMATH_JIRA_WEBHOOK_SECRET=SECRETS["jira_webhook"],
        AFTERMATH_API_TOKENS=f"writer={SECRETS['write_token']},reader={SECRETS['read_token']}:read",
    )
    server = start_server(tmp_path, env, "secrets", "--access-log")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            body = pd_event("incident.triggered", event_id="EV-SRV", incident_id="SRV1", priority="P1")
            for secret in ("nope", SECRETS["pagerduty"][0]):
                headers = {"X-PagerDuty-Signature": "v1=" + _sign(secret, body), "Content-Type": "application/json"}
                client.post("/webhooks/pagerduty", content=body, headers=headers)
            client.post("/webhooks/opsgenie", content=b"{}", headers={"X-Aftermath-Token": SECRETS["opsgenie"]})
            client.post(f"/webhooks/jira?secret={SECRETS['jira_webhook']}", content=b"{}")
            client.get("/api/v1/incidents", headers=WRITE)
            client.get("/api/v1/incidents", auth=("x", SECRETS["read_token"]))
            client.get("/api/v1/incidents", headers={"Authorization": "Bearer wrong"})
            # An action for the embedded worker to file into a Jira that is not there: its errors are logged too.
            incident = _first_incident(client)
            postmortem = client.post(f"/api/v1/incidents/{incident['id']}/postmortem", headers=WRITE).json()
            finding = client.post(
                f"/api/v1/postmortems/{postmortem['id']}/findings",
                json={"kind": "root_cause", "statement": "s", "category": "c"},
                headers=WRITE,
            ).json()
            action = {"title": "a", "finding_ids": [finding["id"]], "tracker": JIRA_TARGET}
            client.post(f"/api/v1/postmortems/{postmortem['id']}/actions", json=action, headers=WRITE)
            assert wait_until(lambda: "(file_action, action" in server.output(), timeout=15), server.output()[-3000:]
    finally:
        server.stop()
    output = server.output()
    assert "POST /webhooks/pagerduty" in output, output[-2000:]  # the access log is part of what is checked
    assert not leaked(ALL, output), output[-4000:]
