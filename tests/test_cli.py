"""The `aftermath` command as a new user runs it: serve on SQLite with a first token, bad settings, tokens."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import payload

ROOT = Path(__file__).resolve().parent.parent
AFTERMATH = [sys.executable, "-m", "app.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env.update(
        {
            "AFTERMATH_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "AFTERMATH_MAPPINGS": str(ROOT / "mappings"),
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AFTERMATH, *args], cwd=tmp_path, env=_env(tmp_path, **env), capture_output=True, text=True, timeout=120
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*AFTERMATH, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_serve_migrates_prints_a_first_token_once_and_serves(tmp_path: Path) -> None:
    port = _free_port()
    proc = _serve(tmp_path, port)
    try:
        output, token = "", None
        deadline = time.time() + 60
        while time.time() < deadline and token is None:
            line = proc.stdout.readline() if proc.stdout else ""
            output += line
            match = re.search(r"^\s+(am_\S+)\s*$", line)
            token = match[1] if match else None
        assert token, output
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/incidents", headers=headers).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/incidents").status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # A second start finds a token in the database and prints none.
    second = _serve(tmp_path, port)
    try:
        time.sleep(4)
    finally:
        second.terminate()
        out, _ = second.communicate(timeout=20)
    assert "am_" not in out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AFTERMATH_POLL_INTERVAL", "soon"),
        ("AFTERMATH_DATABASE_URL", "mysql://x/y"),
        ("AFTERMATH_PUBLIC_URL", "not a url"),
        ("AFTERMATH_MAPPINGS", "/nonexistent"),
        ("AFTERMATH_WORKER", "maybe"),
    ],
)
def test_a_wrong_setting_stops_start_up_with_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    result = _run(tmp_path, "serve", **{name: value})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and name in lines[0], result.stderr


def test_a_bad_mapping_names_the_file_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "maps"
    shutil.copytree(ROOT / "mappings", folder)
    (folder / "triggers.yaml").write_text("rules:\n  - name: x\n    when: {severity: [sev9]}\n")
    result = _run(tmp_path, "check-mappings", AFTERMATH_MAPPINGS=str(folder))
    assert result.returncode == 2
    assert "triggers.yaml" in result.stderr and "rules.0.when.severity" in result.stderr
    (folder / "triggers.yaml").write_text("rules: [unclosed")
    assert "not readable YAML" in _run(tmp_path, "check-mappings", AFTERMATH_MAPPINGS=str(folder)).stderr
    ok = _run(tmp_path, "check-mappings")
    assert ok.returncode == 0 and "high-severity" in ok.stdout


def test_token_create_and_migrate(tmp_path: Path) -> None:
    assert _run(tmp_path, "migrate").returncode == 0
    created = _run(tmp_path, "token", "create", "--read", "dashboards")
    assert created.returncode == 0 and created.stdout.strip().startswith("am_")
    again = _run(tmp_path, "token", "create", "dashboards")
    assert again.returncode == 2 and "exists" in again.stderr


def test_worker_once_applies_stored_events(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    assert _run(tmp_path, "migrate").returncode == 0
    raw = payload("pagerduty/incA_01_triggered.json")
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.begin() as conn:  # what the webhook route stores before the worker runs
        conn.execute(
            text(
                "INSERT INTO inbound_event (source, external_id, event_type, status, body, received_at) "
                "VALUES ('pagerduty', 'E1', 'incident.triggered', 'accepted', :body, '2026-01-01 00:00:00')"
            ),
            {"body": raw.decode()},
        )
    result = _run(tmp_path, "worker", "--once", AFTERMATH_WORKER="off")
    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM inbound_event WHERE processed_at IS NULL")).scalar() == 0
    engine.dispose()
