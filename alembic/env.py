"""Alembic environment: one history for SQLite and PostgreSQL, driven from the metadata of app.tables."""

from __future__ import annotations

from sqlalchemy import pool

import app.tables  # noqa: F401  (registers every table on the metadata)
from alembic import context
from app.db import make_engine, metadata
from app.search import in_models  # the search index is the triggers', not the models'

config = context.config


url = config.get_main_option("sqlalchemy.url") or "sqlite:///./aftermath.db"


def run_offline() -> None:
    context.configure(
        url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True, include_name=in_models
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things in place
            compare_type=True,
            include_name=in_models,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
