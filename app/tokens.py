"""API tokens: from AFTERMATH_API_TOKENS or created by the CLI (only their hashes are stored); read or write scope."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Field, Session, SQLModel, select

from app.db import UTCDateTime, utcnow

SCOPES = ("read", "write")
# A configured token is a password to the API: a short one can be guessed, so start-up refuses it.
MIN_LENGTH = 16


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    scope: str = Field(max_length=8)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@dataclass(frozen=True)
class Principal:
    name: str
    scope: str

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class EntryError(ValueError):
    """An AFTERMATH_API_TOKENS entry that is refused; the message never contains the token."""

    def __init__(self, reason: str, name: str | None) -> None:
        super().__init__(reason)
        self.name = name


def parse_entry(entry: str) -> tuple[str, str, str]:
    """`[name=]token[:read|:write]` → (name, token, scope); no suffix means write, no name a short hash.

    Fails closed: anything after the last `:` must be a scope (a token cannot hold a `:`), so a mistyped `:reed` is
    refused instead of making a write token of `token:reed`; an empty or short token is refused too.
    """
    body, colon, suffix = entry.rpartition(":")
    if not colon:
        body, suffix = entry, "write"
    match = re.fullmatch(r"([A-Za-z0-9_.@-]+)=(.*)", body, flags=re.DOTALL)
    name, token = (match[1], match[2]) if match else (None, body)
    if suffix not in SCOPES:
        raise EntryError("unknown scope after ':' (use :read or :write; a token cannot contain ':')", name)
    if not token:
        raise EntryError("the token is empty", name)
    if ":" in token:
        raise EntryError("a token cannot contain ':' (only one :read or :write may end the entry)", name)
    if len(token) < MIN_LENGTH:
        raise EntryError(f"the token has {len(token)} characters; at least {MIN_LENGTH} are needed", name)
    return name or "token-" + token_hash(token)[:8], token, suffix


def check_entries(entries: list[str]) -> None:
    """Refuse a bad entry or a repeated name with a reason naming the entry (by name, else position), not its token."""
    names: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        try:
            name = parse_entry(entry)[0]
        except EntryError as exc:
            which = f"entry {position}" + (f" ({exc.name!r})" if exc.name else "")
            raise ValueError(f"{which}: {exc}") from None
        if name in names:
            raise ValueError(f"entry {position}: a second token named {name!r}")
        names.add(name)


def from_settings(entries: list[str]) -> dict[str, Principal]:
    """Configured tokens keyed by hash (so lookups compare hashes, never the secrets themselves)."""
    table: dict[str, Principal] = {}
    for entry in entries:
        name, token, scope = parse_entry(entry)
        table[token_hash(token)] = Principal(name, scope)
    return table


def authenticate(session: Session, configured: dict[str, Principal], token: str) -> Principal | None:
    digest = token_hash(token)
    for known, principal in configured.items():
        if hmac.compare_digest(known, digest):
            return principal
    stored = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    return Principal(stored.name, stored.scope) if stored else None


def create(session: Session, name: str, scope: str) -> str:
    """Make a token, keep only its hash, and return the token: this is the one time anyone sees it."""
    token = "am_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=token_hash(token), scope=scope))
    session.flush()
    return token


def any_stored(session: Session) -> bool:
    return session.exec(select(ApiToken.id).limit(1)).first() is not None


def stored(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(ApiToken.name)).all())


def revoke(session: Session, name: str) -> bool:
    """Delete the stored token of this name (it stops working at once); False when there is none."""
    row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
