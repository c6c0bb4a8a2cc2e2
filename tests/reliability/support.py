"""Plumbing for the reliability suite: real `aftermath` processes, signed PagerDuty storms, PostgreSQL control."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psycopg
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
AFTERMATH = [sys.executable, "-m", "app.cli"]
PD_SECRET = "pd-reliability-secret-7f3a9c"  # distinctive, so a leak into any log is unmistakable
API_TOKEN = "rel-write-token-5d1e88b2"
WRITE = {"Authorization": f"Bearer {API_TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a real `aftermath` process: this machine's, minus any AFTERMATH_* of the developer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env.update(
        {
            "AFTERMATH_DATABASE_URL": database_url,
            "AFTERMATH_MAPPINGS": str(ROOT / "mappings"),
            "AFTERMATH_PAGERDUTY_SECRETS": PD_SECRET,
            "AFTERMATH_API_TOKENS": f"reliability={API_TOKEN}",
            "AFTERMATH_POLL_INTERVAL": "3600",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@dataclass
class Process:
    """One `aftermath …` child process; its stdout and stderr go to one log file, read back for leaks."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> Process:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no goodbye."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Server(Process):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"aftermath serve exited early:\n{self.output()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"aftermath serve not ready after {timeout}s:\n{self.output()[-4000:]}")


def start_server(tmp_path: Path, env: dict[str, str], name: str = "server") -> Server:
    port = free_port()
    server = Server(
        [*AFTERMATH, "serve", "--port", str(port)], env, tmp_path, tmp_path / f"{name}.log", port=port
    )
    server.start().wait_ready()
    return server


def start_worker(tmp_path: Path, env: dict[str, str], name: str, *extra: str) -> Process:
    return Process([*AFTERMATH, "worker", *extra], env, tmp_path, tmp_path / f"{name}.log").start()


# ---- PagerDuty events ------------------------------------------------------------------------------------------
def pd_body(event_id: str, incident_id: str, at: str = "2026-03-14T09:12:04.617Z") -> bytes:
    """A minimal, valid PagerDuty v3 `incident.triggered` envelope."""
    data = {
        "id": incident_id,
        "type": "incident",
        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
        "number": 1,
        "status": "triggered",
        "created_at": at[:19] + "Z",
        "title": f"Storm incident {incident_id}",
        "service": {"id": "PSVC1", "type": "service_reference", "summary": "Checkout API"},
        "teams": [{"id": "PT1", "type": "team_reference", "summary": "Payments SRE"}],
        "priority": None,
        "urgency": "low",
    }
    event = {
        "id": event_id,
        "event_type": "incident.triggered",
        "resource_type": "incident",
        "occurred_at": at,
        "agent": None,
        "client": None,
        "data": data,
    }
    return json.dumps({"event": event}).encode()


def pd_headers(body: bytes, secret: str = PD_SECRET) -> dict[str, str]:
    signature = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-PagerDuty-Signature": signature, "Content-Type": "application/json"}


@dataclass
class Delivery:
    event_id: str
    status_code: int | None = None  # None: no answer (connection refused, reset, timed out)
    status: str | None = None  # "accepted" | "duplicate" | … from a 202 body
    error: str | None = None


async def _deliver(
    client: httpx.AsyncClient, url: str, event_id: str, body: bytes, gate: asyncio.Semaphore
) -> Delivery:
    result = Delivery(event_id)
    async with gate:
        try:
            response = await client.post(url, content=body, headers=pd_headers(body))
        except httpx.HTTPError as exc:
            result.error = type(exc).__name__
            return result
    result.status_code = response.status_code
    if response.status_code == 202:
        result.status = response.json().get("status")
    return result


async def storm(
    url: str,
    event_ids: list[str],
    *,
    concurrency: int = 32,
    on_progress: Callable[[int], None] | None = None,
    timeout: float = 30.0,
) -> list[Delivery]:
    """POST one signed event per id, `concurrency` at a time; `on_progress(answered)` after each answer."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    answered = 0
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def one(event_id: str) -> Delivery:
            nonlocal answered
            body = pd_body(event_id, f"STORM-{int(event_id.rsplit('-', 1)[1]) % 97}")
            result = await _deliver(client, f"{url}/webhooks/pagerduty", event_id, body, gate)
            answered += 1
            if on_progress is not None:
                on_progress(answered)
            return result

        return list(await asyncio.gather(*(one(e) for e in event_ids)))


# ---- databases ---------------------------------------------------------------------------------------------------
def scalar(database_url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def rows(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]


def pg_ctl(action: str) -> None:
    """Stop or start this machine's PostgreSQL cluster (the one the tests use)."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", pg_version(), "main", action]
    if action == "stop":
        command += ["-m", "fast"]
    subprocess.run(command, check=action == "start", capture_output=True, timeout=60)


def pg_ready(admin_url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(admin_url, connect_timeout=2):
                return True
        except psycopg.Error:
            time.sleep(0.2)
    return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def leaked(secrets: Iterable[str], *texts: str) -> list[str]:
    """The secrets that appear in any of the texts (empty when none does)."""
    return sorted({s for s in secrets for t in texts if s and s in t})
