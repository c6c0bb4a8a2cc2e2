"""Engine and sessions for SQLite (embedded default) and PostgreSQL, and the shared table metadata."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import JSON, Engine, MetaData, create_engine, event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, SQLModel
from sqlmodel.sql.sqltypes import AutoString

# Stable constraint names so Alembic autogenerate and both databases agree.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata
T = TypeVar("T", bound=SQLModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive text, so re-attach UTC on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if dialect.name != "sqlite" else value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EnumText(TypeDecorator[StrEnum]):
    """A StrEnum kept as its text (a VARCHAR, not a database enum: adding a member needs no migration), read back as
    the member."""

    impl = AutoString
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length=length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum(value)


class PydanticJSON(TypeDecorator[Any]):
    """A typed value (a pydantic model or union) kept as JSON: dumped on write, validated again on read."""

    impl = JSON
    cache_ok = True

    def __init__(self, adapter: TypeAdapter[Any]) -> None:
        super().__init__()
        self.adapter = adapter

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return None if value is None else self.adapter.dump_python(value, mode="json")

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else self.adapter.validate_python(value)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs = {"pool_size": 10, "max_overflow": 20, **kwargs}
    # No automatic server-side prepared statements: psycopg prepares a statement once it has run 5 times, keeping
    # 100 per connection, and a batched INSERT has a different text for every batch size, so the group commit kept
    # preparing and deallocating; that cost several times the insert itself. Planning these queries is cheap.
    connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
    return create_engine(url, connect_args=connect_args, **{"pool_pre_ping": True, **kwargs})


# One lock per SQLite engine: writers of this process queue on it, and are handed the turn the moment the previous
# writer commits, instead of polling SQLite's busy handler, which sleeps up to 100 ms between tries (a webhook
# group commit waiting behind the embedded worker's transaction used to lose most of its time there).
_SQLITE_WRITE_TURN: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def _configure_sqlite(engine: Engine) -> None:
    _SQLITE_WRITE_TURN[engine] = threading.RLock()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then writes can fail
        # with "database is locked" when another writer got there first, instead of waiting its turn.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def lock_for_chain(session: Session, name: str) -> None:
    """Serialize writers of one chain (ledger hashes, key numbering) for the rest of the transaction."""
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    # SQLite: BEGIN IMMEDIATE already made this transaction the only writer.


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error. Domain code never commits by itself."""
    with _SQLITE_WRITE_TURN.get(engine) or nullcontext(), Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_ignoring_conflict(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> Any:
    """INSERT … ON CONFLICT (keys) DO NOTHING on either database; returns the statement's result."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    stmt = insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    if "id" in table.__table__.c:
        return session.execute(stmt.returning(table.__table__.c.id))
    return session.execute(stmt)


def attach_inserted(session: Session, model: type[T], values: dict[str, Any]) -> T:
    """The ORM object of a row this transaction has just inserted with `values` (its id included), attached to the
    session as if read back: later changes to it are flushed as UPDATEs. SQLModel's constructor validates every
    field, which costs more than the INSERT itself; this fills the object's state directly."""
    mapper = sa_inspect(model)
    obj = mapper.class_manager.new_instance()
    state = instance_dict(obj)
    for attribute in mapper.column_attrs:
        key = attribute.key
        state[key] = values[key] if key in values else model.model_fields[key].get_default(call_default_factory=True)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj  # type: ignore[no-any-return]


def page(session: Session, query: Any, id_column: Any, after: int | None, limit: int) -> tuple[list[Any], str | None]:
    """Keyset pagination by id: one page of rows and the cursor of the next page (None on the last)."""
    if after is not None:
        query = query.where(id_column > after)
    rows = list(session.exec(query.order_by(id_column).limit(limit + 1)).all())
    if len(rows) > limit:
        return rows[:limit], str(rows[limit - 1].id)
    return rows, None
