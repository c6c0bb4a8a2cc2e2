"""Postmortem reports for three audiences (executive, engineering, operations): the same data, no LLM.

Rendered from Jinja2 Markdown templates; HTML is that Markdown through markdown-it with raw HTML off.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it import MarkdownIt
from sqlmodel import Session

from app import actions, findings, incidents, postmortems, review, similar
from app.actions import Action
from app.findings import Finding
from app.incidents import Incident, TimelineEntry
from app.postmortems import Postmortem
from app.vocabulary import CLOSED, ActionKind, ActionStatus, FindingKind

Audience = Literal["executive", "engineering", "operations"]
AUDIENCES: tuple[Audience, ...] = get_args(Audience)

# Runbook-facing: process actions change what responders do (runbooks, escalation steps) and monitoring
# actions change what pages them (alerts, dashboards); technical/test/organizational ones change neither.
RUNBOOK_KINDS = (ActionKind.PROCESS, ActionKind.MONITORING)
# What changes for on-call: the runbook-facing kinds plus organizational ones (rotations, ownership, staffing).
ON_CALL_KINDS = (ActionKind.PROCESS, ActionKind.ORGANIZATIONAL, ActionKind.MONITORING)
# An executive reads causes first, then what let them through; ties keep the order the findings were recorded.
_FINDING_RANK = {
    kind: rank
    for rank, kind in enumerate(
        (
            FindingKind.ROOT_CAUSE,
            FindingKind.CONTRIBUTING_FACTOR,
            FindingKind.ARCHITECTURE_FLAW,
            FindingKind.DETECTION_GAP,
            FindingKind.RESPONSE_GAP,
            FindingKind.PROCESS_GAP,
        )
    )
}
TOP_FINDINGS = 3
_STATUS_ORDER = (
    ActionStatus.DONE,
    ActionStatus.IN_PROGRESS,
    ActionStatus.OPEN,
    ActionStatus.UNFILED,
    ActionStatus.WONT_DO,
)


@dataclass(frozen=True)
class IncidentView:
    incident: Incident
    timeline: list[TimelineEntry]

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        i = self.incident
        return i.acknowledged_at - i.triggered_at if i.acknowledged_at and i.triggered_at else None

    @property
    def duration(self) -> timedelta | None:
        i = self.incident
        return i.resolved_at - i.triggered_at if i.resolved_at and i.triggered_at else None


@dataclass(frozen=True)
class FindingView:
    finding: Finding
    action_ids: list[int]
    addressed: bool  # at least one action answering it is done


@dataclass(frozen=True)
class ActionView:
    action: Action
    finding_ids: list[int]
    overdue: bool

    @property
    def closed(self) -> bool:
        return self.action.status in CLOSED


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, gathered once; `today` decides what is overdue, so a caller can pin it."""

    postmortem: Postmortem
    today: date
    incidents: list[IncidentView]
    findings: list[FindingView]
    actions: list[ActionView]
    seen_before: list[similar.SeenBefore] = field(default_factory=list)  # earlier postmortems like this one

    @property
    def completeness(self) -> review.Completeness:
        """What the minimum viable report still lacks: the same answer as the API's and the page's."""
        answers = {a.action.id or 0: a.finding_ids for a in self.actions}
        return review.assess(
            self.postmortem, [f.finding for f in self.findings], [a.action for a in self.actions], answers
        )

    @property
    def started(self) -> datetime | None:
        times = [v.incident.triggered_at for v in self.incidents if v.incident.triggered_at]
        return min(times) if times else None

    @property
    def ended(self) -> datetime | None:
        """Last resolution, or None while any covered incident is unresolved."""
        times = [v.incident.resolved_at for v in self.incidents]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    @property
    def duration(self) -> timedelta | None:
        return self.ended - self.started if self.started and self.ended else None

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        """The first acknowledgement after the first trigger: how long nobody was on it."""
        acks = [v.incident.acknowledged_at for v in self.incidents if v.incident.acknowledged_at]
        return min(acks) - self.started if acks and self.started else None

    @property
    def impact_duration(self) -> timedelta | None:
        p = self.postmortem
        return p.impact_end - p.impact_start if p.impact_start and p.impact_end else None

    @property
    def severity(self) -> str:
        # sevN sorts worst-first by its number; "unknown" and other labels only when nothing else is known.
        known = sorted(v.incident.severity for v in self.incidents if re.fullmatch(r"sev\d+", v.incident.severity))
        return known[0] if known else "unknown"

    @property
    def services(self) -> list[str]:
        return sorted({v.incident.service for v in self.incidents if v.incident.service})

    @property
    def top_findings(self) -> list[FindingView]:
        ranked = sorted(self.findings, key=lambda f: (_FINDING_RANK.get(f.finding.kind, 99), f.finding.id or 0))
        return ranked[:TOP_FINDINGS]

    @property
    def counts(self) -> dict[str, int]:
        """Actions per status, every status present (zeros too) in a fixed order."""
        return {s: sum(1 for a in self.actions if a.action.status == s) for s in _STATUS_ORDER}

    @property
    def overdue_count(self) -> int:
        return sum(1 for a in self.actions if a.overdue)

    @property
    def completion(self) -> int:
        """Percent of actions done, rounded down so an unfinished list never reads 100%."""
        return self.counts[ActionStatus.DONE] * 100 // len(self.actions) if self.actions else 0

    @property
    def remaining_actions(self) -> list[ActionView]:
        return [a for a in self.actions if not a.closed]

    @property
    def unaddressed_findings(self) -> list[FindingView]:
        """Findings with no completed action and no accepted risk: the risk nobody has dealt with yet."""
        return [f for f in self.findings if not f.addressed and not f.finding.accepted_risk]

    @property
    def accepted_risks(self) -> list[FindingView]:
        return [f for f in self.findings if f.finding.accepted_risk and not f.addressed]

    @property
    def detection_gaps(self) -> list[FindingView]:
        return [f for f in self.findings if f.finding.kind == "detection_gap"]

    @property
    def runbook_actions(self) -> list[ActionView]:
        return [a for a in self.actions if a.action.kind in RUNBOOK_KINDS]

    @property
    def on_call_changes(self) -> list[ActionView]:
        return [a for a in self.actions if a.action.kind in ON_CALL_KINDS]

    def action(self, action_id: int) -> ActionView:
        return next(a for a in self.actions if a.action.id == action_id)


def gather(session: Session, postmortem_id: int, today: date) -> ReportData:
    """Load one postmortem with its incidents, timelines, findings and actions; NotFound for an unknown id."""
    postmortem = postmortems.get(session, postmortem_id)
    covered = postmortems.incidents_of(session, postmortem_id)
    lines = incidents.timelines(session, [i.id for i in covered if i.id is not None])
    finding_rows = findings.of_postmortem(session, postmortem_id)
    action_rows = actions.of_postmortems(session, [postmortem_id])[postmortem_id]
    links = actions.finding_ids_of(session, [a.id for a in action_rows if a.id is not None])
    action_views = [ActionView(a, links[a.id or 0], actions.is_overdue(a, today)) for a in action_rows]
    finding_views = []
    for finding in finding_rows:
        answering = [a for a in action_views if finding.id in a.finding_ids]
        finding_views.append(
            FindingView(
                finding,
                [a.action.id for a in answering if a.action.id is not None],
                any(a.action.status == ActionStatus.DONE for a in answering),
            )
        )
    return ReportData(
        postmortem=postmortem,
        today=today,
        incidents=[IncidentView(i, lines[i.id or 0]) for i in covered],
        findings=finding_views,
        actions=action_views,
        seen_before=similar.seen_before(session, postmortem),
    )


# --- Markdown building blocks, used as template filters -------------------------------------------------------

# Characters that would otherwise turn user text into emphasis, code, links, raw HTML, table cells or entities.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
# Markers that make a line a heading, list item, quote or rule (or underline the previous line into a heading).
_BLOCK_START = re.compile(r"^([#+\-=]|\d{1,9}[.)])")


def _escape_line(line: str) -> str:
    escaped = _INLINE_SPECIAL.sub(r"\\\1", line.strip())
    return _BLOCK_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], escaped)


def md(text: object) -> str:
    """User text as one line of literal Markdown: whitespace and newlines collapsed, every marker escaped."""
    return _escape_line(" ".join(str(text).split())) if text is not None else ""


def paragraphs(text: str | None) -> str:
    """Multi-line user text as literal Markdown paragraphs; single newlines are kept as hard line breaks."""
    if not text:
        return ""
    blocks = [
        [_escape_line(line) for line in block.splitlines() if line.strip()] for block in re.split(r"\n\s*\n", text)
    ]
    return "\n\n".join("\\\n".join(lines) for lines in blocks if lines)


def link(text: object, url: str | None) -> str:
    """A Markdown link for http(s) URLs only; anything else (javascript:, data:) stays plain text."""
    label = md(text)
    if not url or not re.match(r"https?://", url, re.IGNORECASE):
        return label
    target = "".join(f"%{ord(c):02X}" if c in ' <>\\"\n\r\t' else c for c in url)
    return f"[{label}](<{target}>)"


def timestamp(value: datetime | None) -> str:
    if value is None:
        return "—"
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    days, minutes = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    return " ".join([*parts, f"{minutes:02d}m" if parts else f"{minutes}m"])


def label(value: str | None) -> str:
    """Enum value as words: root_cause -> root cause, wont_do -> won't do."""
    if value is None:
        return "—"
    return "won't do" if value == ActionStatus.WONT_DO else value.replace("_", " ")


_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    # Markdown, not HTML: user text goes through the `md`/`paragraphs` filters; the HTML form is escaped by
    # markdown-it (raw HTML off), so a forgotten filter can garble Markdown but never inject markup.
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)
_templates.filters.update(md=md, paragraphs=paragraphs, ts=timestamp, dur=duration, label=label)
_templates.globals.update(link=link)


def render_markdown(data: ReportData, audience: Audience) -> str:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    text = _templates.get_template(f"report_{audience}.md").render(r=data, pm=data.postmortem)
    # Templates are easier to read with spare blank lines; the output keeps at most one in a row.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render(session: Session, postmortem_id: int, audience: Audience, today: date) -> str:
    """The report in Markdown; NotFound for an unknown postmortem."""
    return render_markdown(gather(session, postmortem_id, today), audience)


_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

_HTML_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
  body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #1d2733; }}
  table {{ border-collapse: collapse; }}
  td, th {{ text-align: left; padding: .3em .6em; border-bottom: 1px solid #e6ecf2; }}
</style>
</head>
<body>
{body}</body>
</html>
"""


def to_html(markdown: str, title: str) -> str:
    """A standalone HTML page of a Markdown report; raw HTML in the Markdown comes out as text."""
    return _HTML_PAGE.format(title=html.escape(title), body=_markdown.render(markdown))
