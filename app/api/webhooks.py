"""Inbound webhooks: authenticate on the raw bytes, store durably, answer 202 only after the commit."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import ContextDep
from app.api.schemas import WebhookAnswer
from app.context import Context
from app.ingest import ingest
from connectors import opsgenie, pagerduty
from connectors.events import AlertEvent

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


async def _accept(context: Context, source: str, body: bytes, parse: Callable[[bytes], AlertEvent]) -> JSONResponse:
    def work() -> JSONResponse:
        with context.write() as session:
            result = ingest(session, context.mappings, source, body, parse)
        if result.status == "rejected":
            return JSONResponse({"detail": result.detail, "event_id": result.event_id}, status_code=result.http_status)
        return JSONResponse({"status": result.status, "event_id": result.event_id}, status_code=202)

    return await run_in_threadpool(work)


@router.post("/pagerduty", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def pagerduty_webhook(request: Request, context: ContextDep) -> JSONResponse:
    """PagerDuty Webhooks v3; `X-PagerDuty-Signature` must match one of AFTERMATH_PAGERDUTY_SECRETS."""
    secrets = context.settings.pagerduty_secrets
    if not secrets:
        raise _unauthorized("PagerDuty webhooks are disabled: AFTERMATH_PAGERDUTY_SECRETS is not set")
    body = await request.body()
    if not pagerduty.verify_signature(secrets=secrets, body=body, header=request.headers.get("x-pagerduty-signature")):
        raise _unauthorized("missing or invalid X-PagerDuty-Signature")
    return await _accept(context, "pagerduty", body, pagerduty.parse)


@router.post("/opsgenie", status_code=202, response_model=WebhookAnswer, responses=_RESPONSES)
async def opsgenie_webhook(request: Request, context: ContextDep) -> JSONResponse:
    """Opsgenie outgoing webhook; the shared token comes as `X-Aftermath-Token` or as the Basic auth password."""
    expected = context.settings.opsgenie_token
    if not expected:
        raise _unauthorized("Opsgenie webhooks are disabled: AFTERMATH_OPSGENIE_TOKEN is not set")
    if not opsgenie.verify_token(
        expected=expected,
        header_token=request.headers.get("x-aftermath-token"),
        authorization=request.headers.get("authorization"),
    ):
        raise _unauthorized("missing or invalid X-Aftermath-Token (or Basic auth password)")
    body = await request.body()
    return await _accept(context, "opsgenie", body, opsgenie.parse)
