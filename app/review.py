"""The review around a postmortem: what a minimum viable report must hold, computed from the data and never stored,
and the gate that keeps a postmortem from being published while anything is missing.

One function (`assess`) answers the completeness route, gates `published`, draws the page's checklist and the
engineering report's; they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from app import actions, findings, participants, postmortems
from app.actions import Action
from app.errors import Conflict, Invalid
from app.findings import Finding
from app.postmortems import Postmortem
from app.vocabulary import ActionStatus, FindingKind, MissingCode, ParticipantRole, PostmortemStatus

# Findings that need an answer (an action, or a risk someone accepted): every kind the analysis records.
NEEDS_AN_ANSWER = frozenset(FindingKind)
CAUSES = frozenset({FindingKind.ROOT_CAUSE, FindingKind.CONTRIBUTING_FACTOR})
# Where on the postmortem page each item is done, for the items not about one finding or action.
_PLACE = {
    MissingCode.SUMMARY: "summary",
    MissingCode.IMPACT: "impact",
    MissingCode.FACILITATOR: "participants",
    MissingCode.REVIEWER: "participants",
    MissingCode.CAUSE: "findings",
}


@dataclass(frozen=True)
class Missing:
    code: MissingCode
    detail: str
    finding_id: int | None = None
    action_id: int | None = None

    @property
    def anchor(self) -> str:
        """The id of the element on the postmortem page where this is done."""
        if self.finding_id is not None:
            return f"finding-{self.finding_id}"
        if self.action_id is not None:
            return f"action-{self.action_id}"
        return _PLACE[self.code]

    def body(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Completeness:
    missing: tuple[Missing, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


class Incomplete(Conflict):
    """A move to `published` while the minimum viable report lacks something; the answer lists what."""

    def __init__(self, postmortem: Postmortem, missing: Sequence[Missing]) -> None:
        super().__init__(
            f"{postmortem.key} cannot be published: {len(missing)} item(s) of the minimum viable report are missing",
            missing=[m.body() for m in missing],
        )


def _blank(text: str | None) -> bool:
    return not (text or "").strip()


def _action_gaps(action: Action) -> list[str]:
    gaps = [] if action.owner else ["an owner"]
    gaps += [] if action.due_date else ["a due date"]
    return gaps + (["a success metric"] if _blank(action.success_metric) else [])


def assess(
    postmortem: Postmortem, found: Sequence[Finding], remedies: Sequence[Action], answers: dict[int, list[int]]
) -> Completeness:
    """What the postmortem still lacks, in checklist order; `answers` maps each action id to the findings it answers."""
    missing: list[Missing] = []
    if _blank(postmortem.summary):
        missing.append(Missing(MissingCode.SUMMARY, "No summary: say what happened."))
    impact = [
        *(["the customer impact"] if _blank(postmortem.customer_impact) else []),
        *(["when it started (impact_start)"] if postmortem.impact_start is None else []),
    ]
    if impact:
        missing.append(Missing(MissingCode.IMPACT, f"Impact: record {' and '.join(impact)}."))
    people = postmortem.participants
    if participants.facilitator(people) is None:
        detail = "No facilitator: name who convenes the review (a participant with role facilitator)."
        missing.append(Missing(MissingCode.FACILITATOR, detail))
    if not participants.with_role(people, ParticipantRole.REVIEWER):
        missing.append(Missing(MissingCode.REVIEWER, "No reviewer: add at least one participant with role reviewer."))
    if not any(f.kind in CAUSES for f in found):
        detail = "No cause: record at least one root_cause or contributing_factor finding."
        missing.append(Missing(MissingCode.CAUSE, detail))
    answered = {fid for ids in answers.values() for fid in ids}
    for finding in found:
        if finding.kind in NEEDS_AN_ANSWER and finding.id not in answered and _blank(finding.accepted_risk):
            detail = (
                f"Finding {finding.id} ({finding.kind.replace('_', ' ')}) is answered neither by an action nor by "
                "an accepted risk: add an action for it, or record why its risk is accepted and who decided."
            )
            missing.append(Missing(MissingCode.FINDING_UNANSWERED, detail, finding_id=finding.id))
    for action in remedies:
        # A cancelled or dropped action needs its reason (below), not an owner, a due date and a metric.
        if action.status != ActionStatus.WONT_DO and (gaps := _action_gaps(action)):
            needs = gaps[0] if len(gaps) == 1 else f"{', '.join(gaps[:-1])} and {gaps[-1]}"
            detail = f"Action {action.id} ({action.title}) needs {needs}."
            missing.append(Missing(MissingCode.ACTION_INCOMPLETE, detail, action_id=action.id))
    for action in remedies:
        if action.status == ActionStatus.WONT_DO and _blank(action.wont_do_reason):
            detail = f"Action {action.id} ({action.title}) will not be done, and nobody has said why (wont_do_reason)."
            missing.append(Missing(MissingCode.WONT_DO_UNEXPLAINED, detail, action_id=action.id))
    return Completeness(tuple(missing))


def of(session: Session, postmortem: Postmortem) -> Completeness:
    """The postmortem's completeness, as its rows say now."""
    assert postmortem.id is not None
    remedies = actions.of_postmortems(session, [postmortem.id])[postmortem.id]
    answers = actions.finding_ids_of(session, [a.id for a in remedies if a.id is not None])
    return assess(postmortem, findings.of_postmortem(session, postmortem.id), remedies, answers)


def update(
    session: Session, postmortem: Postmortem, fields: dict[str, Any], *, author: str, expected_version: int | None
) -> Postmortem:
    """Edit the postmortem (see postmortems.update); a move to `published` only when nothing is missing.

    The check runs on the postmortem as this very edit leaves it, so one PATCH may add the last missing piece and
    publish. Refused, it raises Incomplete and the caller's transaction rolls the whole edit back. A postmortem that
    was published before this gate existed keeps its status: only a move into `published` is checked.
    """
    if "participants" in fields:
        try:
            people = participants.PARTICIPANTS.validate_python(fields["participants"])
        except ValidationError as exc:
            raise Invalid(f"participants: {exc.errors()[0]['msg']}") from None
        fields = {**fields, "participants": people}
    before = postmortem.status
    postmortems.update(session, postmortem, fields, author=author, expected_version=expected_version)
    if postmortem.status == PostmortemStatus.PUBLISHED and before != PostmortemStatus.PUBLISHED:
        missing = of(session, postmortem).missing
        if missing:
            raise Incomplete(postmortem, missing)
    return postmortem
