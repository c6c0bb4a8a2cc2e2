"""Fixtures of the reliability suite (the database ones, `database_url` and `postgres_url`, are tests/conftest.py's)."""

from __future__ import annotations

import pytest

from tests.conftest import _truncate


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    """The session's PostgreSQL database, emptied: for the tests that only make sense on PostgreSQL."""
    _truncate(postgres_url)
    return postgres_url
