"""Service settings: exactly the AFTERMATH_* variables of the spec, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app import shipped
from connectors.targets import Connection, TrackerKind

SecretList = Annotated[list[SecretStr], NoDecode]
DEFAULT_GITHUB_API = "https://api.github.com"


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value.rstrip("/")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFTERMATH_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./aftermath.db"
    public_url: str = "http://localhost:8000"
    api_tokens: SecretList = Field(default_factory=list)
    pagerduty_secrets: SecretList = Field(default_factory=list)
    opsgenie_token: SecretStr | None = None
    jira_url: str | None = None
    jira_user: str | None = None
    jira_token: SecretStr | None = None
    github_token: SecretStr | None = None
    github_api_url: str = DEFAULT_GITHUB_API
    github_webhook_secret: SecretStr | None = None
    jira_webhook_secret: SecretStr | None = None
    reminder_interval: int = Field(default=604800, ge=0)
    mappings: Path | None = None  # unset: ./mappings when there is one, else the shipped defaults (mappings_folder)
    poll_interval: float = Field(default=300, gt=0)
    worker: Literal["embedded", "off"] = "embedded"
    log_format: Literal["text", "json"] = "text"

    @field_validator("api_tokens", "pagerduty_secrets", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "opsgenie_token",
        "jira_url",
        "jira_user",
        "jira_token",
        "github_token",
        "github_webhook_secret",
        "jira_webhook_secret",
        "mappings",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty secret would verify against an empty key, which anyone can forge: treat it as unset.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_tokens")
    @classmethod
    def _token_entries(cls, value: list[SecretStr]) -> list[SecretStr]:
        from app.tokens import check_entries  # the one parser of `[name=]token[:read|:write]`

        check_entries([entry.get_secret_value() for entry in value])
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"{value!r} is not a SQLAlchemy URL (e.g. sqlite:///./aftermath.db)") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite:// and postgresql+psycopg:// URLs are supported")
        return value

    @field_validator("public_url", "github_api_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("jira_url")
    @classmethod
    def _jira_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("mappings")
    @classmethod
    def _mappings_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            where = "" if value.is_absolute() else f" (from {Path.cwd()})"
            raise ValueError(
                f"{value}{where} is not a folder; point it at a folder of mapping files, or unset it to use the "
                "shipped ones (`aftermath init` writes a copy to edit)"
            )
        return value

    def mappings_folder(self) -> Path:
        """AFTERMATH_MAPPINGS; unset, ./mappings when the working directory has one, else the shipped mappings."""
        if self.mappings is not None:
            return self.mappings
        here = Path("mappings")
        return here if here.is_dir() else shipped.mappings()

    @model_validator(mode="after")
    def _no_half_integration(self) -> Settings:
        """A tracker with some of its settings and not the rest would fail at its first request, long after start-up;
        refuse it now, naming what is missing."""
        pairs = [
            ("AFTERMATH_JIRA_TOKEN", self.jira_token, "AFTERMATH_JIRA_URL", self.jira_url),
            ("AFTERMATH_JIRA_URL", self.jira_url, "AFTERMATH_JIRA_TOKEN", self.jira_token),
            ("AFTERMATH_JIRA_URL", self.jira_url, "AFTERMATH_JIRA_USER", self.jira_user),
            ("AFTERMATH_GITHUB_TOKEN", self.github_token, "AFTERMATH_GITHUB_API_URL", self._set("github_api_url")),
        ]
        for missing, missing_value, present, present_value in pairs:
            if present_value and not missing_value:
                raise PydanticCustomError(
                    "half_configured",
                    "{missing}: not set, but {present} is; set both to use that tracker, or neither",
                    {"missing": missing, "present": present},
                )
        return self

    def _set(self, name: str) -> bool:
        return name in self.model_fields_set

    def integrations(self) -> str:
        """One line naming what is on: alert sources, trackers (which kind of Jira), the trackers' own webhooks."""
        jira = None
        if self.connection(TrackerKind.JIRA):
            jira = "Jira Cloud" if self.jira_user else "Jira Server/Data Center"
        github = None
        if self.connection(TrackerKind.GITHUB):
            github = "GitHub" if self.github_api_url == DEFAULT_GITHUB_API else "GitHub Enterprise Server"
        hooks = [
            name
            for name, secret in (("Jira", self.jira_webhook_secret), ("GitHub", self.github_webhook_secret))
            if secret
        ]
        named = {
            "PagerDuty": bool(self.pagerduty_secrets),
            "Opsgenie": self.opsgenie_token is not None,
            jira or "Jira": jira is not None,
            github or "GitHub": github is not None,
            f"tracker webhooks ({', '.join(hooks) or 'none'})": bool(hooks),
        }
        on = [name for name, enabled in named.items() if enabled]
        off = [name.split(" (")[0] for name, enabled in named.items() if not enabled]
        return f"integrations enabled: {', '.join(on) or 'none'}; off: {', '.join(off) or 'none'}"

    def connection(self, kind: TrackerKind) -> Connection | None:
        """How to reach the tracker of this kind, or None when its settings are absent."""
        if kind == TrackerKind.JIRA and self.jira_url and self.jira_token:
            return Connection(self.jira_url, self.jira_token.get_secret_value(), self.jira_user)
        if kind == TrackerKind.GITHUB and self.github_token:
            return Connection(self.github_api_url, self.github_token.get_secret_value())
        return None

    def webhook_secret(self, kind: TrackerKind) -> tuple[str, str | None]:
        """The variable holding the secret of this tracker's own webhook, and its value (None: the route is off)."""
        secret = self.jira_webhook_secret if kind == TrackerKind.JIRA else self.github_webhook_secret
        return f"AFTERMATH_{kind.upper()}_WEBHOOK_SECRET", secret.get_secret_value() if secret else None

    def secrets(self) -> list[str]:
        """Every configured secret, so logs and errors can be scrubbed of them."""
        from app.tokens import parse_entry

        values = [
            *self.pagerduty_secrets,
            self.opsgenie_token,
            self.jira_token,
            self.github_token,
            self.github_webhook_secret,
            self.jira_webhook_secret,
        ]
        revealed = [v.get_secret_value() for v in values if v is not None]
        revealed += [parse_entry(entry.get_secret_value())[1] for entry in self.api_tokens]
        return [v for v in revealed if v]


class SettingsError(Exception):
    """A present-but-wrong setting; the message is one line naming the variable and the fix."""


def describe(error: ValidationError) -> str:
    first = error.errors()[0]
    if not first["loc"]:  # a rule over several settings: its message names them
        return str(first["msg"])
    return f"AFTERMATH_{str(first['loc'][0]).upper()}: {first['msg'].removeprefix('Value error, ')}"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
