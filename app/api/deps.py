"""Request dependencies: the process context and the caller's identity with the scope a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from app import tokens
from app.context import Context
from app.tokens import Principal

bearer = HTTPBearer(auto_error=False, description="API token with read or write scope")


class _Basic(HTTPBasic):
    """HTTP Basic credentials, or None: a malformed Basic header is no credential, not an error of its own (the
    caller decides what is missing, and may accept another header instead)."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            return None


# Browsers opening the postmortem page send the token as the HTTP Basic password (any user name).
basic = _Basic(auto_error=False, description="the API token as the password, any user name (for browsers)")
# One challenge per WWW-Authenticate line: Chromium ignores a comma-joined "Bearer, Basic realm=..." (no prompt,
# URL credentials never sent), so the backlink page could not be opened from a browser. A Headers object keeps both.
CHALLENGES = Headers(raw=[(b"www-authenticate", b"Bearer"), (b"www-authenticate", b'Basic realm="aftermath"')])


def get_context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(get_context)]


Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
Basic = Annotated[HTTPBasicCredentials | None, Depends(basic)]


def _principal(
    context: Context, bearer_token: HTTPAuthorizationCredentials | None, basic: HTTPBasicCredentials | None
) -> Principal:
    token = (bearer_token.credentials if bearer_token else None) or (basic.password if basic else None) or None
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


def require_read(context: ContextDep, token: Bearer, password: Basic) -> Principal:
    return _principal(context, token, password)


def require_write(context: ContextDep, token: Bearer, password: Basic) -> Principal:
    principal = _principal(context, token, password)
    if not principal.can_write:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"token {principal.name!r} has read scope; this route needs write"
        )
    return principal


Reader = Annotated[Principal, Depends(require_read)]
Writer = Annotated[Principal, Depends(require_write)]
