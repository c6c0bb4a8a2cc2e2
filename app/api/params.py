"""Query parameters shared by list routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, status

Limit = Annotated[int, Query(ge=1, le=500, description="page size, at most 500")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def after_id(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor: not a cursor this API returned")
    return int(cursor)
