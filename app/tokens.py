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


def parse_entry(entry: str) -> tuple[str, str, str]:
    """`[name=]token[:read|:write]` → (name, token, scope); no suffix means write, no name a short hash."""
    scope = "write"
    for suffix in SCOPES:
        if entry.endswith(":" + suffix):
            entry, scope = entry[: -len(suffix) - 1], suffix
    name, token = None, entry
    match = re.fullmatch(r"([A-Za-z0-9_.@-]+)=(.+)", entry)
    if match:
        name, token = match[1], match[2]
    if not token:
        raise ValueError("an API token entry has an empty token")
    return name or "token-" + token_hash(token)[:8], token, scope


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
