"""Times as people read them on the pages: `14 Mar 2026 09:12:04 UTC` inside `<time datetime="…">` (the exact
value stays machine-readable), and the time since an incident's trigger, `+3m 37s`."""

from __future__ import annotations

from datetime import UTC, date, datetime

from markupsafe import Markup, escape


def when(value: datetime | None, empty: str = "—") -> Markup:
    if value is None:
        return Markup(escape(empty))
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return Markup('<time datetime="{}">{}</time>').format(utc.isoformat(), utc.strftime("%d %b %Y %H:%M:%S UTC"))


def day(value: date | None, empty: str = "—") -> Markup:
    if value is None:
        return Markup(escape(empty))
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return Markup('<time datetime="{}">{}</time>').format(value.isoformat(), value.strftime("%d %b %Y"))


def span(seconds: float) -> str:
    """A duration to the second, largest units first: 45s, 3m 37s, 2h 5m 10s, 3d 4h 0m."""
    total = round(abs(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def since(value: datetime | None, start: datetime | None) -> str:
    """`+3m 37s` after `start`; `-12s` for an entry stamped before it (clock skew between sources); empty if unknown."""
    if value is None or start is None:
        return ""
    delta = (value - start).total_seconds()
    return ("-" if delta < 0 else "+") + span(delta)


def minutes(seconds: float | None) -> str:
    return "—" if seconds is None else span(seconds)
