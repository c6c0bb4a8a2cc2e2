"""What Aftermath writes into a tracker issue for an action: its title, body, labels, fields and backlinks."""

from __future__ import annotations

import re

from app.actions import Action
from app.findings import Finding
from app.mappings import Mappings
from app.postmortems import Postmortem
from connectors.markup import Bullets, Document, Inline, Link, Strong, paragraph
from connectors.targets import Target
from connectors.tracker import Backlink, IssueDraft


def finding_url(public_url: str, postmortem_id: int, finding_id: int) -> str:
    return f"{public_url}/postmortems/{postmortem_id}#finding-{finding_id}"


def _label(text: str) -> str:
    return re.sub(r"\s+", "-", text.strip())[:255]


def pm_label(postmortem_key: str) -> str:
    """`pm-12` for PM-12 (not `pm-pm-12`)."""
    return _label(f"pm-{postmortem_key.lower().removeprefix('pm-')}")


def build_draft(
    mappings: Mappings, public_url: str, action: Action, target: Target, postmortem: Postmortem, found: list[Finding]
) -> IssueDraft:
    """The issue as the tracker will show it: what to do, why (the findings), and the way back to the postmortem."""
    assert action.id is not None and postmortem.id is not None and action.idempotency_key is not None
    page = f"{public_url}/postmortems/{postmortem.id}"
    facts: list[tuple[Inline, ...]] = [(Strong("Postmortem:"), " ", Link(f"{postmortem.key} {postmortem.title}", page))]
    backlinks = []
    for finding in found:
        url = finding_url(public_url, postmortem.id, finding.id or 0)
        kind = finding.kind.replace("_", " ")
        facts.append((Strong(f"Finding ({kind}):"), f" {finding.statement} — ", Link(url, url)))
        backlinks.append(Backlink(f"finding-{finding.id}", url, f"{postmortem.key}: {finding.statement[:200]}"))
    facts += [
        (Strong("Owner:"), f" {action.owner or 'unassigned'}"),
        (Strong("Due:"), f" {action.due_date.isoformat() if action.due_date else 'no due date'}"),
        (Strong("Priority:"), f" {action.priority}"),
        (Strong("Success metric:"), f" {action.success_metric or 'not set'}"),
        *([(Strong("Preventive control:"), f" {action.control.replace('_', ' ')}")] if action.control else []),
        *([(Strong("Would have changed this incident:"), f" {what_if}")] if (what_if := action.counterfactual) else []),
        (Strong("Action:"), " ", Link(f"{page}#action-{action.id}", f"{page}#action-{action.id}")),
    ]
    body = Document.of(paragraph(action.description) if action.description else None, Bullets(tuple(facts)))
    fields = mappings.issue_fields(target, action.owner, action.priority)
    return IssueDraft(
        idempotency_key=action.idempotency_key,
        title=f"[{postmortem.key}] {action.title}",
        body=body,
        labels=tuple(_label(label) for label in (*fields.labels, pm_label(postmortem.key or ""))),
        assignee=fields.assignee,
        due_date=action.due_date,
        priority=fields.priority,
        backlinks=tuple(backlinks) or (Backlink("postmortem", page, f"{postmortem.key}: {postmortem.title}"),),
        extra_fields=fields.extra_fields,
        replaced_labels=fields.replaced_labels,
    )
