"""The shared readers of ISO-8601 times, Retry-After and Link headers, on the odd forms the wire allows."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import formatdate

import pytest

from connectors.formats import next_link, parse_time, retry_after_seconds

MOMENT = datetime(2021, 1, 18, 23, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-01-18T23:45:00Z", MOMENT),  # GitHub
        ("2021-01-18T23:45:00z", MOMENT),
        ("2021-01-18T23:45:00+00:00", MOMENT),
        ("2021-01-18T23:45:00.000+0000", MOMENT),  # Jira: no colon in the offset
        ("2021-01-19T01:15:00.000+0130", MOMENT),
        ("2021-01-18T18:45:00-05:00", MOMENT),
        ("2021-01-18 23:45:00Z", MOMENT),
        ("2021-01-18T23:45:00.5Z", MOMENT.replace(microsecond=500000)),
        ("2021-01-18T23:45:00.123456789Z", MOMENT.replace(microsecond=123456)),  # nanoseconds: cut, not rounded
    ],
)
def test_iso_times_come_back_aware_in_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected and parsed is not None and parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "1611013500",  # pydantic alone would read a number as a Unix time
        1611013500,
        "2021-01-18",  # and a date alone as midnight
        "2021-W03-1T23:45:00Z",
        "2021-13-18T23:45:00Z",
        "2021-02-30T23:45:00Z",
        "2021-01-18T23:45Z",
        "2021-01-18T23:45:00+05",
        " 2021-01-18T23:45:00Z",
        "0001-01-01T00:00:00+01:00",  # valid, but before datetime.min once moved to UTC
        "9999-12-31T23:59:59-01:00",
        ["2021-01-18T23:45:00Z"],
    ],
)
def test_garbage_times_are_none(value: object) -> None:
    assert parse_time(value) is None


def test_a_time_without_offset_is_read_as_utc_only_when_asked() -> None:
    assert parse_time("2021-01-18T23:45:00") is None
    assert parse_time("2021-01-18T23:45:00", naive_is_utc=True) == MOMENT


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
