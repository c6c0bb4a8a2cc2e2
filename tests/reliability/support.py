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


def start_server(tmp_path: Path, env: dict[str, str], name: str = "server", *extra: str) -> Server:
    port = free_port()
    args = [*AFTERMATH, "serve", "--port", str(port), *extra]
    server = Server(args, env, tmp_path, tmp_path / f"{name}.log", port=port).start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
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


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes
) -> tuple[int, bytes]:
    """One POST on a kept-alive connection; (status, body) of the answer."""
    head = [
        "POST /webhooks/pagerduty HTTP/1.1",
        f"Host: {host}",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in pd_headers(body).items()),
        "",
        "",
    ]
    writer.write("\r\n".join(head).encode() + body)
    await writer.drain()
    status_line = await reader.readuntil(b"\r\n")
    length = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def storm(
    url: str,
    event_ids: list[str],
    *,
    concurrency: int = 32,
    on_progress: Callable[[int], None] | None = None,
    timeout: float = 30.0,
) -> list[Delivery]:
    """POST one signed event per id over `concurrency` kept-alive connections; `on_progress(answered)` after each.

    A bare asyncio HTTP/1.1 client: httpx spends ~4 ms of CPU per request, which on two cores would measure the
    client rather than the service. A request that gets no answer (refused, reset, timed out) is recorded as such.
    """
    host_port = url.split("://", 1)[1]
    host, port = host_port.split(":")
    pending: asyncio.Queue[Delivery] = asyncio.Queue()
    results = [Delivery(event_id) for event_id in event_ids]
    for result in results:
        pending.put_nowait(result)
    answered = 0

    async def connection() -> None:
        nonlocal answered
        writer: asyncio.StreamWriter | None = None
        reader: asyncio.StreamReader | None = None
        while not pending.empty():
            result = pending.get_nowait()
            body = pd_body(result.event_id, f"STORM-{int(result.event_id.rsplit('-', 1)[1]) % 97}")
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
                assert reader is not None
                status, raw = await asyncio.wait_for(_exchange(reader, writer, host_port, body), timeout)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                result.error = type(exc).__name__
                if writer is not None:
                    writer.close()
                writer = reader = None
            else:
                result.status_code = status
                if status == 202:
                    result.status = json.loads(raw).get("status")
            answered += 1
            if on_progress is not None:
                on_progress(answered)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return results


# ---- databases ---------------------------------------------------------------------------------------------------
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
    """Stop or start this machine's PostgreSQL cluster (the one the tests use); needs root, as in CI."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", pg_version(), "main", action]
    if action == "stop":
        command += ["-m", "fast"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr or done.stdout}"


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
