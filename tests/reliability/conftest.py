"""Fixtures of the reliability suite (the database ones, `database_url` and `postgres_url`, are tests/conftest.py's)."""

from __future__ import annotations

import pytest

from tests.conftest import _truncate
from tests.fakes import fake_github, fake_jira


@pytest.fixture(autouse=True)
def fakes_answer_without_nagle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes write an answer's head and body separately; with Nagle on, each answer then waits ~40 ms for the
    client's delayed ACK, which turns 500 filings into half a minute of sleeping. Real trackers do not do that."""
    monkeypatch.setattr(fake_jira._Handler, "disable_nagle_algorithm", True, raising=False)
    monkeypatch.setattr(fake_github._Handler, "disable_nagle_algorithm", True, raising=False)


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied: for the tests that only make sense on PostgreSQL."""
    _truncate(postgres_url)
    return postgres_url
