"""Delivery metrics over a window: incidents by severity, MTTA/MTTR/MTTD percentiles, recurrence, action and
postmortem progress. Every figure carries the number of incidents, postmortems or actions it is computed from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, case, cast, distinct, extract, func, literal
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.actions import Action
from app.db import is_postgres
from app.findings import Finding
from app.incidents import Incident
from app.postmortems import UNPUBLISHED, Postmortem
from app.vocabulary import CLOSED, ActionStatus, IncidentStatus, Severity


@dataclass(frozen=True)
class Window:
    """Incidents count when `since <= triggered_at < until` (either bound optional) and service/team match."""

    since: datetime | None
    until: datetime | None
    service: str | None
    team: str | None
    today: date  # "overdue" means due before this date


@dataclass(frozen=True)
class Durations:
    count: int  # incidents the figures are computed from; the figures are None when it is 0
    median_seconds: float | None
    p90_seconds: float | None
    mean_seconds: float | None


@dataclass(frozen=True)
class Ratio:
    value: float | None
    count: int


@dataclass(frozen=True)
class IncidentFigures:
    count: int
    by_severity: dict[str, int]


@dataclass(frozen=True)
class CategoryRecurrence:
    postmortems: int
    recurred: int
    rate: float | None


@dataclass(frozen=True)
class RecurrenceFigures:
    count: int  # recurring incidents in the window
    recurred_after_all_actions_done: int
    recurred_with_actions_open: int
    recurred_without_actions: int
    by_category: dict[str, CategoryRecurrence]


@dataclass(frozen=True)
class ActionFigures:
    count: int
    unfiled: int
    open: int
    in_progress: int
    done: int
    wont_do: int
    overdue: int
    completion_rate: Ratio
    median_days_to_done: Ratio


@dataclass(frozen=True)
class PostmortemFigures:
    count: int
    opened: int
    published: int
    published_on_time: int
    overdue: int


@dataclass(frozen=True)
class Summary:
    window: Window
    incidents: IncidentFigures
    mtta: Durations
    mttr: Durations
    mttd: Durations
    recurrence: RecurrenceFigures
    actions: ActionFigures
    postmortems: PostmortemFigures


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, Excel PERCENTILE.INC, Hyndman-Fan type 7).

    Sorted values v[0..n-1]: h = (n-1)·q, result v[⌊h⌋] + (h-⌊h⌋)·(v[⌊h⌋+1] - v[⌊h⌋]).
    The median is q = 0.5 (the mean of the two middle values when n is even); None for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def durations(seconds: Sequence[float]) -> Durations:
    if not seconds:
        return Durations(0, None, None, None)
    # Rounded to the microsecond, the resolution times are stored in, which also drops interpolation noise.
    median, p90 = quantile(seconds, 0.5), quantile(seconds, 0.9)
    assert median is not None and p90 is not None
    return Durations(len(seconds), round(median, 6), round(p90, 6), round(sum(seconds) / len(seconds), 6))


def summary(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    service: str | None = None,
    team: str | None = None,
    today: date,
) -> Summary:
    """All figures for one window, in one aggregate query per table (incidents, actions, postmortems, findings):
    each answers a single row of labelled figures, and no row of the table leaves the database.

    - incidents, MTTA, MTTR, MTTD and recurrences: incidents triggered in [since, until) of that service/team.
      MTTA = first acknowledge - trigger (incidents never acknowledged are left out); MTTR = last resolve -
      trigger, for incidents resolved now (a reopened incident counts until its final resolve, and one open
      again is left out); MTTD = trigger - the postmortem's impact_start, where the postmortem records one.
      Negative deltas (clock skew between sources, or an alert that fired before impact) count as 0.
    - postmortems and recurrence by category: postmortems covering at least one incident in the window.
    - actions: created in [since, until), of postmortems covering an incident of that service/team.

    A figure for another issue is one more labelled column in the pass over its table (see `_one_row`).
    """
    window = Window(since, until, service, team, today)
    incident_figures, mtta, mttr, mttd, recurrence = _incident_pass(session, window)
    return Summary(
        window=window,
        incidents=incident_figures,
        mtta=mtta,
        mttr=mttr,
        mttd=mttd,
        recurrence=replace(recurrence, by_category=_recurrence_by_category(session, window)),
        actions=_action_pass(session, window),
        postmortems=_postmortem_pass(session, window),
    )


def _one_row(session: Session, query: Any) -> dict[str, Any]:
    """The labelled aggregates of `query` (one row) by label."""
    return dict(session.execute(query).one()._mapping)


def _durations(session: Session, name: str, start: Any, end: Any) -> list[Any]:
    """Labelled aggregates for the durations end - start (negative ones count as 0; a NULL end or start leaves the
    row out), read back by `_durations_of`.

    PostgreSQL: count, percentile_cont over an array of fractions (one sort gives both quantiles; the same linear
    interpolation as `quantile`) and avg. SQLite has no ordered-set aggregates: an aggregate function of our own
    (`_SQLiteDurations`) takes the stored timestamps and does the exact arithmetic `durations` does.
    """
    if not is_postgres(session):
        _register_sqlite_aggregates(session)
        return [func.aftermath_durations(start, end).label(name)]
    # EXTRACT gives numeric seconds, exact to the microsecond. (Not GREATEST(x, 0): PostgreSQL's ignores NULL, which
    # would turn "not measurable" into 0.)
    delta = cast(extract("epoch", end - start), Float)
    seconds = case((delta < 0, 0.0), else_=delta)
    quantiles = postgresql.array([literal(0.5, Float), literal(0.9, Float)])
    return [
        func.count(seconds).label(f"{name}_count"),
        func.percentile_cont(quantiles).within_group(seconds).label(f"{name}_quantiles"),
        func.avg(seconds).label(f"{name}_mean"),
    ]


def _durations_of(row: dict[str, Any], name: str) -> Durations:
    if name in row:  # SQLite: the aggregate's JSON, or NULL over no rows at all
        count, median, p90, mean = json.loads(row[name]) if row[name] else (0, None, None, None)
    else:
        count, quantiles, mean = row[f"{name}_count"], row[f"{name}_quantiles"], row[f"{name}_mean"]
        median, p90 = quantiles if count else (None, None)
    if not count:
        return Durations(0, None, None, None)
    return Durations(int(count), round(median, 6), round(p90, 6), round(mean, 6))


class _SQLiteDurations:
    """SQLite aggregate aftermath_durations(start, end): [count, median, p90, mean] of end - start, as JSON."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def step(self, start: str | None, end: str | None) -> None:
        if start is not None and end is not None:
            delta = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
            self.seconds.append(max(delta, 0.0))

    def finalize(self) -> str:
        found = durations(self.seconds)
        return json.dumps([found.count, found.median_seconds, found.p90_seconds, found.mean_seconds])


def _register_sqlite_aggregates(session: Session) -> None:
    driver = session.connection().connection.driver_connection
    driver.create_aggregate("aftermath_durations", 2, _SQLiteDurations)  # type: ignore[union-attr]


def _where_incident(query: Any, window: Window, incident: Any = Incident) -> Any:
    if window.since is not None:
        query = query.where(incident.triggered_at >= window.since)
    if window.until is not None:
        query = query.where(incident.triggered_at < window.until)
    return _where_owner(query, window, incident)


def _where_owner(query: Any, window: Window, incident: Any = Incident) -> Any:
    if window.service is not None:
        query = query.where(incident.service == window.service)
    if window.team is not None:
        query = query.where(incident.team == window.team)
    return query


def _count_if(condition: Any) -> Any:
    return func.count(case((condition, 1)))


def _incident_pass(
    session: Session, window: Window
) -> tuple[IncidentFigures, Durations, Durations, Durations, RecurrenceFigures]:
    """Counts by severity, MTTA/MTTR/MTTD and the recurrence split, over the window's incidents, in one query.

    Each recurring incident is classified by the earlier postmortem's actions at its trigger time. "After all
    actions done": the earlier postmortem has actions, each done or won't-do with closed_at at or before the
    recurrence was triggered. "With actions open": any action still open at that time (a closed action without
    closed_at counts as open: when it closed is unknown). "Without actions": none recorded.
    """
    triggered, acknowledged = col(Incident.triggered_at), col(Incident.acknowledged_at)
    resolved = case((col(Incident.status) == IncidentStatus.RESOLVED, col(Incident.resolved_at)))
    earlier = aliased(Incident)
    per_postmortem = _earlier_actions(window)
    actions, unclosed, last_closed = per_postmortem.c.actions, per_postmortem.c.unclosed, per_postmortem.c.last_closed
    recurring = col(Incident.recurrence_of).is_not(None)
    all_done = (actions > 0) & (unclosed == 0) & triggered.is_not(None) & (last_closed <= triggered)
    columns = [
        func.count().label("incidents"),
        *(_count_if(col(Incident.severity) == severity).label(f"severity_{severity}") for severity in Severity),
        *_durations(session, "mtta", triggered, acknowledged),
        *_durations(session, "mttr", triggered, resolved),
        *_durations(session, "mttd", col(Postmortem.impact_start), triggered),
        _count_if(recurring).label("recurring"),
        _count_if(recurring & all_done).label("after_done"),
        _count_if(recurring & (func.coalesce(actions, 0) == 0)).label("without"),
    ]
    query = (
        sa_select(*columns)
        .select_from(Incident)
        .outerjoin(Postmortem, col(Incident.postmortem_id) == col(Postmortem.id))
        .outerjoin(earlier, col(Incident.recurrence_of) == earlier.id)
        .outerjoin(per_postmortem, per_postmortem.c.postmortem_id == earlier.postmortem_id)
    )
    row = _one_row(session, _where_incident(query, window))
    by_severity = {str(s): int(row[f"severity_{s}"]) for s in Severity if row[f"severity_{s}"]}
    count, after_done, without = int(row["recurring"]), int(row["after_done"]), int(row["without"])
    recurrence = RecurrenceFigures(count, after_done, count - after_done - without, without, {})
    return (
        IncidentFigures(int(row["incidents"]), dict(sorted(by_severity.items()))),
        _durations_of(row, "mtta"),
        _durations_of(row, "mttr"),
        _durations_of(row, "mttd"),
        recurrence,
    )


def _earlier_actions(window: Window) -> Any:
    """Per postmortem whose incident recurred in the window: its actions, those not closed in time, the last close."""
    closed_in_time = col(Action.status).in_(CLOSED) & col(Action.closed_at).is_not(None)
    return (
        select(
            col(Action.postmortem_id).label("postmortem_id"),
            func.count().label("actions"),
            func.sum(case((closed_in_time, 0), else_=1)).label("unclosed"),
            func.max(Action.closed_at).label("last_closed"),
        )
        .where(col(Action.postmortem_id).in_(_recurred_postmortems(window)))
        .group_by(col(Action.postmortem_id))
        .subquery()
    )


def _postmortems_in_window(window: Window) -> Any:
    query = select(Incident.postmortem_id).where(col(Incident.postmortem_id).is_not(None))
    return _where_incident(query, window)


def _recurred_postmortems(window: Window | None) -> Any:
    """Ids of postmortems whose incident recurred (the recurring incident in the window, when one is given)."""
    recurring, earlier = aliased(Incident), aliased(Incident)
    query = select(earlier.postmortem_id).join(recurring, col(recurring.recurrence_of) == col(earlier.id))
    return query if window is None else _where_incident(query, window, recurring)


def _recurrence_by_category(session: Session, window: Window) -> dict[str, CategoryRecurrence]:
    """Per finding category: of the window's postmortems with such a finding, how many saw an incident of theirs
    recur (an incident at any time, in or after the window, whose recurrence_of is one of their incidents)."""
    recurred = _recurred_postmortems(None)
    pm = col(Finding.postmortem_id)
    query = (
        select(Finding.category, func.count(distinct(pm)), func.count(distinct(case((pm.in_(recurred), pm)))))
        .where(pm.in_(_postmortems_in_window(window)), col(Finding.category).is_not(None))
        .group_by(Finding.category)
        .order_by(Finding.category)
    )
    return {
        category: CategoryRecurrence(total, hit, hit / total if total else None)
        for category, total, hit in session.exec(query).all()
        if category is not None
    }


def _action_pass(session: Session, window: Window) -> ActionFigures:
    """Counts by status, overdue (due before today, not done or won't-do), and days to done, in one query.

    Completion rate = done / (all - won't do): a won't-do is a decision, neither completed nor outstanding work.
    Median days to done: closed_at - created_at of done actions, in days (closed_at unknown: left out).
    """
    status, created, closed = col(Action.status), col(Action.created_at), col(Action.closed_at)
    done_closed = case(((status == ActionStatus.DONE) & closed.is_not(None), closed))
    columns = [
        *(_count_if(status == member).label(str(member)) for member in ActionStatus),
        _count_if(status.not_in(CLOSED) & (col(Action.due_date) < window.today)).label("overdue"),
        *_durations(session, "to_done", created, done_closed),
    ]
    row = _one_row(session, _where_action(sa_select(*columns).select_from(Action), window))
    by_status = {member: int(row[str(member)]) for member in ActionStatus}
    total = sum(by_status.values())
    measured = total - by_status[ActionStatus.WONT_DO]
    completion = Ratio(by_status[ActionStatus.DONE] / measured if measured else None, measured)
    to_done = _durations_of(row, "to_done")
    median = None if to_done.median_seconds is None else round(to_done.median_seconds / 86400, 6)
    return ActionFigures(
        count=total,
        **{str(member): n for member, n in by_status.items()},
        overdue=int(row["overdue"]),
        completion_rate=completion,
        median_days_to_done=Ratio(median, to_done.count),
    )


def _where_action(query: Any, window: Window) -> Any:
    if window.since is not None:
        query = query.where(col(Action.created_at) >= window.since)
    if window.until is not None:
        query = query.where(col(Action.created_at) < window.until)
    if window.service is not None or window.team is not None:
        owned = _where_owner(select(Incident.postmortem_id).where(col(Incident.postmortem_id).is_not(None)), window)
        query = query.where(col(Action.postmortem_id).in_(owned))
    return query


def _postmortem_pass(session: Session, window: Window) -> PostmortemFigures:
    """Published on time: published_at (UTC date) on or before review_due; no review_due, never on time.

    Overdue: still draft or in review after its review due date.
    """
    published, due = col(Postmortem.published_at), col(Postmortem.review_due)
    # The UTC date of a timestamp: PostgreSQL converts it (a session may have another time zone); SQLite keeps UTC text.
    published_on = cast(func.timezone("UTC", published), Date) if is_postgres(session) else func.date(published)
    columns = [
        func.count().label("count"),
        func.count(published).label("published"),
        _count_if(published.is_not(None) & due.is_not(None) & (published_on <= due)).label("on_time"),
        _count_if((due < window.today) & col(Postmortem.status).in_(UNPUBLISHED)).label("overdue"),
    ]
    query = sa_select(*columns).where(col(Postmortem.id).in_(_postmortems_in_window(window)))
    row = _one_row(session, query)
    count = int(row["count"])
    return PostmortemFigures(count, count, int(row["published"]), int(row["on_time"]), int(row["overdue"]))
