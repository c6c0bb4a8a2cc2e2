"""Liveness, readiness (database reachable and migrated to head) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from app import migrations, telemetry
from app.api import metrics
from app.api.deps import ContextDep

router = APIRouter(tags=["health"])
HEAD = migrations.head_revision()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or not migrated"}})
async def readyz(context: ContextDep) -> JSONResponse:
    try:
        current = await run_in_threadpool(migrations.current_revision, context.engine)
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "detail": "database unreachable"}, status_code=503)
    if current != HEAD:
        detail = f"database at migration {current}, code expects {HEAD}: run `aftermath migrate`"
        return JSONResponse({"status": "unavailable", "detail": detail}, status_code=503)
    return JSONResponse({"status": "ok", "migration": current})


@router.get("/metrics", response_class=Response, responses={503: {"description": "database unreachable"}})
def prometheus_metrics(request: Request) -> Response:
    try:
        # What the processes counted, then the gauges computed from the database on each scrape.
        body = telemetry.exposition() + generate_latest(metrics.registry(request))
    except SQLAlchemyError:
        return JSONResponse(
            {"detail": "database unavailable, retry later"}, status_code=503, headers={"Retry-After": "5"}
        )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
