"""The insights charts, drawn on the server as SVG by pygal, each with the numbers it plots as a table (the text
alternative a screen reader, a printout or a spreadsheet paste needs)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import pygal
from markupsafe import Markup
from pygal.style import Style

from app.api.humane import minutes
from app.metrics import CategoryRecurrence, Durations, Effectiveness, FollowThrough, Month, Ratio
from app.vocabulary import Severity

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1d2733",
    foreground_strong="#1d2733",
    foreground_subtle="#5b6b7c",
    font_family="system-ui, sans-serif",
    colors=("#1f5f99", "#d9480f", "#2b8a3e", "#9c36b5", "#868e96", "#e8590c"),
    title_font_size=16,
    label_font_size=12,
    legend_font_size=13,
)

_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    summary: str  # one sentence a screen reader announces for the picture
    svg: Markup
    columns: Sequence[str]
    rows: Sequence[Sequence[str]]


def _svg(chart: pygal.graph.graph.Graph, chart_id: str) -> Markup:
    # js=[] in the config: pygal's default loads its tooltip script from a CDN, and the pages load nothing from
    # elsewhere. Its inline config script goes too: the pages need no script (and run none of a chart's).
    svg = _SCRIPT.sub("", chart.render(is_unicode=True, disable_xml_declaration=True))
    # The picture is labelled by the figure's caption and summary; the numbers are in the table after it.
    svg = svg.replace("<svg ", f'<svg role="img" aria-labelledby="{chart_id}-title {chart_id}-summary" ', 1)
    return Markup(svg)  # pygal builds the SVG as an element tree: labels and values arrive escaped


def _config(title: str, labels: Sequence[str]) -> dict[str, object]:
    return {
        "title": title,
        "style": STYLE,
        "js": [],
        "x_labels": list(labels),
        "legend_at_bottom": True,
        "width": 800,
        "height": 360,
        "x_label_rotation": 30 if len(labels) > 8 else 0,
        "show_minor_x_labels": True,
        "print_values": False,
        "no_data_text": "No incidents in this window",
    }


def _in_minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def durations(name: str, what: str, months: Sequence[Month], pick: str) -> Chart:
    """Median and p90 of one duration (mtta, mttr, mttd) per month, in minutes."""
    labels = [m.month.strftime("%b %Y") for m in months]
    figures: list[Durations] = [getattr(m, pick) for m in months]
    chart = pygal.Line(**_config(f"{name} per month (minutes)", labels), dots_size=4, allow_interruptions=True)
    chart.add("median", [_in_minutes(d.median_seconds) for d in figures])
    chart.add("p90", [_in_minutes(d.p90_seconds) for d in figures])
    rows = [
        [label, str(d.count), minutes(d.median_seconds), minutes(d.p90_seconds)]
        for label, d in zip(labels, figures, strict=True)
    ]
    last = next((d for d in reversed(figures) if d.count), None)
    summary = f"{name}, {what}, per month: median and 90th percentile." + (
        f" Latest month: median {minutes(last.median_seconds)}, p90 {minutes(last.p90_seconds)}." if last else ""
    )
    return Chart(pick, f"{name} per month", summary, _svg(chart, pick), ["month", "incidents", "median", "p90"], rows)


def severities(months: Sequence[Month]) -> Chart:
    labels = [m.month.strftime("%b %Y") for m in months]
    present = [str(s) for s in Severity if any(m.incidents.by_severity.get(str(s)) for m in months)]
    chart = pygal.StackedBar(**_config("Incidents by severity per month", labels))
    for severity in present:
        chart.add(severity, [m.incidents.by_severity.get(severity, 0) for m in months])
    rows = [
        [label, *(str(m.incidents.by_severity.get(s, 0)) for s in present), str(m.incidents.count)]
        for label, m in zip(labels, months, strict=True)
    ]
    total = sum(m.incidents.count for m in months)
    summary = f"Incidents per month, stacked by severity: {total} in {len(months)} month(s)."
    return Chart(
        "severity",
        "Incidents by severity per month",
        summary,
        _svg(chart, "severity"),
        ["month", *present, "all"],
        rows,
    )


def recurrences(by_category: dict[str, CategoryRecurrence]) -> Chart:
    labels = list(by_category)
    config = {**_config("Recurrence by finding category", labels), "no_data_text": "No categorised findings"}
    chart = pygal.HorizontalBar(**config)
    chart.add("postmortems", [c.postmortems for c in by_category.values()])
    chart.add("recurred", [c.recurred for c in by_category.values()])
    rows = [
        [name, str(c.postmortems), str(c.recurred), "—" if c.rate is None else f"{c.rate:.0%}"]
        for name, c in by_category.items()
    ]
    worst = max(by_category.items(), key=lambda item: (item[1].rate or 0, item[1].recurred), default=None)
    summary = "Per finding category: postmortems with such a finding, and how many of them saw their incident recur."
    if worst and worst[1].recurred:
        summary += f" Highest rate: {worst[0]}, {worst[1].recurred} of {worst[1].postmortems}."
    return Chart(
        "recurrence",
        "Recurrence by finding category",
        summary,
        _svg(chart, "recurrence"),
        ["category", "postmortems", "recurred", "rate"],
        rows,
    )


def _percent(ratio: Ratio) -> float | None:
    return None if ratio.value is None else round(ratio.value * 100, 1)


def _share(ratio: Ratio) -> str:
    return "—" if ratio.value is None else f"{ratio.value:.0%} of {ratio.count}"


def follow_through(months: Sequence[tuple[date, FollowThrough]]) -> Chart:
    """Per month of the actions' creation: the share done within 30, 60, 90 days, and on time."""
    labels = [month.strftime("%b %Y") for month, _ in months]
    config = {**_config("Follow-through per month of creation (%)", labels), "no_data_text": "No actions"}
    chart = pygal.Line(**config, dots_size=4, allow_interruptions=True, range=(0, 100))
    series = {
        "done within 30 days": [f.within_30_days for _, f in months],
        "within 60 days": [f.within_60_days for _, f in months],
        "within 90 days": [f.within_90_days for _, f in months],
        "on time": [f.on_time for _, f in months],
    }
    for name, ratios in series.items():
        chart.add(name, [_percent(r) for r in ratios])
    rows = [
        [label, _share(f.within_30_days), _share(f.within_60_days), _share(f.within_90_days), _share(f.on_time)]
        for label, (_, f) in zip(labels, months, strict=True)
    ]
    summary = "Of the actions created each month, the share done within 30, 60 and 90 days, and by their due date."
    if months:
        latest = months[-1][1]
        summary += f" Latest month: {_share(latest.within_30_days)} within 30 days, {_share(latest.on_time)} on time."
    return Chart(
        "follow-through",
        "Follow-through and on-time rate per month",
        summary,
        _svg(chart, "follow-through"),
        ["month", "within 30 days", "within 60 days", "within 90 days", "on time"],
        rows,
    )


def effectiveness(figures: Effectiveness) -> Chart:
    """Whether the fixes held, per preventive control (and overall): held, failed, recurred, still pending."""
    groups = {"all actions": figures.overall, **figures.by_control}
    labels = list(groups)
    config = {**_config("Effectiveness of done actions, by control", labels), "no_data_text": "No done actions"}
    chart = pygal.StackedBar(**config)
    for name in ("held", "failed", "recurred", "pending"):
        chart.add(name, [getattr(outcome, name) for outcome in groups.values()])
    rows = [
        [label, str(o.held), str(o.failed), str(o.recurred), str(o.pending), _share(o.held_rate)]
        for label, o in groups.items()
    ]
    overall = figures.overall
    summary = (
        "Done actions by the outcome of their verification, overall and per preventive control: "
        f"{overall.held} held, {overall.failed} failed, {overall.recurred} recurred, {overall.pending} pending"
        f" (held rate {_share(overall.held_rate)})."
    )
    return Chart(
        "effectiveness",
        "Effectiveness",
        summary,
        _svg(chart, "effectiveness"),
        ["control", "held", "failed", "recurred", "pending", "held rate"],
        rows,
    )
