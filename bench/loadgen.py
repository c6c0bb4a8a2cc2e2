"""Open-loop HTTP load generator (its own process): pre-signed deliveries sent at a fixed rate over keep-alive
connections; latency is measured from each request's *scheduled* send time, so a slow server cannot hide its
queueing by slowing the client down (no coordinated omission). Responses are parsed by httptools, in C.

    python bench/loadgen.py --port 8000 --rate 1500 --duration 10 --events FILE --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httptools
import uvloop

PATH = "/webhooks/pagerduty"


def _request(host: str, port: int, signature: str, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"X-PagerDuty-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), bytes(self.body)))
        self.body.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = [line.split("\t", 2) for line in Path(args.events).read_text().splitlines()]
    total = min(len(rows), int(args.rate * args.duration))
    requests = [_request(args.host, args.port, sig, body.encode()) for _, sig, body in rows[:total]]
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = [-1.0] * total
    statuses: dict[str, int] = {}
    accepted: list[str] = []
    errors: list[str] = []

    async def connect() -> Connection:
        _, protocol = await loop.create_connection(Connection, args.host, args.port)
        return protocol

    async def connection() -> None:
        conn = await connect()
        while (item := await queue.get()) is not None:
            index, scheduled = item
            try:
                status, body = await conn.request(requests[index])
            except (OSError, httptools.HttpParserError) as exc:
                errors.append(type(exc).__name__)
                if conn.transport is not None:
                    conn.transport.close()
                conn = await connect()
                continue
            latencies[index] = loop.time() - scheduled
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 202 and b'"accepted"' in body:
                accepted.append(rows[index][0])
        if conn.transport is not None:
            conn.transport.close()

    workers = [asyncio.create_task(connection()) for _ in range(args.connections)]
    await asyncio.sleep(0.2)  # connections are open before the clock starts
    start = loop.time() + 0.05
    sent = 0
    while sent < total:
        now = loop.time()
        while sent < total and start + sent / args.rate <= now:
            queue.put_nowait((sent, start + sent / args.rate))
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / args.rate - loop.time()))
    for _ in workers:
        queue.put_nowait(None)
    scheduled_end = start + total / args.rate
    done, pending = await asyncio.wait(workers, timeout=args.grace)
    for task in pending:
        task.cancel()
    errors += [repr(task.exception()) for task in done if task.exception() is not None]
    elapsed = loop.time() - start
    answered = sorted(x for x in latencies if x >= 0)

    def pct(q: float) -> float | None:
        return round(answered[min(len(answered) - 1, int(q * len(answered)))] * 1000, 2) if answered else None

    return {
        "rate": args.rate,
        "scheduled": total,
        "answered": len(answered),
        "unanswered": total - len(answered),
        "elapsed_s": round(elapsed, 2),
        "late_finish_s": round(max(0.0, loop.time() - scheduled_end), 2),
        "achieved_rps": round(len(answered) / max(elapsed, 1e-9), 1),
        "statuses": statuses,
        "non_2xx": sum(n for s, n in statuses.items() if not s.startswith("2")) + (total - len(answered)),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(answered[-1] * 1000, 2) if answered else None,
        "accepted_ids": accepted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to wait for answers after the last send")
    parser.add_argument("--events", required=True, help="file of event_id<TAB>signature<TAB>body lines")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = time.time()
    result = uvloop.run(run(args))
    result["wall_s"] = round(time.time() - started, 2)
    Path(args.out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
