"""Domain errors; the API maps each to its HTTP status, the worker and CLI to a message."""

from typing import Any


class DomainError(Exception):
    status_code = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra  # more of the answer's body beside `detail` (JSON-able), e.g. what is missing


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    status_code = 422
