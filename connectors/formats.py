"""Readers for the wire formats several connectors share: `Retry-After` and `Link` headers.

Each answers None for a value it cannot read, so that a tracker's odd answer degrades to "unknown", never a crash.
"""

from __future__ import annotations

from requests.utils import parse_header_links
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

_RETRY = Retry(0)  # only for its Retry-After reader, which also caps absurd waits (at six hours)


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
