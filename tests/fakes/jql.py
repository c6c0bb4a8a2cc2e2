"""A small JQL subset for the fake Jira: parse, validate the way Jira does, then filter and order issues.

Covers what Aftermath sends (`key in (...)`, `labels = "x"`, `project = X AND ...`, `issue in fn("...")`, ORDER BY).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

FIELDS = {"key", "issuekey", "id", "project", "labels", "status", "statuscategory", "resolution", "issuetype", "type"}
FIELDS |= {"assignee", "summary", "description", "text", "created", "updated", "duedate", "issue"}
KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$", re.I)
EQUALITY = ("=", "!=", "in", "not in")


class JqlError(ValueError):
    """The query is not valid JQL (as far as this subset knows); the message mimics Jira's wording."""


@dataclass(frozen=True)
class Clause:
    field: str  # lower-cased field name ("key", "labels", "issue" for functions)
    op: str  # "=", "!=", "in", "not in", "is", "is not", "~", "!~", ">", ">=", "<", "<="
    values: tuple[str, ...]  # literal values as written (unquoted); ("EMPTY",) for `is EMPTY`
    func: str | None = None  # e.g. "issuesWithRemoteLinksByGlobalId" for `issue in fn(args)`


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or" | "not"
    parts: tuple[Node, ...]


Node = Clause | BoolOp


@dataclass(frozen=True)
class Query:
    where: Node | None  # None = unbounded (Jira's search/jql rejects that)
    order_by: tuple[tuple[str, bool], ...]  # (field, descending)


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>!=|>=|<=|!~|=|>|<|~)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z0-9_.\-/:*\[\]]+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "order", "by", "asc", "desc"}


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise JqlError(
                f"Error in the JQL Query: The character '{text[pos:].strip()[:1]}' is a reserved JQL character."
            )
        pos = m.end()
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif kind == "word" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self, kind: str | None = None, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        k, v = self.tokens[self.i]
        return (kind is None or k == kind) and (value is None or v == value)

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        if not self.peek(kind, value):
            got = self.tokens[self.i][1] if self.i < len(self.tokens) else "<EOF>"
            raise JqlError(f"Error in the JQL Query: Expecting {value or kind or 'more input'} but got '{got}'.")
        self.i += 1
        return self.tokens[self.i - 1][1]

    def query(self) -> Query:
        where = None if self.peek("kw", "order") or self.i >= len(self.tokens) else self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.peek("kw", "order"):
            self.take("kw", "order")
            self.take("kw", "by")
            while True:
                name = self.value_token().lower()
                desc = False
                if self.peek("kw", "asc") or self.peek("kw", "desc"):
                    desc = self.take() == "desc"
                order.append((name, desc))
                if not self.peek("punct", ","):
                    break
                self.take()
        if self.i < len(self.tokens):
            raise JqlError(f"Error in the JQL Query: Expecting end of query but got '{self.tokens[self.i][1]}'.")
        return Query(where, tuple(order))

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.peek("kw", "or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.unary()]
        while self.peek("kw", "and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def unary(self) -> Node:
        if self.peek("kw", "not"):
            self.take()
            return BoolOp("not", (self.unary(),))
        if self.peek("punct", "("):
            self.take()
            node = self.or_expr()
            self.take("punct", ")")
            return node
        return self.clause()

    def value_token(self) -> str:
        if self.peek("str") or self.peek("word"):
            return self.take()
        return self.take("word")

    def clause(self) -> Clause:
        field = self.value_token().lower()
        if self.peek("op") or self.peek("kw", "in"):
            op = self.take()
        elif self.peek("kw", "not"):
            self.take()
            self.take("kw", "in")
            op = "not in"
        elif self.peek("kw", "is"):
            self.take()
            op = "is"
            if self.peek("kw", "not"):
                self.take()
                op = "is not"
        else:
            raise JqlError(f"Error in the JQL Query: Expecting operator after '{field}'.")
        if op in ("in", "not in"):
            if self.peek("word") and self.i + 1 < len(self.tokens) and self.tokens[self.i + 1] == ("punct", "("):
                func = self.take()  # a JQL function: issue in issuesWithRemoteLinksByGlobalId("x")
                return Clause(field, op, self.value_list(), func)
            return Clause(field, op, self.value_list())
        return Clause(field, op, (self.value_token(),))

    def value_list(self) -> tuple[str, ...]:
        self.take("punct", "(")
        values: list[str] = []
        while not self.peek("punct", ")"):
            values.append(self.value_token())
            if not self.peek("punct", ")"):
                self.take("punct", ",")
        self.take("punct", ")")
        return tuple(values)


def parse(text: str) -> Query:
    """Parse `text`; raises JqlError with Jira-like wording when it is outside the subset or malformed."""
    return _Parser(text).query()


def clauses(node: Node | None) -> Iterator[Clause]:
    """Every clause in the tree (used to validate keys/projects before evaluating, as Jira does)."""
    if node is None:
        return
    if isinstance(node, Clause):
        yield node
        return
    for part in node.parts:
        yield from clauses(part)


def evaluate(node: Node | None, predicate: Callable[[Clause], bool]) -> bool:
    """True when the tree holds, asking `predicate` about each clause."""
    if node is None:
        return True
    if isinstance(node, Clause):
        return predicate(node)
    if node.op == "not":
        return not evaluate(node.parts[0], predicate)
    results = (evaluate(p, predicate) for p in node.parts)
    return all(results) if node.op == "and" else any(results)


class IssueLike(Protocol):
    id: str
    key: str
    fields: dict[str, Any]  # Jira v2 shapes (status/project/... objects)
    remote_links: list[dict[str, Any]]


IssueT = TypeVar("IssueT", bound=IssueLike)


def problems(query: Query, resolve: Callable[[str], str | None], projects: set[str]) -> list[str]:
    """Jira's 400 messages for this query: unknown fields/functions, nonexistent keys and projects."""
    out: list[str] = []
    for c in clauses(query.where):
        if c.field not in FIELDS or (c.field == "issue") != bool(c.func):
            out.append(f"Field '{c.field}' does not exist or you do not have permission to view it.")
        elif c.func and c.func.lower() != "issueswithremotelinksbyglobalid":
            out.append(f"Unable to find JQL function '{c.func}()'.")
        elif c.field in ("key", "issuekey") and c.op in EQUALITY:
            for val in c.values:
                if not KEY_RE.match(val):
                    out.append(f"The issue key '{val}' for field '{c.field}' is invalid.")
                elif resolve(val) is None:
                    out.append(f"An issue with key '{val}' does not exist for field '{c.field}'.")
        elif c.field == "project" and c.op in EQUALITY:
            out += [
                f"The value '{x}' does not exist for the field 'project'."
                for x in c.values
                if x.upper() not in projects
            ]
    return out


def select(query: Query, issues: Iterable[IssueT], resolve: Callable[[str], str | None]) -> list[IssueT]:
    """Issues matching `query.where`, in ORDER BY order (default: id ascending). `resolve` maps old keys to new."""
    keys = {
        c: {resolve(v) or v.upper() for v in c.values} for c in clauses(query.where) if c.field in ("key", "issuekey")
    }
    hits = [i for i in issues if evaluate(query.where, lambda c, i=i: _holds(i, c, keys.get(c)))]  # type: ignore[misc]
    for name, desc in reversed(query.order_by or (("id", False),)):
        hits.sort(key=lambda i, n=name: _sort_key(i, n), reverse=desc)  # type: ignore[misc]
    return hits


def _holds(issue: IssueLike, c: Clause, resolved_keys: set[str] | None) -> bool:
    f = issue.fields
    if c.func:
        hit = any(link.get("globalId") in c.values for link in issue.remote_links)
        return hit if c.op == "in" else not hit
    if c.field in ("created", "updated", "duedate") and c.op in (">", ">=", "<", "<="):
        have_t, want_t = when(f.get(c.field)), when(c.values[0])
        if have_t is None or want_t is None:
            return False
        return {">": have_t > want_t, ">=": have_t >= want_t, "<": have_t < want_t, "<=": have_t <= want_t}[c.op]
    if resolved_keys is not None:
        have, wants = [issue.key], list(resolved_keys)
    elif c.field == "labels":  # labels match exactly (case-sensitive), unlike most text-ish fields
        have, wants = list(f.get("labels") or []), list(c.values)
    else:
        have, wants = [x.lower() for x in _attribute(issue, c.field)], [x.lower() for x in c.values]
    if c.op in ("~", "!~"):
        hit = any(w in h for w in wants for h in have)
        return hit if c.op == "~" else not hit
    empty = any(w.upper() in ("EMPTY", "NULL") or (c.field == "resolution" and w == "unresolved") for w in wants)
    hit = any(w in have for w in wants) or (empty and not have)
    return hit if c.op in ("=", "in", "is") else not hit


def _attribute(issue: IssueLike, name: str) -> list[str]:
    f = issue.fields
    status, assignee = f.get("status") or {}, f.get("assignee") or {}
    values: dict[str, list[Any]] = {
        "id": [issue.id],
        "project": [f["project"]["key"], f["project"]["id"], f["project"]["name"]],
        "status": [status.get("name"), status.get("id")],
        "statuscategory": [status.get("statusCategory", {}).get(k) for k in ("key", "name", "id")],
        "resolution": [(f.get("resolution") or {}).get("name")],
        "issuetype": [f["issuetype"]["name"], f["issuetype"]["id"]],
        "assignee": [assignee.get("accountId") or assignee.get("name")],
        "summary": [f.get("summary")],
        "description": [f.get("description")],  # str() of an ADF dict still contains its text
        "duedate": [f.get("duedate")],
    }
    values["type"], values["text"] = values["issuetype"], values["summary"] + values["description"]
    return [str(x) for x in values.get(name, []) if x not in (None, "")]


def when(text: Any) -> datetime | None:
    """A Jira timestamp or a JQL date literal (yyyy/MM/dd [HH:mm], taken as UTC) as an aware datetime."""
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _sort_key(issue: IssueLike, name: str) -> Any:
    if name in ("key", "issuekey"):
        project, _, num = issue.key.rpartition("-")
        return (project, int(num))
    if name in ("created", "updated"):
        return when(issue.fields.get(name)) or datetime.min.replace(tzinfo=UTC)
    return int(issue.id)
