"""The JQL the fake Jira understands: what JiraTracker sends, validated and answered the way Jira does.

That is `key in (OPS-1,OPS-2)` (poll), `project = "OPS" AND labels = "aftermath-action-42"` and
`project = "OPS" AND description ~ "\\"aftermath-action-42\\""` (find_issue): clauses joined by AND, each `=` one
value, `in` a list, or `~` a text search (Jira's: by words, a quoted phrase matching its words in order). Anything
else is refused with Jira's 400, so a connector that starts sending other JQL learns it from its tests instead of from
a fake that quietly matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

FIELDS = {"key", "project", "labels", "description"}
TEXT_FIELDS = {"description"}  # searched with `~` only, as Jira's text fields are
KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$", re.I)


class JqlError(ValueError):
    """The query is not valid JQL (as far as this subset knows); the message mimics Jira's wording."""


@dataclass(frozen=True)
class Clause:
    field: str  # lower-cased field name
    values: tuple[str, ...]  # unquoted literals: one for `=` and `~`, the list for `in`
    op: str = "="


@dataclass(frozen=True)
class Query:
    clauses: tuple[Clause, ...]  # all must hold; none = unbounded (Jira's search/jql rejects that)


_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<punct>[(),=~])|(?P<word>[A-Za-z0-9_.\-]+))')


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise JqlError(
                f"Error in the JQL Query: The character '{text[pos:].strip()[:1]}' is a reserved JQL character."
            )
        pos, kind = m.end(), m.lastgroup or ""
        value = m.group(kind)
        tokens.append((kind, re.sub(r"\\(.)", r"\1", value[1:-1]) if kind == "str" else value))
    return tokens


def parse(text: str) -> Query:
    """Parse `text`; raises JqlError with Jira-like wording when it is outside the subset or malformed."""
    tokens, i = _tokenize(text), 0

    def take(kind: str, value: str | None = None) -> str:
        nonlocal i
        got_kind, got = tokens[i] if i < len(tokens) else ("eof", "<EOF>")
        if got_kind != kind or (value is not None and got.lower() != value):
            raise JqlError(f"Error in the JQL Query: Expecting {value or kind} but got '{got}'.")
        i += 1
        return got

    def literal() -> str:
        return take("str" if i < len(tokens) and tokens[i][0] == "str" else "word")

    clauses: list[Clause] = []
    while i < len(tokens):
        if clauses:
            take("word", "and")
        field = take("word").lower()
        if i < len(tokens) and tokens[i] in (("punct", "="), ("punct", "~")):
            op = take("punct")
            clauses.append(Clause(field, (literal(),), op))
            continue
        take("word", "in")
        take("punct", "(")
        values = [literal()]
        while i < len(tokens) and tokens[i] == ("punct", ","):
            take("punct", ",")
            values.append(literal())
        take("punct", ")")
        clauses.append(Clause(field, tuple(values)))
    return Query(tuple(clauses))


class IssueLike(Protocol):
    id: str
    key: str
    fields: dict[str, Any]  # Jira v2 shapes (project object, labels list)


IssueT = TypeVar("IssueT", bound=IssueLike)


def problems(query: Query, resolve: Callable[[str], str | None], projects: set[str]) -> list[str]:
    """Jira's 400 messages for this query: unknown fields, malformed or nonexistent keys, nonexistent projects."""
    out: list[str] = []
    for c in query.clauses:
        if c.field not in FIELDS:
            out.append(f"Field '{c.field}' does not exist or you do not have permission to view it.")
        elif (c.op == "~") != (c.field in TEXT_FIELDS):
            out.append(f"The operator '{c.op}' is not supported by the '{c.field}' field.")
        elif c.field == "key":
            for val in c.values:
                if not KEY_RE.match(val):
                    out.append(f"The issue key '{val}' for field 'key' is invalid.")
                elif resolve(val) is None:
                    out.append(f"An issue with key '{val}' does not exist for field 'key'.")
        elif c.field == "project":
            out += [
                f"The value '{x}' does not exist for the field 'project'."
                for x in c.values
                if x.upper() not in projects
            ]
    return out


def select(query: Query, issues: Iterable[IssueT], resolve: Callable[[str], str | None]) -> list[IssueT]:
    """Issues matching every clause, by id. `resolve` maps a moved issue's old key to its new one, as Jira does."""
    # Resolved once per query, not once per issue: a poll asks 100 keys of a project that may hold 10,000 issues.
    keys = {c: {resolve(v) or v.upper() for v in c.values} for c in query.clauses if c.field == "key"}
    hits = (i for i in issues if all(_holds(i, c, keys.get(c)) for c in query.clauses))
    return sorted(hits, key=lambda i: int(i.id))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _holds(issue: IssueLike, c: Clause, keys: set[str] | None) -> bool:
    if keys is not None:
        return issue.key in keys
    if c.op == "~":  # the phrase's words, in order, somewhere in the field's words
        wanted, have = _words(c.values[0]), _words(str(issue.fields.get(c.field) or ""))
        return bool(wanted) and any(have[n : n + len(wanted)] == wanted for n in range(len(have)))
    if c.field == "labels":  # labels match exactly (case-sensitive), unlike most text-ish fields
        return any(v in (issue.fields.get("labels") or []) for v in c.values)
    project = issue.fields["project"]
    return any(v.lower() in (project["key"].lower(), project["id"], project["name"].lower()) for v in c.values)
