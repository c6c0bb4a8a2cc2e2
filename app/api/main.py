"""The FastAPI application: routers, error mapping (no request ever answers 500), body cap, embedded worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_swagger import patch_fastapi
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from app import __version__
from app.api import (
    actions,
    dead_letters,
    health,
    incidents,
    ledger,
    metrics,
    pages,
    postmortems,
    reports,
    review,
    search,
    webhooks,
)
from app.api.limits import BodyLimit
from app.api.request_ids import RequestIds
from app.context import Context
from app.errors import DomainError
from app.ingest import GroupCommitter

log = logging.getLogger(__name__)


def _document_error_details(app: FastAPI) -> None:
    """A 422 answers `{"detail": [...]}` for a request that fails validation, and `{"detail": "..."}` (one sentence)
    for a valid-looking request the domain refuses; FastAPI's generated schema knows only the list."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            validation = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError")
            if validation is not None:
                listed = validation["properties"]["detail"]
                validation["properties"]["detail"] = {
                    "title": "Detail",
                    "anyOf": [{k: v for k, v in listed.items() if k != "title"}, {"type": "string"}],
                }
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(context: Context, *, embedded_worker: bool | None = None) -> FastAPI:
    run_worker = context.settings.worker == "embedded" if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from app.worker import Worker

        committer = GroupCommitter(context.engine, on_commit=context.inbox_signal.set)
        committer.start()
        app.state.committer = committer
        worker = Worker(context, name="embedded") if run_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()
            committer.stop()

    app = FastAPI(
        title="Aftermath",
        version=__version__,
        description="Alert webhooks in; postmortems, findings and actions; tracker issues out; a hash-chained ledger.",
        lifespan=lifespan,
        # FastAPI's own /docs and /redoc load their scripts from a CDN, which an offline or locked-down network
        # cannot reach; fastapi-swagger serves the Swagger UI files from the installed package instead.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    patch_fastapi(app, docs_url="/docs", redirect_from_root_to_docs=False)
    app.state.context = context
    for router in (
        webhooks,
        incidents,
        postmortems,
        review,
        reports,
        actions,
        ledger,
        dead_letters,
        metrics,
        search,
        health,
        pages,
    ):
        app.include_router(router.router)
    app.add_middleware(BodyLimit)
    app.add_middleware(RequestIds)  # added last, so it runs first: even a refused body's answer carries the id
    _document_error_details(app)

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse({**exc.extra, "detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(IntegrityError)
    async def conflict(_request: Request, exc: IntegrityError) -> JSONResponse:
        return JSONResponse({"detail": "conflicting change; reload and retry"}, status_code=409)

    @app.exception_handler(DataError)
    async def unstorable(_request: Request, exc: DataError) -> JSONResponse:
        # A value the database cannot hold (a number past its column, a NUL character in text on PostgreSQL): the
        # request is at fault, and retrying it cannot help, so this is not the 503 of an unavailable database.
        log.info("database refused a value: %s", type(exc.orig).__name__)
        return JSONResponse({"detail": "a value is out of range or cannot be stored"}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("database error: %s", type(exc).__name__)
        return JSONResponse(
            {"detail": "database unavailable, retry later"}, status_code=503, headers={"Retry-After": "5"}
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app
