"""Delivery metrics over a window: incidents by severity, MTTA/MTTR/MTTD percentiles, recurrence, action and
postmortem progress. Every figure carries the number of incidents, postmortems or actions it is computed from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Date, case, cast, func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.actions import Action
from app.aggregates import count_if, duration_columns, durations_from, one_row, run_passes
from app.db import is_postgres
from app.findings import Finding
from app.incidents import Incident
from app.postmortems import UNPUBLISHED, Postmortem
from app.vocabulary import CLOSED, ActionStatus, IncidentStatus, Severity, VerificationState

FOLLOW_THROUGH_DAYS = (30, 60, 90)


@dataclass(frozen=True, kw_only=True)
class Window:
    """Incidents count when `since <= triggered_at < until` (either bound optional) and service/team match; actions
    when created in [since, until), of postmortems covering an incident of that service/team."""

    today: date  # "overdue" means due before this date
    since: datetime | None = None
    until: datetime | None = None
    service: str | None = None
    team: str | None = None


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
class Outcomes:
    """Whether done actions' fixes worked. `verified`: an outcome recorded by a person (held or failed); `recurred`:
    the failure came back before anyone said the fix held. held_rate = held / (held + failed + recurred), its count
    that denominator: the fixes whose outcome is known."""

    pending: int
    verified: int
    held: int
    failed: int
    recurred: int
    held_rate: Ratio


@dataclass(frozen=True)
class Effectiveness:
    overall: Outcomes
    by_kind: dict[str, Outcomes]  # by action kind
    by_control: dict[str, Outcomes]  # by the preventive control it adds (actions naming none are left out)


@dataclass(frozen=True)
class FollowThrough:
    """Of the actions (won't do left out) whose outcome is decided, the share done within 30, 60 and 90 days of their
    creation, and the share done by their due date. See `follow_through` for when an outcome is decided."""

    within_30_days: Ratio
    within_60_days: Ratio
    within_90_days: Ratio
    on_time: Ratio


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
    effectiveness: Effectiveness
    follow_through: FollowThrough


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


def summary(session: Session, window: Window) -> Summary:
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
    passes = run_passes(
        session,
        window,
        [
            *(_incident_pass, _recurrence_pass, _recurrence_by_category, _action_pass, _postmortem_pass),
            *(effectiveness, follow_through),
        ],
    )
    (incident_figures, mtta, mttr, mttd), recurrence, by_category, actions, postmortems, *learning = passes
    effective, follow = learning
    return Summary(
        window=window,
        incidents=incident_figures,
        mtta=mtta,
        mttr=mttr,
        mttd=mttd,
        recurrence=replace(recurrence, by_category=by_category),
        actions=actions,
        postmortems=postmortems,
        effectiveness=effective,
        follow_through=follow,
    )


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


def _incident_columns(session: Session) -> list[Any]:
    """Counts by severity and MTTA/MTTR/MTTD as labelled aggregates over incidents (joined to their postmortem)."""
    triggered, acknowledged = col(Incident.triggered_at), col(Incident.acknowledged_at)
    resolved = case((col(Incident.status) == IncidentStatus.RESOLVED, col(Incident.resolved_at)))
    return [
        func.count().label("incidents"),
        *(count_if(col(Incident.severity) == severity).label(f"severity_{severity}") for severity in Severity),
        *duration_columns(session, "mtta", triggered, acknowledged),
        *duration_columns(session, "mttr", triggered, resolved),
        *duration_columns(session, "mttd", col(Postmortem.impact_start), triggered),
    ]


def _incident_figures(row: dict[str, Any]) -> tuple[IncidentFigures, Durations, Durations, Durations]:
    by_severity = {str(s): int(row[f"severity_{s}"]) for s in Severity if row[f"severity_{s}"]}
    return (
        IncidentFigures(int(row["incidents"]), dict(sorted(by_severity.items()))),
        durations_from(row, "mtta"),
        durations_from(row, "mttr"),
        durations_from(row, "mttd"),
    )


def _incident_pass(session: Session, window: Window) -> tuple[IncidentFigures, Durations, Durations, Durations]:
    """Counts by severity and MTTA/MTTR/MTTD over the window's incidents, in one query."""
    query = sa_select(*_incident_columns(session)).select_from(Incident)
    query = query.outerjoin(Postmortem, col(Incident.postmortem_id) == col(Postmortem.id))
    return _incident_figures(one_row(session, _where_incident(query, window)))


@dataclass(frozen=True)
class Month:
    """The incident figures of the incidents triggered in one calendar month (UTC)."""

    month: date  # its first day
    incidents: IncidentFigures
    mtta: Durations
    mttr: Durations
    mttd: Durations


def by_month(session: Session, window: Window) -> tuple[list[Month], dict[str, CategoryRecurrence]]:
    """What /insights draws: `summary`'s incident figures (the same aggregates, see there) per month of trigger time,
    oldest first, months without incidents left out; and `summary`'s recurrence by finding category over the window.
    The two passes run at once, as `summary`'s do."""
    months, by_category = run_passes(session, window, [_month_pass, _recurrence_by_category])
    return months, by_category


def _month_of(session: Session, moment: Any) -> Any:
    """The calendar month (UTC) of a timestamp column, as 'YYYY-MM'."""
    if is_postgres(session):
        return func.to_char(func.timezone("UTC", moment), "YYYY-MM").label("month")
    return func.strftime("%Y-%m", moment).label("month")


def _first_day(month: object) -> date:
    year, number = (int(part) for part in str(month).split("-"))
    return date(year, number, 1)


def _month_pass(session: Session, window: Window) -> list[Month]:
    """The incident pass grouped by month, in one query."""
    triggered = col(Incident.triggered_at)
    month = _month_of(session, triggered)
    query = sa_select(month, *_incident_columns(session)).select_from(Incident)
    query = query.outerjoin(Postmortem, col(Incident.postmortem_id) == col(Postmortem.id))
    query = _where_incident(query, window).where(triggered.is_not(None)).group_by(month).order_by(month)
    months = []
    for found in session.execute(query).all():
        row = dict(found._mapping)
        months.append(Month(_first_day(row["month"]), *_incident_figures(row)))
    return months


def _recurrence_pass(session: Session, window: Window) -> RecurrenceFigures:
    """The window's recurring incidents, each classified by the earlier postmortem's actions at its trigger time.

    "After all actions done": the earlier postmortem has actions, each done or won't-do with closed_at at or
    before the recurrence was triggered. "With actions open": any action still open at that time (a closed
    action without closed_at counts as open: when it closed is unknown). "Without actions": none recorded.
    Read from the recurring incidents only (few), each with its earlier postmortem's action figures.
    """
    recurring, earlier = aliased(Incident), aliased(Incident)
    of_earlier = col(Action.postmortem_id) == earlier.postmortem_id
    closed_in_time = col(Action.status).in_(CLOSED) & col(Action.closed_at).is_not(None)
    per_incident: Any = (
        select(
            col(recurring.triggered_at).label("triggered"),
            select(func.count()).where(of_earlier).scalar_subquery().label("actions"),
            select(func.count()).where(of_earlier, ~closed_in_time).scalar_subquery().label("unclosed"),
            select(func.max(Action.closed_at)).where(of_earlier).scalar_subquery().label("last_closed"),
        )
        .join(earlier, col(recurring.recurrence_of) == col(earlier.id))
        .where(col(recurring.recurrence_of).is_not(None))
    )
    sub = _where_incident(per_incident, window, recurring).subquery()
    all_done = (sub.c.actions > 0) & (sub.c.unclosed == 0) & (sub.c.last_closed <= sub.c.triggered)
    row = one_row(
        session,
        sa_select(
            func.count().label("recurring"),
            count_if(all_done).label("after_done"),
            count_if(sub.c.actions == 0).label("without"),
        ),
    )
    count, after_done, without = int(row["recurring"]), int(row["after_done"]), int(row["without"])
    return RecurrenceFigures(count, after_done, count - after_done - without, without, {})


def _postmortems_in_window(window: Window) -> Any:
    query = select(Incident.postmortem_id).where(col(Incident.postmortem_id).is_not(None))
    return _where_incident(query, window)


def _recurred_postmortems(window: Window | None) -> Any:
    """Ids of postmortems whose incident recurred (the recurring incident in the window, when one is given)."""
    recurring, earlier = aliased(Incident), aliased(Incident)
    query = select(earlier.postmortem_id).join(recurring, col(recurring.recurrence_of) == col(earlier.id))
    # Said outright, so the planner starts from the few recurring incidents instead of hashing them all.
    query = query.where(col(recurring.recurrence_of).is_not(None))
    return query if window is None else _where_incident(query, window, recurring)


def _recurrence_by_category(session: Session, window: Window) -> dict[str, CategoryRecurrence]:
    """Per finding category: of the window's postmortems with such a finding, how many saw an incident of theirs
    recur (an incident at any time, in or after the window, whose recurrence_of is one of their incidents).

    Distinct (category, postmortem) pairs first, then counted per category: two hash aggregates instead of the
    sort that COUNT(DISTINCT …) needs."""
    pm = col(Finding.postmortem_id)
    pairs = (
        select(col(Finding.category).label("category"), pm.label("postmortem_id"))
        .where(pm.in_(_postmortems_in_window(window)), col(Finding.category).is_not(None))
        .group_by(Finding.category, pm)
        .subquery()
    )
    recurred = pairs.c.postmortem_id.in_(_recurred_postmortems(None))
    query = sa_select(pairs.c.category, func.count(), count_if(recurred)).group_by(pairs.c.category)
    return {
        category: CategoryRecurrence(total, hit, hit / total if total else None)
        for category, total, hit in sorted(session.execute(query).all())
        if category is not None
    }


def _action_pass(session: Session, window: Window) -> ActionFigures:
    """Counts by status, overdue (due before today, not done or won't-do), and days to done, in one query.

    Completion rate = done / (all - won't do): a won't-do is a decision, neither completed nor outstanding work.
    Median days to done: closed_at - created_at of done actions, in days (closed_at unknown: left out).
    (Not GROUP BY status: an ordered-set aggregate makes PostgreSQL sort all the actions by status first.)
    """
    status, closed = col(Action.status), col(Action.closed_at)
    columns = [
        *(count_if(status == member).label(str(member)) for member in ActionStatus),
        count_if(status.not_in(CLOSED) & (col(Action.due_date) < window.today)).label("overdue"),
        *duration_columns(session, "to_done", col(Action.created_at), case((status == ActionStatus.DONE, closed))),
    ]
    row = one_row(session, _where_action(sa_select(*columns).select_from(Action), window))
    by_status = {member: int(row[str(member)]) for member in ActionStatus}
    total = sum(by_status.values())
    measured = total - by_status[ActionStatus.WONT_DO]
    completion = Ratio(by_status[ActionStatus.DONE] / measured if measured else None, measured)
    to_done = durations_from(row, "to_done")
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
        count_if(published.is_not(None) & due.is_not(None) & (published_on <= due)).label("on_time"),
        count_if((due < window.today) & col(Postmortem.status).in_(UNPUBLISHED)).label("overdue"),
    ]
    query = sa_select(*columns).where(col(Postmortem.id).in_(_postmortems_in_window(window)))
    row = one_row(session, query)
    count = int(row["count"])
    return PostmortemFigures(count, count, int(row["published"]), int(row["on_time"]), int(row["overdue"]))


def _outcomes(pending: int, held: int, failed: int, recurred: int) -> Outcomes:
    known = held + failed + recurred
    return Outcomes(pending, held + failed, held, failed, recurred, Ratio(held / known if known else None, known))


def effectiveness(session: Session, window: Window) -> Effectiveness:
    """Verification states of the window's actions, counted per (kind, control) in one query (a few dozen groups at
    most), then summed overall, per kind and per control."""
    state = col(Action.verification_state)
    states = (VerificationState.PENDING, VerificationState.HELD, VerificationState.FAILED, VerificationState.RECURRED)
    query = (
        sa_select(col(Action.kind), col(Action.control), *(count_if(state == member) for member in states))
        .where(state.is_not(None))
        .group_by(col(Action.kind), col(Action.control))
    )
    overall = [0, 0, 0, 0]
    by_kind: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_control: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for kind, control, *counts in session.execute(_where_action(query, window)).all():
        for sums in (overall, by_kind[str(kind)], *([by_control[str(control)]] if control is not None else [])):
            for i, n in enumerate(counts):
                sums[i] += int(n)
    return Effectiveness(
        overall=_outcomes(*overall),
        by_kind={kind: _outcomes(*counts) for kind, counts in sorted(by_kind.items())},
        by_control={control: _outcomes(*counts) for control, counts in sorted(by_control.items())},
    )


def follow_through(session: Session, window: Window) -> FollowThrough:
    """Follow-through over the window's actions that are not won't do, in one query (see `_follow_through_rows`)."""
    ((_, figures),) = _follow_through_rows(session, window, by_month=False)
    return figures


def follow_through_by_month(session: Session, window: Window) -> list[tuple[date, FollowThrough]]:
    """`follow_through` per calendar month (UTC) of the actions' creation, oldest first, in one grouped query;
    months without actions are left out."""
    rows = _follow_through_rows(session, window, by_month=True)
    return [(_first_day(month), figures) for month, figures in rows]


def _follow_through_rows(session: Session, window: Window, *, by_month: bool) -> list[tuple[object, FollowThrough]]:
    """Follow-through over the window's actions that are not won't do: one row, or one per month of creation.

    Within N days: done with closed_at - created_at <= N days, out of the actions whose outcome is decided: done
    within N days, or created N days or more before the start of `today` (UTC) — a younger action not done yet may
    still make it, so it counts in neither part. On time: done with the UTC date of closed_at on or before due_date,
    out of the actions with a due date that are done, or not done and due before today. A done action without
    closed_at counts in no figure (when it was done is unknown).
    """
    status, created, closed, due = (
        col(Action.status),
        col(Action.created_at),
        col(Action.closed_at),
        col(Action.due_date),
    )
    done = (status == ActionStatus.DONE) & closed.is_not(None)
    start_of_today = datetime.combine(window.today, time.min, UTC)
    columns: list[Any] = []
    for days in FOLLOW_THROUGH_DAYS:
        in_time = done & (_days_between(session, created, closed) <= days)
        old_enough = created <= start_of_today - timedelta(days=days)
        columns += [count_if(in_time).label(f"in_{days}"), count_if(in_time | old_enough).label(f"of_{days}")]
    closed_on = cast(func.timezone("UTC", closed), Date) if is_postgres(session) else func.date(closed)
    on_time = done & due.is_not(None) & (closed_on <= due)
    decided = due.is_not(None) & (done | ((status != ActionStatus.DONE) & (due < window.today)))
    columns += [count_if(on_time).label("on_time"), count_if(decided).label("due_decided")]
    unknown = (status == ActionStatus.DONE) & closed.is_(None)
    month = _month_of(session, created)
    query = sa_select(*([month] if by_month else []), *columns).select_from(Action)
    query = _where_action(query.where(status != ActionStatus.WONT_DO, ~unknown), window)
    if by_month:
        query = query.group_by(month).order_by(month)

    def figures(row: dict[str, Any]) -> FollowThrough:
        def share(part: str, whole: str) -> Ratio:
            n = int(row[whole])
            return Ratio(int(row[part]) / n if n else None, n)

        thirty, sixty, ninety = (share(f"in_{days}", f"of_{days}") for days in FOLLOW_THROUGH_DAYS)
        return FollowThrough(thirty, sixty, ninety, on_time=share("on_time", "due_decided"))

    rows = [dict(found._mapping) for found in session.execute(query).all()]
    return [(row.get("month"), figures(row)) for row in rows]


def _days_between(session: Session, start: Any, end: Any) -> Any:
    """end - start in days (fractional), on either database."""
    if is_postgres(session):
        return func.date_part("epoch", end - start) / 86400.0
    return func.julianday(end) - func.julianday(start)
