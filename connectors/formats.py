"""Readers for the wire formats several connectors share: ISO-8601 times, `Retry-After` and `Link` headers.

Each answers None for a value it cannot read, so that a tracker's odd answer degrades to "unknown", never a crash.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import AwareDatetime, TypeAdapter, ValidationError
from requests.utils import parse_header_links
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

_AWARE = TypeAdapter(AwareDatetime)
# A date and a clock time, an optional fraction and offset (Z, +00:00, or Jira's +0000). Checked before pydantic,
# which would also read a bare number as a Unix time and a date alone as midnight.
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?")
_RETRY = Retry(0)  # only for its Retry-After reader, which also caps absurd waits (at six hours)


def parse_time(value: object, *, naive_is_utc: bool = False) -> datetime | None:
    """An ISO-8601 date-time as an aware UTC datetime; None for anything else.

    A time without an offset is None too, unless `naive_is_utc`: only a source that documents UTC may be read so.
    """
    if not isinstance(value, str) or not (match := _ISO_DATETIME.fullmatch(value)):
        return None
    if match["offset"] is None:
        if not naive_is_utc:
            return None
        value += "Z"
    try:
        return _AWARE.validate_python(value).astimezone(UTC)
    except (ValidationError, OverflowError):  # month 13; or year 1 moved before datetime.min by its offset
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header, given as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3);
    0 for a date already past, None when absent or unreadable."""
    if not value:
        return None
    try:
        return float(_RETRY.parse_retry_after(value))
    except InvalidHeader:
        return None


def next_link(header: str | None) -> str | None:
    """The `rel="next"` target of a `Link` header (RFC 8288: rels in any order, several per link, other params)."""
    for link in parse_header_links(header or ""):
        if "next" in link.get("rel", "").lower().split():
            return link["url"]
    return None
