"""Shared fixtures: every database-backed test runs on SQLite and on PostgreSQL, each from a migrated schema."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app import migrations, tokens
from app.api.main import create_app
from app.context import Context, build_context
from app.db import metadata
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("AFTERMATH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("AFTERMATH_TEST_REQUIRE_POSTGRES") == "1"
WRITE_TOKEN, READ_TOKEN = "test-write-token", "test-reader-token"


def _postgres_up() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


PG_UP = _postgres_up()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.db"
    migrations.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not PG_UP:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required but not reachable at {PG_ADMIN}")
        pytest.skip("PostgreSQL not reachable (set AFTERMATH_TEST_REQUIRE_POSTGRES=1 to make this fail)")
    name = f"aftermath_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    migrations.upgrade(url)
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "aftermath.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate(url)
    return url


def _truncate(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    # The search index is written by triggers, which TRUNCATE does not fire: emptied with the tables it indexes.
    names = ", ".join([*(f'"{t.name}"' for t in metadata.sorted_tables), "search_document"])
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_url": "http://aftermath.test",
        "api_tokens": [f"writer={WRITE_TOKEN}", f"reader={READ_TOKEN}:read"],
        "pagerduty_secrets": ["pd-secret-old", "pd-secret-new"],
        "opsgenie_token": "og-token",
        "mappings": ROOT / "mappings",
        "worker": "off",
        "poll_interval": 3600,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def context(database_url: str) -> Iterator[Context]:
    ctx = build_context(make_settings(database_url))
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def client(context: Context) -> Iterator[TestClient]:
    with TestClient(create_app(context, embedded_worker=False)) as test_client:
        yield test_client


WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
__all__ = ["READ", "WRITE", "make_settings", "tokens"]
