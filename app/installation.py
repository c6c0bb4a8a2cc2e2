"""This installation's identity: one id, made once per database, that makes the keys Aftermath writes into tracker
issues unique to it (two installations, or one whose database was reset, may file into the same project)."""

from __future__ import annotations

import uuid
import weakref

from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, select

from app.db import insert_ignoring_conflict

_KNOWN: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


class Installation(SQLModel, table=True):
    one: int = Field(default=1, primary_key=True)  # always 1: the table holds one row
    id: str = Field(max_length=32)


def installation_id(session: Session) -> str:
    """The id, created on first use; processes racing to create it all end up with the one that was inserted."""
    engine = session.get_bind()
    if isinstance(engine, Engine) and engine in _KNOWN:
        return _KNOWN[engine]
    found = session.exec(select(Installation.id)).first()
    if found is None:
        insert_ignoring_conflict(session, Installation, {"one": 1, "id": uuid.uuid4().hex}, ["one"])
        found = session.exec(select(Installation.id)).one()
    if isinstance(engine, Engine):
        _KNOWN[engine] = found
    return found


def action_key(installation: str, action_id: int) -> str:
    """The key that marks an action's tracker issue (label, body marker): another installation's action 7 filing into
    the same project, or this one after a database reset, has another, so a lookup never adopts (and rewrites) the
    other's issue. Actions filed before keys named their installation keep `aftermath-action-<id>`."""
    return f"aftermath-{installation[:12]}-action-{action_id}"
