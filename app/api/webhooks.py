"""Inbound webhooks: authenticate on the raw bytes, store durably, answer 202 only after the commit."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import ContextDep
from app.api.schemas import WebhookAnswer
from app.context import Context
from app.group_commit import GroupCommitter
from app.ingest import Answer, answer, classify_alert, receive_tracker_event
from connectors import opsgenie, pagerduty, tracker_webhooks
from connectors.tracker_webhooks import TrackerEvent

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"description": "body is not JSON"},
    401: {"description": "missing or wrong signature/token; nothing stored"},
    413: {"description": "body over 1 MiB"},
    422: {"description": "JSON but not the source's shape; kept as a dead letter"},
    503: {"description": "database unavailable; the source should retry"},
}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail)


def _answer(result: Answer) -> Response:
    if result.status == "rejected":
        body = {"detail": result.detail, "event_id": result.event_id}
    else:
        body = {"status": result.status, "event_id": result.event_id}
    return Response(json.dumps(body), status_code=result.http_status, media_type="application/json")


def _context(request: Request) -> Context:
    # The alert routes read the context directly: a (sync) dependency would cost each delivery a thread-pool hop.
    context: Context = request.app.state.context
    return context


async def _accept(request: Request, source: str, body: bytes) -> Response:
    """Classify (pure CPU), then wait for the group commit that stores the event; answer after it commits."""
    delivery = classify_alert(source, body)
    committer: GroupCommitter = request.app.state.committer
    return _answer(answer(delivery, await committer.submit(delivery)))


@router.post("/pagerduty", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def pagerduty_webhook(request: Request) -> Response:
    """PagerDuty Webhooks v3; `X-PagerDuty-Signature` must match one of AFTERMATH_PAGERDUTY_SECRETS."""
    secrets = _context(request).settings.pagerduty_secrets
    if not secrets:
        raise _unauthorized("PagerDuty webhooks are disabled: AFTERMATH_PAGERDUTY_SECRETS is not set")
    body = await request.body()
    if not pagerduty.verify_signature(secrets=secrets, body=body, header=request.headers.get("x-pagerduty-signature")):
        raise _unauthorized("missing or invalid X-PagerDuty-Signature")
    return await _accept(request, "pagerduty", body)


@router.post("/opsgenie", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def opsgenie_webhook(request: Request) -> Response:
    """Opsgenie outgoing webhook; the shared token comes as `X-Aftermath-Token` or as the Basic auth password."""
    expected = _context(request).settings.opsgenie_token
    if not expected:
        raise _unauthorized("Opsgenie webhooks are disabled: AFTERMATH_OPSGENIE_TOKEN is not set")
    if not opsgenie.verify_token(
        expected=expected,
        header_token=request.headers.get("x-aftermath-token"),
        authorization=request.headers.get("authorization"),
    ):
        raise _unauthorized("missing or invalid X-Aftermath-Token (or Basic auth password)")
    return await _accept(request, "opsgenie", await request.body())


async def _tracker_event(
    context: Context, source: str, body: bytes, delivery: str | None, parse: Callable[[bytes], TrackerEvent | None]
) -> Response:
    def work() -> Response:
        with context.write() as session:
            return _answer(receive_tracker_event(session, context.mappings, source, body, delivery, parse))

    return await run_in_threadpool(work)


@router.post("/github", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def github_webhook(request: Request, context: ContextDep) -> Response:
    """GitHub `issues` events, signed with AFTERMATH_GITHUB_WEBHOOK_SECRET (`X-Hub-Signature-256`)."""
    secret = context.settings.github_webhook_secret
    if not secret:
        raise _unauthorized("GitHub webhooks are disabled: AFTERMATH_GITHUB_WEBHOOK_SECRET is not set")
    body = await request.body()
    if not tracker_webhooks.verify_github(secret=secret, body=body, header=request.headers.get("x-hub-signature-256")):
        raise _unauthorized("missing or invalid X-Hub-Signature-256")
    event_name = request.headers.get("x-github-event")
    return await _tracker_event(
        context,
        "github",
        body,
        request.headers.get("x-github-delivery"),
        lambda raw: tracker_webhooks.parse_github(event_name, raw),
    )


@router.post("/jira", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def jira_webhook(request: Request, context: ContextDep, secret: str | None = None) -> Response:
    """Jira `jira:issue_updated`: `X-Hub-Signature` HMAC with AFTERMATH_JIRA_WEBHOOK_SECRET, or `?secret=`."""
    expected = context.settings.jira_webhook_secret
    if not expected:
        raise _unauthorized("Jira webhooks are disabled: AFTERMATH_JIRA_WEBHOOK_SECRET is not set")
    body = await request.body()
    if not tracker_webhooks.verify_jira(
        secret=expected, body=body, header=request.headers.get("x-hub-signature"), url_secret=secret
    ):
        raise _unauthorized("missing or invalid X-Hub-Signature (or URL secret)")
    return await _tracker_event(
        context, "jira", body, request.headers.get("x-atlassian-webhook-identifier"), tracker_webhooks.parse_jira
    )
