"""Query parameters shared by list routes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import HTTPException, Query, status
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

# Ids are INTEGER columns: a larger number cannot name a row, and on PostgreSQL it would not even bind.
MAX_ID = 2**31 - 1
Limit = Annotated[int, Query(ge=1, le=500, description="page size, at most 500")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def _blank_is_none(value: object) -> object:
    # An HTML form sends "any" as an empty value (`?overdue=&owner=`): no filter, not a malformed boolean.
    return None if value == "" else value


Blank = BeforeValidator(_blank_is_none)


def _date_is_midnight_utc(value: object) -> object:
    # `?since=2026-04-01` is what people type; a bare date has no zone to be naive about, so read it as UTC.
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return f"{value}T00:00:00Z"
    return value


def _in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00+01:00 is a valid ISO time with no UTC equivalent a database column can hold.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range: in UTC it falls before year 1 or after year 9999") from None


# A time with a UTC offset, kept in UTC; a time without an offset is refused.
UTCTime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
# The same, or a date (midnight UTC).
Instant = Annotated[UTCTime, BeforeValidator(_date_is_midnight_utc)]


def after_id(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 10 or int(cursor) > MAX_ID:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "cursor: not a cursor this API returned")
    return int(cursor)
