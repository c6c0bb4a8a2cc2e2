"""The shared readers of wire formats, on the odd forms the wire allows."""

from __future__ import annotations

import time
from email.utils import formatdate

from connectors.formats import next_link, retry_after_seconds


def test_retry_after_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 7 ") == 7.0
    later = retry_after_seconds(formatdate(time.time() + 90, usegmt=True))
    assert later is not None and 88 <= later <= 90  # the date has whole seconds
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past: go now, not never
    for garbage in (None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2015"):
        assert retry_after_seconds(garbage) is None, garbage


def test_next_link_among_several_rels_in_any_order_with_extra_params() -> None:
    base = "https://api.github.com/repositories/1/issues?per_page=100&page="
    header = (
        f'<{base}5>; rel="last", <{base}1>; rel="first", '
        f'<{base}3>; type="application/json"; rel="next", <{base}1>; rel=prev'
    )
    assert next_link(header) == f"{base}3"
    assert next_link(f'<{base}2>; rel="next last"') == f"{base}2"  # several rels in one link
    assert next_link(f"<{base}2>; rel=NEXT") == f"{base}2"  # rel values are case-insensitive
    assert next_link(f'<{base}9>; rel="last", <{base}1>; rel="prev"') is None
    assert next_link(f'<{base}9>; rel="nextish"') is None
    assert next_link("") is None and next_link(None) is None
