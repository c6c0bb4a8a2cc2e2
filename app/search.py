"""The knowledge base's full-text search over postmortems, findings, actions and incidents (the `search_document`
index that the migration's triggers keep in step with those rows, in the transaction that writes them).

What a person types is read as words, never as the database's query syntax: every word matches as a prefix too,
"quoted words" are a phrase, `OR` between words offers alternatives, and `-word` leaves out what contains it; every
other character only separates words. SQLite gets the parse as an FTS5 expression of quoted strings; PostgreSQL
gets it as text for `websearch_to_tsquery` (which never fails on its input), each lexeme then made a prefix.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app.db import is_postgres
from app.errors import Invalid

TYPES = ("postmortem", "finding", "action", "incident")
MAX_QUERY = 500  # characters of a query
MAX_TERMS = 32  # words and phrases of a query
# The ranking looks at this many of the best matches at most: pages stop there. Scoring every match of a common word
# over 100,000 documents would cost more than a person reads.
RANKED = 1000
TITLE_WEIGHT = 4.0  # a match in the title ranks above the same match in the body (SQLite; PostgreSQL: weights A, B)
INDEX_TABLE = "search_document"  # written by the migration's triggers, read here in SQL: not in the models
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r'-?"[^"]*"?|[^\s"]+')
_START, _STOP = "\x02", "\x03"  # highlight markers, turned into <mark> once the snippet is escaped


def in_models(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Alembic's include_name: leave the search index (with FTS5's shadow tables, its GIN index) out of autogenerate,
    which compares the database with the models."""
    table = name if type_ == "table" else parent_names.get("table_name")
    return not (table or "").startswith(INDEX_TABLE)


@dataclass(frozen=True)
class Parsed:
    """Alternatives (OR) of terms that must all match (AND); each term a word or a phrase (its words in order)."""

    alternatives: list[list[tuple[str, ...]]]
    excluded: list[tuple[str, ...]] = field(default_factory=list)

    def fts5(self) -> str:
        """An FTS5 expression of quoted strings only: no word of the query is FTS5 syntax."""

        def term(words: tuple[str, ...]) -> str:
            return '"' + " ".join(words) + '"*'

        found = " OR ".join("(" + " AND ".join(term(t) for t in terms) + ")" for terms in self.alternatives)
        if self.excluded:
            return f"({found}) NOT ({' OR '.join(term(t) for t in self.excluded)})"
        return found

    def websearch(self) -> str:
        """The same query in websearch_to_tsquery's words: phrases quoted, `or` between alternatives, `-` for out."""

        def term(words: tuple[str, ...]) -> str:
            return '"' + " ".join(words) + '"' if len(words) > 1 else words[0]

        found = " or ".join(" ".join(term(t) for t in terms) for terms in self.alternatives)
        return " ".join([found, *("-" + term(t) for t in self.excluded)])


def parse(query: str) -> Parsed:
    """Read what a person typed; Invalid (422) when it holds no word to look for, or too many."""
    if len(query) > MAX_QUERY:
        raise Invalid(f"q: at most {MAX_QUERY} characters")
    alternatives: list[list[tuple[str, ...]]] = [[]]
    excluded: list[tuple[str, ...]] = []
    count = 0
    for token in _TOKEN.findall(query.replace("\x00", " ")):
        if token.upper() == "OR" and alternatives[-1]:  # with nothing before it, "or" is a word
            alternatives.append([])
            continue
        words = tuple(w.lower() for w in _WORD.findall(token))
        if not words:
            continue
        count += 1
        if token.startswith("-") and len(token) > 1:
            excluded.append(words)
        else:
            alternatives[-1].append(words)
    found = [terms for terms in alternatives if terms]
    if not found:
        raise Invalid("q: nothing to search for: give at least one word (letters or digits) that is not excluded")
    if count > MAX_TERMS:
        raise Invalid(f"q: at most {MAX_TERMS} words or phrases")
    return Parsed(found, excluded)


@dataclass(frozen=True)
class Hit:
    type: str
    id: int
    postmortem_id: int | None
    title: str
    snippet: str  # HTML: the text escaped, the matches in <mark>
    score: float  # higher is better; comparable within one search only


def search(session: Session, query: str, *, type_: str | None, offset: int, limit: int) -> tuple[list[Hit], int | None]:
    """One page of the best matches, best first, and the offset of the next page (None: no more)."""
    parsed = parse(query)
    if type_ is not None and type_ not in TYPES:
        raise Invalid(f"type: one of {', '.join(TYPES)}")
    room = max(0, min(limit + 1, RANKED - offset))
    if room == 0:
        return [], None
    params = {"kind": type_, "offset": offset, "limit": room}
    if is_postgres(session):
        rows = session.execute(text(_POSTGRES), {**params, "q": parsed.websearch()}).all()
    else:
        try:
            rows = session.execute(text(_SQLITE), {**params, "q": parsed.fts5()}).all()
        except OperationalError as exc:  # not expected for quoted strings; a query is still never a 500
            raise Invalid(f"q: cannot be searched: {exc.orig}") from exc
    hits = [
        Hit(str(kind), int(ref), None if pm is None else int(pm), str(title), _marked(str(snippet or "")), float(score))
        for kind, ref, pm, title, snippet, score in rows[:limit]
    ]
    more = len(rows) > limit and offset + limit < RANKED
    return hits, (offset + limit if more else None)


def _marked(snippet: str) -> str:
    return html.escape(snippet).replace(_START, "<mark>").replace(_STOP, "</mark>")


# bm25 is lower for better matches; the weights are per column (kind, ref_id, postmortem_id, title, body).
_SQLITE = f"""
SELECT kind, ref_id, postmortem_id, title,
       snippet(search_document, -1, char(2), char(3), '…', 16) AS snippet,
       -bm25(search_document, 0, 0, 0, {TITLE_WEIGHT}, 1.0) AS score
FROM search_document
WHERE search_document MATCH :q AND (:kind IS NULL OR kind = :kind)
ORDER BY bm25(search_document, 0, 0, 0, {TITLE_WEIGHT}, 1.0), rowid
LIMIT :limit OFFSET :offset
"""

# websearch_to_tsquery parses anything; each of its lexemes then gets :* (a prefix), found by the quote that closes
# it (a quote followed by a space, a parenthesis or the end; a quote inside a lexeme is doubled).
PREFIX_QUERY = (
    r"SELECT regexp_replace(websearch_to_tsquery('english', :q)::text, '''( |\)|$)', ''':*\1', 'g')::tsquery"
    " AS query"
)
_POSTGRES = f"""
WITH q AS ({PREFIX_QUERY}), page AS (
    SELECT d.id, d.kind, d.ref_id, d.postmortem_id, d.title, d.body, ts_rank(d.tsv, q.query) AS score, q.query
    FROM search_document AS d, q
    WHERE d.tsv @@ q.query AND (CAST(:kind AS varchar) IS NULL OR d.kind = CAST(:kind AS varchar))
    ORDER BY score DESC, d.id
    LIMIT :limit OFFSET :offset
)
SELECT kind, ref_id, postmortem_id, title,
       ts_headline('english', title || ' — ' || body, query,
                   'StartSel=' || chr(2) || ', StopSel=' || chr(3) || ', MaxWords=24, MinWords=10, MaxFragments=2'),
       score
FROM page
ORDER BY score DESC, id
"""
