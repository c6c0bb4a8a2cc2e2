"""Benchmark plumbing: throw-away databases, server processes (started and stopped by their own ids), peak RSS."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
AFTERMATH = str(ROOT / ".venv" / "bin" / "aftermath")
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("AFTERMATH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


TOKEN = "bench-api-token-0000"  # the API token server_env configures; 16 characters at least


def measure(port: int, make_path: Any, count: int, warmup: int = 10) -> dict[str, Any]:
    """Sequential GETs on one keep-alive connection, `make_path()` naming each; client-side latency, the answers'
    statuses, and the mean length of their JSON `items`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times, statuses, items = [], {}, 0
    for i in range(warmup + count):
        path = make_path()
        started = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if i >= warmup:
            times.append(elapsed * 1000)
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            if response.status == 200 and body.startswith(b"{"):
                found = json.loads(body)
                items += len(found.get("items", [])) if isinstance(found, dict) else 0
    conn.close()
    times.sort()
    return {
        "requests": count,
        "p50_ms": round(times[len(times) // 2], 1),
        "p95_ms": round(times[int(len(times) * 0.95)], 1),
        "max_ms": round(times[-1], 1),
        "statuses": statuses,
        "mean_items": round(items / count, 1),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Database:
    """A fresh SQLite file or PostgreSQL database, dropped by close()."""

    kind: str
    workdir: Path
    url: str = ""
    name: str = ""
    reuse: str | None = None  # the name of an existing PostgreSQL database to use as it is

    def __post_init__(self) -> None:
        if self.kind == "sqlite":
            self.url = f"sqlite:///{self.workdir / 'aftermath.db'}"
        else:
            self.name = self.reuse or f"aftermath_bench_{uuid.uuid4().hex[:8]}"
            if not self.reuse:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{self.name}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.workdir / "aftermath.db", timeout=30) as conn:
                return list(conn.execute(sql).fetchall())
        with psycopg.connect(self.url.replace("+psycopg", "")) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[arg-type]

    def close(self) -> None:
        if self.kind == "postgres":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class Server:
    """A server process group this script started; stop() ends exactly that group."""

    command: list[str]
    env: dict[str, str]
    log: Path
    port: int
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    peaks: dict[int, int] = field(default_factory=dict)

    def start(self, timeout: float = 60.0) -> Server:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            if self._ready():
                time.sleep(0.5)  # every worker process is up (each binds after its start-up)
                return self
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout}s; see {self.log}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
            return len(self.pids()) >= 1
        except OSError:
            return False

    def pids(self) -> list[int]:
        """The server's process and its descendants (uvicorn's worker processes)."""
        assert self.proc is not None
        tree, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    kids = [int(x) for x in task.read_text().split()]
                except OSError:
                    continue
                tree.extend(kids)
                frontier.extend(kids)
        return tree

    def peak_rss_mb(self) -> dict[str, float]:
        """VmHWM (peak resident set) of every process in the tree, in MiB, keyed by role."""
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            self.peaks[pid] = max(self.peaks.get(pid, 0), int(line.split()[1]))
        assert self.proc is not None
        return {
            ("main" if pid == self.proc.pid else f"child-{pid}"): round(kb / 1024, 1) for pid, kb in self.peaks.items()
        }

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created with start_new_session
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env.update(
        {
            "AFTERMATH_DATABASE_URL": database_url,
            "AFTERMATH_API_TOKENS": f"bench={TOKEN}",
            "AFTERMATH_PAGERDUTY_SECRETS": "bench-pagerduty-secret",
            "AFTERMATH_MAPPINGS": str(ROOT / "mappings"),
            "AFTERMATH_WORKER": "embedded",
            "AFTERMATH_POLL_INTERVAL": "86400",
            "AFTERMATH_REMINDER_INTERVAL": "0",
        }
    )
    env.update(extra)
    return env


def machine() -> dict[str, Any]:
    cpu = next(
        (
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        ),
        "?",
    )
    mem_kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 1024 / 1024, 1)}
