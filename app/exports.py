"""CSV export of actions: RFC 4180 (the csv module's quoting, CRLF line ends), UTF-8, one header row, and cells a
spreadsheet cannot mistake for a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from app.actions import Action, is_overdue

# A spreadsheet evaluates a cell starting with one of these as a formula (CSV injection, OWASP): a leading
# apostrophe makes it text. Tab and carriage return are in OWASP's list too: some spreadsheets strip them first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HEADER = (
    *("id", "postmortem_id", "postmortem", "title", "status", "overdue", "owner", "due_date", "priority", "kind"),
    *("finding_ids", "tracker_key", "tracker_url", "tracker_status", "escalation_level", "created_at", "closed_at"),
)


def safe(value: Any) -> str:
    """The cell's text: dates and times in ISO 8601, None empty, a formula-looking text prefixed with an apostrophe."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def action_row(action: Action, postmortem_key: str | None, finding_ids: Sequence[int], today: date) -> list[str]:
    values: list[Any] = [
        *(action.id, action.postmortem_id, postmortem_key, action.title, action.status),
        "true" if is_overdue(action, today) else "false",
        *(action.owner, action.due_date, action.priority, action.kind, " ".join(str(f) for f in finding_ids)),
        *(action.tracker_key, action.tracker_url, action.tracker_status, action.escalation_level),
        *(action.created_at, action.closed_at),
    ]
    return [safe(v) for v in values]


def lines(rows: Iterable[list[str]], header: Sequence[str] = HEADER) -> Iterator[str]:
    """The CSV text, the header first, a few hundred rows per chunk (for a streamed response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
