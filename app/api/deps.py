"""Request dependencies: the process context and the caller's identity with the scope a route needs."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers

from app import tokens
from app.context import Context
from app.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="API token with read or write scope")
# One challenge per WWW-Authenticate line: Chromium ignores a comma-joined "Bearer, Basic realm=..." (no prompt,
# URL credentials never sent), so the backlink page could not be opened from a browser. A Headers object keeps both.
CHALLENGES = Headers(raw=[(b"www-authenticate", b"Bearer"), (b"www-authenticate", b'Basic realm="aftermath"')])


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


def _token_from(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None:
        return credentials.credentials
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        # Browsers opening the backlink page send the token as the HTTP Basic password.
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _principal(request: Request, context: Context, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    token = _token_from(request, credentials)
    principal = None
    if token:
        with context.read() as session:
            principal = tokens.authenticate(session, context.tokens, token)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or unknown API token" if token is None else "unknown API token",
            headers=CHALLENGES,
        )
    return principal


def require_read(
    request: Request, context: ContextDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    return _principal(request, context, credentials)


def require_write(
    request: Request, context: ContextDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> Principal:
    principal = _principal(request, context, credentials)
    if not principal.can_write:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"token {principal.name!r} has read scope; this route needs write"
        )
    return principal


Reader = Annotated[Principal, Depends(require_read)]
Writer = Annotated[Principal, Depends(require_write)]
