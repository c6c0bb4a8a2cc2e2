"""Metrics routes: the JSON summary over a window, and the Prometheus registry that /metrics adds to its output."""

from __future__ import annotations

import threading
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request, status
from prometheus_client import CollectorRegistry

from app import metrics, prometheus
from app.api.deps import ContextDep, Reader
from app.api.metrics_schemas import SummaryOut
from app.api.params import Instant
from app.context import Context
from app.db import utcnow

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])
_registry_lock = threading.Lock()


@router.get("/summary", response_model=SummaryOut, responses={422: {"description": "naive or reversed times"}})
def get_summary(
    context: ContextDep,
    _: Reader,
    since: Instant | None = None,
    until: Instant | None = None,
    service: str | None = None,
    team: str | None = None,
) -> SummaryOut:
    if since is not None and until is not None and until <= since:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until must be after since")
    with context.read() as session:
        window = metrics.Window(since=since, until=until, service=service, team=team, today=utcnow().date())
        result = metrics.summary(session, window)
    return SummaryOut.model_validate(asdict(result))


def registry(request: Request) -> CollectorRegistry:
    """The app's own registry with the collectors that read the database, made (and registered) once per app."""
    state = request.app.state
    with _registry_lock:
        if getattr(state, "metrics_registry", None) is None:
            context: Context = state.context
            found = CollectorRegistry(auto_describe=False)
            found.register(prometheus.SummaryCollector(context.read, lambda: utcnow().date()))
            found.register(prometheus.QueueCollector(context.read))
            state.metrics_registry = found
    built: CollectorRegistry = state.metrics_registry
    return built
