"""Inbound webhooks: authenticate on the raw bytes, store durably, answer 202 only after the commit."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPBasicCredentials

from app import telemetry, tracker_webhooks
from app.api.deps import ContextDep, basic
from app.api.schemas import WebhookAnswer
from app.context import Context
from app.ingest import Answer, GroupCommitter, answer, classify_alert
from connectors import opsgenie, pagerduty
from connectors.tracker_webhooks import HOOKS, TrackerHook

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"description": "body is not JSON"},
    401: {"description": "missing or wrong signature/token; nothing stored"},
    413: {"description": "body over 1 MiB"},
    422: {"description": "JSON but not the source's shape; kept as a dead letter"},
    503: {"description": "database unavailable; the source should retry"},
}


def _unauthorized(source: str, detail: str) -> HTTPException:
    telemetry.DELIVERIES.labels(source, "unauthorized").inc()
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail)


def _answer(source: str, result: Answer) -> Response:
    telemetry.DELIVERIES.labels(source, result.status).inc()
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
    return _answer(source, answer(delivery, await committer.submit(delivery)))


@router.post("/pagerduty", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def pagerduty_webhook(request: Request) -> Response:
    """PagerDuty Webhooks v3; `X-PagerDuty-Signature` must match one of AFTERMATH_PAGERDUTY_SECRETS."""
    secrets = [secret.get_secret_value() for secret in _context(request).settings.pagerduty_secrets]
    if not secrets:
        raise _unauthorized("pagerduty", "PagerDuty webhooks are disabled: AFTERMATH_PAGERDUTY_SECRETS is not set")
    body = await request.body()
    if not pagerduty.verify_signature(secrets=secrets, body=body, header=request.headers.get("x-pagerduty-signature")):
        raise _unauthorized("pagerduty", "missing or invalid X-PagerDuty-Signature")
    return await _accept(request, "pagerduty", body)


@router.post("/opsgenie", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def opsgenie_webhook(
    request: Request, credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]
) -> Response:
    """Opsgenie outgoing webhook; the shared token comes as `X-Aftermath-Token` or as the Basic auth password."""
    expected = _context(request).settings.opsgenie_token
    if not expected:
        raise _unauthorized("opsgenie", "Opsgenie webhooks are disabled: AFTERMATH_OPSGENIE_TOKEN is not set")
    if not opsgenie.verify_token(
        expected=expected.get_secret_value(),
        header_token=request.headers.get("x-aftermath-token"),
        basic_password=credentials.password if credentials else None,
    ):
        raise _unauthorized("opsgenie", "missing or invalid X-Aftermath-Token (or Basic auth password)")
    return await _accept(request, "opsgenie", await request.body())


def _tracker_route(hook: TrackerHook) -> Callable[[Request, Context], Awaitable[Response]]:
    async def receive(request: Request, context: ContextDep) -> Response:
        variable, secret = context.settings.webhook_secret(hook.kind)
        if not secret:
            raise _unauthorized(hook.kind, f"{hook.kind} webhooks are disabled: {variable} is not set")
        body = await request.body()
        headers = {name.lower(): value for name, value in request.headers.items()}
        if not hook.verify(secret, body, headers, dict(request.query_params)):
            raise _unauthorized(hook.kind, f"missing or invalid {hook.how_signed}")

        def work() -> Response:
            with context.write() as session:
                return _answer(hook.kind, tracker_webhooks.receive(session, context.mappings, hook, body, headers))

        return await run_in_threadpool(work)

    receive.__name__ = f"{hook.kind}_webhook"
    receive.__doc__ = f"The tracker's own webhook for issue changes, signed with {hook.how_signed}."
    return receive


for _hook in HOOKS:
    router.add_api_route(
        f"/{_hook.kind}",
        _tracker_route(_hook),
        methods=["POST"],
        status_code=202,
        response_model=WebhookAnswer,
        responses=_RESPONSES,
    )
