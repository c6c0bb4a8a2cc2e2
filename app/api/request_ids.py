"""Request ids: the caller's `X-Request-ID` (or a new one), on every log line the request causes and on the answer."""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import bind, unbind

HEADER = b"x-request-id"
# What a proxy or client may send as an id, and nothing more: a header is attacker-controlled text headed for the logs.
_USABLE = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
# Made ids need to be unique, not unguessable: a random prefix per process and a counter (reading the kernel's random
# source for every request showed in the server's profile under a webhook storm).
_PREFIX = os.urandom(4).hex()
_NEXT = itertools.count(1)


def _made() -> bytes:
    return f"{_PREFIX}{next(_NEXT):08x}".encode()


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        raw = given if given is not None and _USABLE.fullmatch(given) else _made()

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, raw)]
            await send(message)

        token = bind(request_id=raw.decode())
        try:
            await self.app(scope, receive, answer)
        finally:
            unbind(token)
