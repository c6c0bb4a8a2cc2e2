"""Alembic from code: upgrade to head, and whether the database is at head (for /readyz)."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from alembic import command
from app import shipped


def alembic_config(database_url: str) -> Config:
    """Configured in code, not from alembic.ini (which an installed package does not have; it stays for developers
    running `alembic revision` in the repository)."""
    config = Config()
    config.set_main_option("script_location", str(shipped.migrations()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's revision, read directly: /readyz asks often, and Alembic's context logs on every call."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
