"""SQL aggregates for the metrics passes, the same on both databases: duration quantiles (an aggregate function of
our own on SQLite), counts under a condition, one labelled row per pass, and passes run at once in one snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, case, func, literal, text
from sqlalchemy.dialects import postgresql
from sqlmodel import Session

from app.db import is_postgres

if TYPE_CHECKING:
    from app.metrics import Durations

_POOL = ThreadPoolExecutor(max_workers=5, thread_name_prefix="aftermath-metrics")


def run_passes(session: Session, window: Any, passes: Sequence[Callable[[Session, Any], Any]]) -> list[Any]:
    """Each pass's result. On PostgreSQL the passes run at once, each on a connection of its own that imports this
    session's snapshot, so they see exactly the data one query would (each pass is CPU work in its own server
    process; one after the other they took the sum of their times). SQLite: one after the other, in this session."""
    if not is_postgres(session) or len(passes) < 2:
        return [run(session, window) for run in passes]
    # Valid while this session's transaction stays open, which it does until the caller is done with the summary.
    snapshot = session.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    engine = session.get_bind()

    def in_snapshot(run: Callable[[Session, Any], Any]) -> Any:
        with Session(engine) as own:
            own.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            own.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))  # an id PostgreSQL made, not user input
            return run(own, window)

    return list(_POOL.map(in_snapshot, passes))


def one_row(session: Session, query: Any) -> dict[str, Any]:
    """The labelled aggregates of `query` (one row) by label."""
    return dict(session.execute(query).one()._mapping)


def count_if(condition: Any) -> Any:
    return func.count().filter(condition)


def duration_columns(session: Session, name: str, start: Any, end: Any) -> list[Any]:
    """Labelled aggregates for the durations end - start (negative ones count as 0; a NULL end or start leaves the
    row out), read back by `durations_from`.

    PostgreSQL: count, percentile_cont over an array of fractions (one sort gives both quantiles; the same linear
    interpolation as `quantile`) and avg. SQLite has no ordered-set aggregates: an aggregate function of our own
    (`_SQLiteDurations`) takes the stored timestamps and does the exact arithmetic `durations` does.
    """
    if not is_postgres(session):
        _register_sqlite_aggregates(session)
        return [func.aftermath_durations(start, end).label(name)]
    # date_part is double precision (EXTRACT is numeric since PostgreSQL 14, much slower to aggregate); the figures
    # are rounded to the microsecond. Negative deltas are told by comparing the times, which costs less
    # than computing the difference twice. (Not GREATEST(x, 0): PostgreSQL's ignores NULL, which would turn "not
    # measurable" into 0.)
    seconds = case((end < start, 0.0), else_=func.date_part("epoch", end - start))
    quantiles = postgresql.array([literal(0.5, Float), literal(0.9, Float)])
    return [
        func.count(seconds).label(f"{name}_count"),
        func.percentile_cont(quantiles).within_group(seconds).label(f"{name}_quantiles"),
        func.avg(seconds).label(f"{name}_mean"),
    ]


def durations_from(row: dict[str, Any], name: str) -> Durations:
    found: list[Any]
    if name in row:  # SQLite: the aggregate's JSON, or NULL over no rows at all
        found = json.loads(row[name]) if row[name] else [0, None, None, None]
    else:
        quantiles = row[f"{name}_quantiles"] or [None, None]
        found = [row[f"{name}_count"], *quantiles, row[f"{name}_mean"]]
    from app.metrics import Durations

    count, median, p90, mean = found
    if not count:
        return Durations(0, None, None, None)
    return Durations(int(count), round(float(median), 6), round(float(p90), 6), round(float(mean), 6))


class _SQLiteDurations:
    """SQLite aggregate aftermath_durations(start, end): [count, median, p90, mean] of end - start, as JSON."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def step(self, start: str | None, end: str | None) -> None:
        if start is not None and end is not None:
            delta = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            self.seconds.append(max(delta, 0.0))

    def finalize(self) -> str:
        from app.metrics import durations  # the same arithmetic the Python side uses

        found = durations(self.seconds)
        return json.dumps([found.count, found.median_seconds, found.p90_seconds, found.mean_seconds])


def _register_sqlite_aggregates(session: Session) -> None:
    driver = session.connection().connection.driver_connection
    driver.create_aggregate("aftermath_durations", 2, _SQLiteDurations)  # type: ignore[union-attr]
