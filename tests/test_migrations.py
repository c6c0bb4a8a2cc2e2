"""One Alembic history for both databases: it upgrades an empty database to head and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session

from alembic import command
from app import migrations, review, search
from app.db import make_engine, metadata
from app.postmortems import Postmortem
from app.search import in_models


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": in_models})
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


def test_a_postmortem_published_before_the_review_gate_stays_published(database_url: str) -> None:
    """The review's migrations (0030 on) only add columns: existing rows load and keep their state (the shared test
    database is taken back to the revision before 0030 for this, then up to head again)."""
    config = migrations.alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0030").down_revision
    command.downgrade(config, str(before))
    try:
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO postmortem (id, key, title, status, version, created_at, updated_at, published_at) "
                    "VALUES (7, 'PM-7', 'Old one', 'published', 3, :at, :at, :at)"
                ),
                {"at": "2026-01-01 00:00:00"},
            )
        engine.dispose()
    finally:
        migrations.upgrade(database_url)
    engine = make_engine(database_url)
    with Session(engine) as session:
        old = session.get(Postmortem, 7)
        assert old is not None and old.status == "published" and old.participants == []
        assert [m.code for m in review.of(session, old).missing][:2] == ["summary", "impact"]
        # Rows written before the search index existed are indexed by its migration (0041).
        hits, _ = search.search(session, "old", type_="postmortem", offset=0, limit=10)
        assert [(h.type, h.id) for h in hits] == [("postmortem", 7)]
    engine.dispose()
