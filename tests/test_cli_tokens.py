"""Tokens fail closed: a bad AFTERMATH_API_TOKENS entry stops start-up naming the entry, never the secret; database
tokens are listed and revoked with the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import build_context
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent


def _run(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env.update({"AFTERMATH_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "PYTHONPATH": str(ROOT)})
    env.update({"AFTERMATH_MAPPINGS": str(ROOT / "mappings"), **extra})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("entries", "names", "secret"),
    [
        ("viewer=abc123:reed", "entry 1 ('viewer'): unknown scope", "abc123"),
        ("ops=0123456789abcdef,abcde", "entry 2: the token has 5 characters", "abcde"),
        ("viewer=:read", "entry 1 ('viewer'): the token is empty", None),
        (":write", "entry 1: the token is empty", None),
        ("x=0123456789abcdef:write:read", "entry 1 ('x'): a token cannot contain ':'", "0123456789abcdef"),
        ("x=0123456789abcdef,x=fedcba9876543210", "entry 2: a second token named 'x'", "fedcba9876543210"),
    ],
)
def test_a_bad_token_entry_stops_start_up_naming_it_not_its_secret(
    tmp_path: Path, entries: str, names: str, secret: str | None
) -> None:
    result = _run(tmp_path, "serve", AFTERMATH_API_TOKENS=entries)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aftermath: AFTERMATH_API_TOKENS: "), result.stderr
    assert names in lines[0]
    if secret:
        assert secret not in result.stderr + result.stdout


def test_token_list_and_revoke(tmp_path: Path) -> None:
    env_token = "ci=" + "c" * 20 + ":read"
    created = _run(tmp_path, "token", "create", "--read", "dashboards", AFTERMATH_API_TOKENS=env_token)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert _run(tmp_path, "token", "create", "deploys", AFTERMATH_API_TOKENS=env_token).returncode == 0
    listed = _run(tmp_path, "token", "list", AFTERMATH_API_TOKENS=env_token)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [(r[0], r[1], r[2].split(",")[0]) for r in rows] == [
        ("dashboards", "read", "database"),
        ("deploys", "write", "database"),
        ("ci", "read", "AFTERMATH_API_TOKENS (remove it there to revoke it)"),
    ]
    assert "c" * 20 not in listed.stdout and token not in listed.stdout

    context = build_context(make_settings(f"sqlite:///{tmp_path / 'a.db'}"))
    try:
        with TestClient(create_app(context, embedded_worker=False)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            assert client.get("/api/v1/incidents", headers=headers).status_code == 200
            revoked = _run(tmp_path, "token", "revoke", "dashboards")
            assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
            assert client.get("/api/v1/incidents", headers=headers).status_code == 401
    finally:
        context.engine.dispose()
    again = _run(tmp_path, "token", "revoke", "dashboards")
    assert again.returncode == 2 and "no token named 'dashboards'" in again.stderr
    from_env = _run(tmp_path, "token", "revoke", "ci", AFTERMATH_API_TOKENS=env_token)
    assert from_env.returncode == 2 and "AFTERMATH_API_TOKENS" in from_env.stderr
    assert [line.split("\t")[0] for line in _run(tmp_path, "token", "list").stdout.splitlines()] == ["deploys"]
