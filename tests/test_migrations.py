"""One Alembic history for both databases: it upgrades an empty database to head and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app import migrations
from app.db import make_engine, metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == [], diff


def test_upgrade_is_at_head_and_idempotent(database_url: str) -> None:
    migrations.upgrade(database_url)  # already at head: a no-op, not an error
    engine = create_engine(database_url)
    assert migrations.current_revision(engine) == migrations.head_revision()
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"incident", "postmortem", "action", "ledger_entry", "job", "inbound_event"} <= tables
