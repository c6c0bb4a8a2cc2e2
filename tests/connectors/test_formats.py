"""The shared readers of wire formats, on the odd forms the wire allows."""

from __future__ import annotations

import time
from email.utils import formatdate

from connectors.formats import retry_after_seconds


def test_retry_after_as_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(" 7 ") == 7.0
    later = retry_after_seconds(formatdate(time.time() + 90, usegmt=True))
    assert later is not None and 88 <= later <= 90  # the date has whole seconds
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past: go now, not never
    for garbage in (None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2015"):
        assert retry_after_seconds(garbage) is None, garbage
