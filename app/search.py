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
# The ranking looks at the newest this many matches (rows written last), and pages stop there: scoring every match of
# a common word over 100,000 documents costs more than a person reads, and the recent rows are the likelier answers.
RANKED = 1000
TITLE_WEIGHT = 4.0  # a match in the title ranks above the same match in the body (SQLite; PostgreSQL: weights A, B)
INDEX_TABLE = "search_document"  # written by the migration's triggers, read here in SQL: not in the models
_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r'-?"[^"]*"?|[^\s"]+')
_SPLIT = re.compile(r"(\w+)")
SNIPPET_WORDS, SNIPPET_BEFORE = 24, 6  # words a snippet shows, and how many of them come before the first match


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

    def fts5(self, prefix: bool = True) -> str:
        """An FTS5 expression of quoted strings only: no word of the query is FTS5 syntax. With `prefix`, each term
        also matches as the start of a longer word."""

        def term(words: tuple[str, ...]) -> str:
            return '"' + " ".join(words) + ('"*' if prefix else '"')

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
    params = {"kind": type_, "offset": offset, "limit": room, "ranked": RANKED, "window": WINDOW}
    if is_postgres(session):
        rows = session.execute(text(_POSTGRES), {**params, "q": parsed.websearch()}).all()
    else:
        try:
            rows = session.execute(text(_SQLITE), {**params, "q": parsed.fts5()}).all()
        except OperationalError as exc:  # not expected for quoted strings; a query is still never a 500
            raise Invalid(f"q: cannot be searched: {exc.orig}") from exc
    stems = [_stem(w) for terms in parsed.alternatives for t in terms for w in t]
    hits = [
        Hit(str(kind), int(ref), None if pm is None else int(pm), str(title), snippet(title, body, stems), float(score))
        for kind, ref, pm, title, body, score in rows[:limit]
    ]
    more = len(rows) > limit and offset + limit < RANKED
    return hits, (offset + limit if more else None)


def _stem(word: str) -> str:
    """What a query word highlights: the words starting with it, or, for a longer word, with all but its last three
    letters (the databases match "rotated" to "rotation" by its stem; this marks them alike)."""
    return word[: max(4, len(word) - 3)] if len(word) > 4 else word


def snippet(title: str, body: str, stems: list[str], words: int = SNIPPET_WORDS) -> str:
    """HTML: the document's text around its first match, escaped, each matching word in <mark>.

    Made here rather than by the databases (FTS5's snippet(), ts_headline): the same on both, and it reads only the
    page's rows (FTS5 would expand a prefix term again for each of them).
    """
    tokens = _SPLIT.split(f"{title} — {body}" if body else title)  # words at odd indexes, what separates them between
    marked = [i for i in range(1, len(tokens), 2) if tokens[i].lower().startswith(tuple(stems))]
    first_word = max(1, (marked[0] if marked else 1) - 2 * SNIPPET_BEFORE)
    start = first_word if first_word > 1 else 0
    end = min(len(tokens), first_word + 2 * words - 1)
    hits = set(marked)
    parts = ["…" if start > 0 else ""]
    for i in range(start, end):
        piece = html.escape(tokens[i])
        parts.append(f"<mark>{piece}</mark>" if i in hits else piece)
    parts.append("…" if end < len(tokens) else "")
    return "".join(parts).strip()


# The newest RANKED matches (by rowid: id * 8 + type, so the most recent rows): FTS5 walks its doclists from the end
# and stops, computing no rank. Ranking then reads the matches from the lowest of those rowids on.
SQLITE_FLOOR = """
    rowid >= (SELECT coalesce(min(id), 0) FROM (
        SELECT rowid AS id FROM search_document WHERE search_document MATCH :q AND {where}
        ORDER BY rowid DESC LIMIT :ranked))
"""
# bm25 is lower for better matches; the weights are per column (kind, ref_id, postmortem_id, title, body). The page's
# rows are then read by rowid (the outer loop is the page: CROSS JOIN), without matching again: a prefix term would
# be expanded once more for every row.
_SQLITE = f"""
WITH best AS (
    SELECT rowid AS id, -bm25(search_document, 0, 0, 0, {TITLE_WEIGHT}, 1.0) AS score
    FROM search_document
    WHERE search_document MATCH :q AND (:kind IS NULL OR kind = :kind)
      AND {SQLITE_FLOOR.format(where="(:kind IS NULL OR kind = :kind)")}
    ORDER BY score DESC, rowid
    LIMIT :limit OFFSET :offset
)
SELECT kind, ref_id, postmortem_id, title, body, best.score
FROM best CROSS JOIN search_document
WHERE search_document.rowid = best.id
ORDER BY best.score DESC, best.id
"""

# websearch_to_tsquery parses anything; each of its lexemes then gets :* (a prefix), found by the quote that closes
# it (a quote followed by a space, a parenthesis or the end; a quote inside a lexeme is doubled).
PREFIX_QUERY = (
    r"SELECT regexp_replace(websearch_to_tsquery('english', :q)::text, '''( |\)|$)', ''':*\1', 'g')::tsquery"
    " AS query"
)
WORDS_QUERY = "SELECT websearch_to_tsquery('english', :q) AS query"  # whole words only
# The newest RANKED matches by id (the newest rows): first among the newest WINDOW documents (a backward walk of the
# primary key, which is all a common word needs), then, only when that found fewer, among the older ones by the GIN
# index (a word rare enough to need it has few matches). `{where}` narrows the matches (alias d).
WINDOW = 8000
PG_RECENT = """
recent_window AS MATERIALIZED (
    SELECT d.id FROM (SELECT id, tsv, kind, postmortem_id FROM search_document ORDER BY id DESC LIMIT :window) AS d, q
    WHERE d.tsv @@ q.query AND {where} ORDER BY d.id DESC LIMIT :ranked
), recent AS MATERIALIZED (
    SELECT id FROM recent_window
    UNION ALL (
        SELECT d.id FROM search_document AS d, q
        WHERE (SELECT count(*) FROM recent_window) < :ranked AND d.tsv @@ q.query AND {where}
          AND d.id < (SELECT coalesce(min(id), 0)
                      FROM (SELECT id FROM search_document ORDER BY id DESC LIMIT :window) AS w)
        ORDER BY d.id DESC LIMIT :ranked
    )
)
"""
_KIND = "(CAST(:kind AS varchar) IS NULL OR d.kind = CAST(:kind AS varchar))"
_POSTGRES = f"""
WITH q AS MATERIALIZED ({PREFIX_QUERY}), {PG_RECENT.format(where=_KIND)}
SELECT d.kind, d.ref_id, d.postmortem_id, d.title, d.body, ts_rank(d.tsv, q.query) AS score
FROM (SELECT id FROM recent ORDER BY id DESC LIMIT :ranked) AS r JOIN search_document AS d ON d.id = r.id, q
ORDER BY score DESC, d.id
LIMIT :limit OFFSET :offset
"""
