"""Query parameters shared by list routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, status

# Ids are INTEGER columns: a larger number cannot name a row, and on PostgreSQL it would not even bind.
MAX_ID = 2**31 - 1
Limit = Annotated[int, Query(ge=1, le=500, description="page size, at most 500")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def after_id(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 10 or int(cursor) > MAX_ID:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor: not a cursor this API returned")
    return int(cursor)
