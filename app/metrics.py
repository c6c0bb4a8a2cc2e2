"""Delivery metrics over a window: incidents by severity, MTTA/MTTR/MTTD percentiles, recurrence, action and
postmortem progress. Every figure carries the number of incidents, postmortems or actions it is computed from."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Float, case, cast, distinct, extract, func, literal
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.actions import Action
from app.db import is_postgres
from app.findings import Finding
from app.incidents import Incident
from app.postmortems import UNPUBLISHED, Postmortem
from app.vocabulary import CLOSED, ActionStatus, IncidentStatus


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
    """All figures for one window; a handful of queries, each selecting only the columns it needs.

    - incidents, MTTA, MTTR, MTTD and recurrences: incidents triggered in [since, until) of that service/team.
      MTTA = first acknowledge - trigger (incidents never acknowledged are left out); MTTR = last resolve -
      trigger, for incidents resolved now (a reopened incident counts until its final resolve, and one open
      again is left out); MTTD = trigger - the postmortem's impact_start, where the postmortem records one.
      Negative deltas (clock skew between sources, or an alert that fired before impact) count as 0.
    - postmortems and recurrence by category: postmortems covering at least one incident in the window.
    - actions: created in [since, until), of postmortems covering an incident of that service/team.
    """
    window = Window(since, until, service, team, today)
    mtta, mttr, mttd = _incident_durations(session, window)
    return Summary(
        window=window,
        incidents=_incident_counts(session, window),
        mtta=mtta,
        mttr=mttr,
        mttd=mttd,
        recurrence=_recurrence(session, window),
        actions=_actions(session, window),
        postmortems=_postmortems(session, window),
    )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else max((end - start).total_seconds(), 0.0)


def _duration_stats(
    session: Session, pairs: Sequence[tuple[Any, Any]], build: Callable[[list[Any]], Any]
) -> list[Durations]:
    """Durations of end - start for each (start, end) pair of columns; `build` makes the query selecting them.

    PostgreSQL aggregates in SQL (percentile_cont is the same linear interpolation as `quantile`), so no row
    leaves the database; SQLite hands over the timestamps and Python does the arithmetic.
    """
    if not is_postgres(session):
        rows = session.execute(build([column for pair in pairs for column in pair])).all()
        deltas = [[_seconds(row[2 * i], row[2 * i + 1]) for row in rows] for i in range(len(pairs))]
        return [durations([d for d in column if d is not None]) for column in deltas]
    # EXTRACT gives numeric seconds, exact to the microsecond; negative deltas count as 0, as in _seconds.
    # (Not GREATEST(x, 0): PostgreSQL's ignores NULL, which would turn "not measurable" into 0.)
    differences = [cast(extract("epoch", end - start), Float) for start, end in pairs]
    seconds = [case((delta < 0, 0.0), else_=delta).label(f"d{i}") for i, delta in enumerate(differences)]
    sub = build(seconds).subquery()
    # One sort per column gives both quantiles: percentile_cont over an array of fractions.
    quantiles = postgresql.array([literal(0.5, Float), literal(0.9, Float)])
    stats: list[Any] = []
    for i in range(len(pairs)):
        column = sub.c[f"d{i}"]
        stats += [func.count(column), func.percentile_cont(quantiles).within_group(column), func.avg(column)]
    row = session.execute(sa_select(*stats)).one()
    result = []
    for i in range(len(pairs)):
        count, quantiles_found, mean = row[3 * i : 3 * i + 3]
        if not count:
            result.append(Durations(0, None, None, None))
            continue
        median, p90 = quantiles_found
        result.append(Durations(int(count), round(median, 6), round(p90, 6), round(mean, 6)))
    return result


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


def _incident_counts(session: Session, window: Window) -> IncidentFigures:
    query = _where_incident(select(Incident.severity, func.count()), window).group_by(Incident.severity)
    by_severity = {severity: int(count) for severity, count in session.exec(query).all()}
    return IncidentFigures(sum(by_severity.values()), dict(sorted(by_severity.items())))


def _incident_durations(session: Session, window: Window) -> list[Durations]:
    """MTTA, MTTR and MTTD of the incidents in the window."""
    triggered, acknowledged = col(Incident.triggered_at), col(Incident.acknowledged_at)
    resolved = case((col(Incident.status) == IncidentStatus.RESOLVED, col(Incident.resolved_at)))
    impact_start = col(Postmortem.impact_start)

    def build(columns: list[Any]) -> Any:
        # SQLModel's select() is typed for at most four columns; SQLAlchemy's takes any number.
        query = sa_select(*columns).select_from(Incident)
        query = query.outerjoin(Postmortem, col(Incident.postmortem_id) == col(Postmortem.id))
        return _where_incident(query, window)

    return _duration_stats(
        session, [(triggered, acknowledged), (triggered, resolved), (impact_start, triggered)], build
    )


def _postmortems_in_window(window: Window) -> Any:
    query = select(Incident.postmortem_id).where(col(Incident.postmortem_id).is_not(None))
    return _where_incident(query, window)


def _recurred_postmortems(window: Window | None) -> Any:
    """Ids of postmortems whose incident recurred (the recurring incident in the window, when one is given)."""
    recurring, earlier = aliased(Incident), aliased(Incident)
    query = select(earlier.postmortem_id).join(recurring, col(recurring.recurrence_of) == col(earlier.id))
    return query if window is None else _where_incident(query, window, recurring)


def _recurrence(session: Session, window: Window) -> RecurrenceFigures:
    """Each recurring incident in the window is classified by the earlier postmortem's actions at its trigger time.

    "After all actions done": the earlier postmortem has actions, each done or won't-do with closed_at at or
    before the recurrence was triggered. "With actions open": any action still open at that time (a closed
    action without closed_at counts as open: when it closed is unknown). "Without actions": none recorded.
    """
    recurring, earlier = aliased(Incident), aliased(Incident)
    closed_in_time = col(Action.status).in_(CLOSED) & col(Action.closed_at).is_not(None)
    per_postmortem = (
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
    query = (
        select(
            recurring.triggered_at, per_postmortem.c.actions, per_postmortem.c.unclosed, per_postmortem.c.last_closed
        )
        .join(earlier, col(recurring.recurrence_of) == col(earlier.id))
        .outerjoin(per_postmortem, per_postmortem.c.postmortem_id == earlier.postmortem_id)
    )
    rows = session.exec(_where_incident(query, window, recurring)).all()
    after_done = with_open = without = 0
    for triggered, actions, unclosed, last_closed in rows:
        if not actions:
            without += 1
        elif not unclosed and triggered is not None and last_closed is not None and last_closed <= triggered:
            after_done += 1
        else:
            with_open += 1
    return RecurrenceFigures(len(rows), after_done, with_open, without, _recurrence_by_category(session, window))


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


def _actions(session: Session, window: Window) -> ActionFigures:
    """Counts by status and overdue (due before today, not done or won't-do) in one GROUP BY.

    Completion rate = done / (all - won't do): a won't-do is a decision, neither completed nor outstanding work.
    Median days to done: closed_at - created_at of done actions, in days (closed_at unknown: left out).
    """
    overdue = func.sum(case((col(Action.due_date) < window.today, 1), else_=0))
    query = _where_action(select(Action.status, func.count(), overdue), window).group_by(Action.status)
    by_status: Counter[str] = Counter()
    late = 0
    for status, count, overdue_count in session.exec(query).all():
        by_status[status] += int(count)
        late += int(overdue_count or 0) if status not in CLOSED else 0
    total = sum(by_status.values())
    measured = total - by_status[ActionStatus.WONT_DO]
    completion = Ratio(by_status[ActionStatus.DONE] / measured if measured else None, measured)
    created, closed = col(Action.created_at), col(Action.closed_at)

    def build(columns: list[Any]) -> Any:
        return _where_action(sa_select(*columns), window).where(Action.status == ActionStatus.DONE, closed.is_not(None))

    (to_done,) = _duration_stats(session, [(created, closed)], build)
    median = None if to_done.median_seconds is None else round(to_done.median_seconds / 86400, 6)
    return ActionFigures(
        count=total,
        **{status: by_status[status] for status in ActionStatus},
        overdue=late,
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


def _postmortems(session: Session, window: Window) -> PostmortemFigures:
    """Published on time: published_at (UTC date) on or before review_due; no review_due, never on time.

    Overdue: still draft or in review after its review due date.
    """
    query = select(col(Postmortem.status), col(Postmortem.published_at), col(Postmortem.review_due)).where(
        col(Postmortem.id).in_(_postmortems_in_window(window))
    )
    rows = session.exec(query).all()
    published = [(at, due) for _status, at, due in rows if at is not None]
    on_time = sum(1 for at, due in published if due is not None and at.date() <= due)
    overdue = sum(1 for status, _at, due in rows if due is not None and due < window.today and status in UNPUBLISHED)
    return PostmortemFigures(len(rows), len(rows), len(published), on_time, overdue)
