"""Response body of GET /api/v1/metrics/summary; every figure says how many incidents, postmortems or actions
it is computed from, and is null when that count is 0."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class WindowOut(BaseModel):
    since: datetime | None = Field(description="incidents triggered at or after this time")
    until: datetime | None = Field(description="incidents triggered before this time")
    service: str | None
    team: str | None
    today: date = Field(description="actions and postmortems due before this date are overdue")


class IncidentsOut(BaseModel):
    count: int
    by_severity: dict[str, int]


class DurationsOut(BaseModel):
    count: int = Field(description="incidents the figures are computed from")
    median_seconds: float | None
    p90_seconds: float | None = Field(description="linear interpolation between closest ranks")
    mean_seconds: float | None


class CategoryOut(BaseModel):
    postmortems: int = Field(description="postmortems in the window with a finding of this category")
    recurred: int = Field(description="of those, how many had an incident recur")
    rate: float | None


class RecurrenceOut(BaseModel):
    count: int = Field(description="recurring incidents triggered in the window")
    recurred_after_all_actions_done: int = Field(
        description="the earlier postmortem's actions were all done or won't do before the recurrence"
    )
    recurred_with_actions_open: int
    recurred_without_actions: int = Field(description="the earlier postmortem had no actions")
    by_category: dict[str, CategoryOut]


class RatioOut(BaseModel):
    value: float | None
    count: int


class ActionsOut(BaseModel):
    count: int = Field(description="actions created in the window")
    unfiled: int
    open: int
    in_progress: int
    done: int
    wont_do: int
    overdue: int = Field(description="due before today and neither done nor won't do")
    completion_rate: RatioOut = Field(description="done / (actions - won't do); count is that denominator")
    median_days_to_done: RatioOut = Field(description="closed_at - created_at of done actions, in days")


class PostmortemsOut(BaseModel):
    count: int = Field(description="postmortems covering an incident in the window")
    opened: int
    published: int
    published_on_time: int = Field(description="published on or before the review due date")
    overdue: int = Field(description="still draft or in review after the review due date")


class OutcomesOut(BaseModel):
    pending: int = Field(description="done, outcome not recorded yet")
    verified: int = Field(description="an outcome recorded by a person: held + failed")
    held: int
    failed: int
    recurred: int = Field(description="the failure came back before the fix was verified as held")
    held_rate: RatioOut = Field(description="held / (held + failed + recurred); count is that denominator")


class EffectivenessOut(BaseModel):
    overall: OutcomesOut
    by_kind: dict[str, OutcomesOut] = Field(description="by action kind")
    by_control: dict[str, OutcomesOut] = Field(description="by preventive control (actions naming one)")


class FollowThroughOut(BaseModel):
    within_30_days: RatioOut = Field(
        description="done within 30 days of creation / actions whose outcome is decided (done in time, or 30 days "
        "old); won't do left out"
    )
    within_60_days: RatioOut
    within_90_days: RatioOut
    on_time: RatioOut = Field(
        description="done on or before the due date / actions with a due date that are done or past due"
    )


class SummaryOut(BaseModel):
    window: WindowOut
    incidents: IncidentsOut
    mtta: DurationsOut = Field(description="triggered -> first acknowledged; unacknowledged incidents left out")
    mttr: DurationsOut = Field(description="triggered -> final resolve of incidents resolved now")
    mttd: DurationsOut = Field(description="postmortem impact_start -> triggered, where impact_start is recorded")
    recurrence: RecurrenceOut
    actions: ActionsOut
    postmortems: PostmortemsOut
    effectiveness: EffectivenessOut = Field(description="whether the fixes of the window's actions worked")
    follow_through: FollowThroughOut
