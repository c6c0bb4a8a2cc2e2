"""Postmortem reports per audience, as Markdown (default) or HTML."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response

from app import reports
from app.api.deps import ContextDep, Reader
from app.api.params import MAX_ID
from app.db import utcnow

router = APIRouter(prefix="/api/v1/postmortems", tags=["reports"])
Format = Literal["markdown", "html"]


@router.get(
    "/{postmortem_id}/report",
    response_class=Response,
    responses={
        200: {"description": "the report", "content": {"text/markdown": {}, "text/html": {}}},
        404: {"description": "unknown id"},
    },
)
def get_report(
    context: ContextDep,
    _: Reader,
    audience: Annotated[reports.Audience, Query(description="who the report is for")],
    postmortem_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    output: Annotated[Format, Query(alias="format", description="markdown (default) or html")] = "markdown",
) -> Response:
    with context.read() as session:
        data = reports.gather(session, postmortem_id, utcnow().date())
        markdown = reports.render_markdown(data, audience)
        title = f"{data.postmortem.key} · {audience} report"
    if output == "html":
        return HTMLResponse(reports.to_html(markdown, title))
    return Response(markdown, media_type="text/markdown; charset=utf-8")
