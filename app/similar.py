"""Have we seen this before? The earlier postmortems most like a postmortem (or an incident), by a stated rule.

Best first, by reason, then by text similarity, then the most recent:
1. `same_fingerprint`: one of its incidents has the fingerprint of one of ours (the same failure, as recurrence
   sees it);
2. `same_service_and_category`: one of its incidents is of a service of ours, and one of its findings has a
   category of ours (the same part of the system failing the same way);
3. `similar_text`: its title or findings share words with our title and findings (the search index ranks them).

`score` = 3, 2 or 1 for the reason, plus the text similarity t / (1 + t) (below 1, so a reason is never outranked by
a lower one), where t is the summed rank of the candidate's title and findings for our words. "Earlier" means created
before the postmortem; for an incident without one, every postmortem but its own is earlier (its review is to come).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import Session, col, select

from app import actions, findings, search
from app.actions import Action
from app.db import is_postgres
from app.findings import Finding
from app.incidents import Incident
from app.postmortems import Postmortem

TOP = 5  # shown as "Seen before" on the postmortem page and in the engineering report
REASONS = {"same_fingerprint": 3.0, "same_service_and_category": 2.0, "similar_text": 1.0}
MAX_WORDS = 10  # words of our title and findings that the text similarity looks for
# Earlier postmortems looked at per reason, and documents summed for the text similarity (of the newest search.RANKED
# matches: see app/search.py).
CANDIDATES = 200
_WORD = re.compile(r"\w{4,}")  # shorter words say little about a failure ("the", "was", "no")


@dataclass(frozen=True)
class Similar:
    postmortem: Postmortem
    reason: str
    score: float


@dataclass(frozen=True)
class SeenBefore:
    """An earlier postmortem like this one, with what it found and what was tried (actions with their status and
    verification)."""

    postmortem: Postmortem
    reason: str
    score: float
    findings: list[Finding]
    actions: list[Action]


def seen_before(session: Session, postmortem: Postmortem, limit: int = TOP) -> list[SeenBefore]:
    found = rank(session, of_postmortem(session, postmortem), limit)
    ids = [s.postmortem.id for s in found if s.postmortem.id is not None]
    finding_rows, action_rows = findings.of_postmortems(session, ids), actions.of_postmortems(session, ids)
    return [
        SeenBefore(
            s.postmortem, s.reason, s.score, finding_rows[s.postmortem.id or 0], action_rows[s.postmortem.id or 0]
        )
        for s in found
    ]


@dataclass(frozen=True)
class Subject:
    """What the earlier postmortems are compared with: ours, or an incident's without one."""

    exclude: int | None  # our own postmortem
    before: datetime | None
    fingerprints: list[str]
    services: list[str]
    categories: list[str]
    words: list[str]


def of_postmortem(session: Session, postmortem: Postmortem) -> Subject:
    assert postmortem.id is not None
    incidents = session.exec(select(Incident).where(Incident.postmortem_id == postmortem.id)).all()
    found = session.exec(select(Finding).where(Finding.postmortem_id == postmortem.id).order_by(col(Finding.id))).all()
    return Subject(
        exclude=postmortem.id,
        before=postmortem.created_at,
        fingerprints=sorted({i.fingerprint for i in incidents if i.fingerprint}),
        services=sorted({i.service for i in incidents if i.service}),
        categories=sorted({f.category for f in found if f.category}),
        words=_words([postmortem.title, *(f.statement for f in found)]),
    )


def of_incident(session: Session, incident: Incident) -> Subject:
    if incident.postmortem_id is not None and (own := session.get(Postmortem, incident.postmortem_id)) is not None:
        return of_postmortem(session, own)
    return Subject(
        exclude=None,
        before=None,
        fingerprints=[incident.fingerprint] if incident.fingerprint else [],
        services=[incident.service] if incident.service else [],
        categories=[],
        words=_words([incident.title]),
    )


def _words(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(w.lower() for t in texts for w in _WORD.findall(t)))[:MAX_WORDS]


def rank(session: Session, subject: Subject, limit: int) -> list[Similar]:
    """The `limit` earlier postmortems most like the subject, best first (see the module's rule)."""
    reasons: dict[int, str] = {}
    for pm in _same_fingerprint(session, subject):
        reasons.setdefault(pm, "same_fingerprint")
    for pm in _same_service_and_category(session, subject):
        reasons.setdefault(pm, "same_service_and_category")
    texts = _text_scores(session, subject)
    for pm in texts:
        reasons.setdefault(pm, "similar_text")
    if not reasons:
        return []
    rows = session.exec(select(Postmortem).where(col(Postmortem.id).in_(list(reasons)))).all()
    earlier = {p.id: p for p in rows if p.id != subject.exclude and _before(p, subject.before)}
    scored = [
        Similar(p, reasons[pid], round(REASONS[reasons[pid]] + _squash(texts.get(pid, 0.0)), 6))
        for pid, p in earlier.items()
        if pid is not None
    ]
    scored.sort(key=lambda s: (-s.score, -s.postmortem.created_at.timestamp(), -(s.postmortem.id or 0)))
    return scored[:limit]


def _before(postmortem: Postmortem, moment: datetime | None) -> bool:
    return moment is None or postmortem.created_at.astimezone(UTC) < moment.astimezone(UTC)


def _squash(value: float) -> float:
    return value / (1.0 + value) if value > 0 else 0.0


def _earlier(query: object, subject: Subject) -> object:
    return query


def _same_fingerprint(session: Session, subject: Subject) -> list[int]:
    if not subject.fingerprints:
        return []
    query = (
        select(Incident.postmortem_id)
        .join(Postmortem, col(Postmortem.id) == col(Incident.postmortem_id))
        .where(col(Incident.fingerprint).in_(subject.fingerprints), col(Incident.postmortem_id).is_not(None))
    )
    return _recent(session, query, subject)


def _same_service_and_category(session: Session, subject: Subject) -> list[int]:
    if not subject.services or not subject.categories:
        return []
    query = (
        select(Incident.postmortem_id)
        .join(Postmortem, col(Postmortem.id) == col(Incident.postmortem_id))
        .join(Finding, col(Finding.postmortem_id) == col(Incident.postmortem_id))
        .where(col(Incident.service).in_(subject.services), col(Finding.category).in_(subject.categories))
    )
    return _recent(session, query, subject)


def _recent(session: Session, query: object, subject: Subject) -> list[int]:
    """The candidates of one reason: other earlier postmortems, the most recent CANDIDATES of them."""
    q = query.distinct()  # type: ignore[attr-defined]
    if subject.exclude is not None:
        q = q.where(col(Postmortem.id) != subject.exclude)
    if subject.before is not None:
        q = q.where(col(Postmortem.created_at) < subject.before)
    q = q.add_columns(col(Postmortem.created_at)).order_by(col(Postmortem.created_at).desc()).limit(CANDIDATES)
    return [int(pm) for pm, _ in session.execute(q).all() if pm is not None]


def _text_scores(session: Session, subject: Subject) -> dict[int, float]:
    """Per postmortem, the summed rank of its title and findings for the subject's words (any of them)."""
    if not subject.words:
        return {}
    parsed = search.Parsed([[(w,)] for w in subject.words])
    params = {"exclude": subject.exclude or 0, "limit": CANDIDATES, "ranked": search.RANKED, "window": search.WINDOW}
    if is_postgres(session):
        rows = session.execute(text(_POSTGRES), {**params, "q": parsed.websearch()}).all()
    else:
        rows = session.execute(text(_SQLITE), {**params, "q": parsed.fts5(prefix=False)}).all()
    return {int(pm): float(score) for pm, score in rows if pm is not None}


_KINDS = "kind IN ('postmortem', 'finding') AND postmortem_id <> :exclude"
_SQLITE = f"""
SELECT postmortem_id, sum(score) FROM (
    SELECT postmortem_id, -bm25(search_document, 0, 0, 0, {search.TITLE_WEIGHT}, 1.0) AS score
    FROM search_document
    WHERE search_document MATCH :q AND {_KINDS} AND {search.SQLITE_FLOOR.format(where=_KINDS)}
    ORDER BY score DESC
    LIMIT :limit
) GROUP BY postmortem_id
"""

_POSTGRES = f"""
WITH q AS MATERIALIZED ({search.WORDS_QUERY}),
{search.PG_RECENT.format(where="d.kind IN ('postmortem', 'finding') AND d.postmortem_id <> :exclude")},
hits AS (
    SELECT d.postmortem_id, ts_rank(d.tsv, q.query) AS score
    FROM (SELECT id FROM recent ORDER BY id DESC LIMIT :ranked) AS r JOIN search_document AS d ON d.id = r.id, q
    ORDER BY score DESC
    LIMIT :limit
)
SELECT postmortem_id, sum(score) FROM hits GROUP BY postmortem_id
"""
