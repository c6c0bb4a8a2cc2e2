"""Logging set-up: text, or one JSON object per line; every configured secret scrubbed from every line, whoever logs
it; and on each line the ids of what it is about (request, inbound event, action, job), bound as context variables."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
IDS = ("request_id", "event_id", "action_id", "job_id", "target")
_BOUND: ContextVar[dict[str, Any]] = ContextVar("aftermath_log_ids", default={})  # noqa: B039 (never mutated)
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def bind(**ids: Any) -> Token[dict[str, Any]]:
    """Add ids to every line logged from here on in this context (until `unbind` with the token)."""
    return _BOUND.set({**_BOUND.get(), **{k: v for k, v in ids.items() if v is not None}})


def unbind(token: Token[dict[str, Any]]) -> None:
    _BOUND.reset(token)


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """`bind` for the duration of a block."""
    token = bind(**ids)
    try:
        yield
    finally:
        unbind(token)


class BoundIds(logging.Filter):
    """Copies the bound ids onto the record (in the thread that logs it, where the context variables are)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _BOUND.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class _Scrubbing(logging.Formatter):
    """Formats, then removes every secret from the whole line: message, arguments, traceback and extra fields alike."""

    secrets: list[str] = []

    def scrub(self, line: str) -> str:
        for secret in self.secrets:
            if secret in line:
                line = line.replace(secret, "[redacted]")
        return line


class TextFormatter(_Scrubbing):
    def __init__(self) -> None:
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{name}={value}" for name in IDS if (value := getattr(record, name, None)) is not None)
        line = super().format(record)
        return self.scrub(f"{line} [{ids}]" if ids else line)


class JsonLineFormatter(_Scrubbing, JsonFormatter):
    def __init__(self) -> None:
        JsonFormatter.__init__(
            self,
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

    def format(self, record: logging.LogRecord) -> str:
        return self.scrub(JsonFormatter.format(self, record))


def formatter(kind: LogFormat, secrets: list[str]) -> logging.Formatter:
    made: _Scrubbing = JsonLineFormatter() if kind == "json" else TextFormatter()
    # Longest first, so a secret containing another is replaced whole; in JSON a secret may be written escaped.
    plain = {s for s in secrets if len(s) >= 4}
    escaped = {json.dumps(s)[1:-1] for s in plain} if kind == "json" else set()
    made.secrets = sorted(plain | escaped, key=len, reverse=True)
    return made


def configure(secrets: list[str], kind: LogFormat = "text", level: int = logging.INFO) -> None:
    """One handler on the root logger, to stderr, in the chosen format; libraries' loggers propagate to it."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "aftermath", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.aftermath = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(formatter(kind, secrets))
    handler.filters = [BoundIds()]
    root.setLevel(level)
