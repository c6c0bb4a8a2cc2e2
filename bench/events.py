"""Signed PagerDuty v3 deliveries with distinct event ids, written one per line for wrk and the asyncio client.

Each line is `event_id<TAB>X-PagerDuty-Signature<TAB>compact JSON body`. Incidents follow the shared sample
lifecycle (triggered, acknowledged, priority updated, annotated, status update, resolved), starting five minutes
before generation: nine incidents in ten are P3 and resolved within about five minutes (no postmortem is due); one in
ten keeps the sample's P1 and its 52 minutes, so the embedded worker also opens postmortems, as in an incident storm.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

SECRET = "bench-pagerduty-secret"
SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "payloads" / "pagerduty"
LIFECYCLE = [
    "incA_01_triggered.json",
    "incA_02_acknowledged.json",
    "incA_03_priority_updated.json",
    "incA_04_annotated.json",
    "incA_05_status_update_published.json",
    "incA_06_resolved.json",
]
INCIDENT_ID, INCIDENT_KEY = "Q1VZ8M2KX4TB7N", "3f9c2a71e4b84d0c9e57a6b1d2c8f045"
SAMPLE_START = datetime(2026, 3, 14, 9, 12, 4, tzinfo=UTC)
_TIME = re.compile(r'"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)"')


def _retimed(body: str, start: datetime, scale: float) -> str:
    def shift(match: re.Match[str]) -> str:
        at = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        return (
            '"' + (start + (at - SAMPLE_START) * scale).isoformat(timespec="milliseconds").replace("+00:00", "Z") + '"'
        )

    return _TIME.sub(shift, body)


def _templates(scale: float) -> list[tuple[str, str]]:
    """(sample event id, compact body) for each lifecycle step, its times moved to now and scaled."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    out = []
    for name in LIFECYCLE:
        doc = json.loads((SAMPLES / name).read_text())
        out.append((doc["event"]["id"], _retimed(json.dumps(doc, separators=(",", ":")), start, scale)))
    return out


def template(step: str) -> str:
    """The sample's compact body for one lifecycle step ("triggered", "acknowledged", "annotated", …), as shipped."""
    name = next(n for n in LIFECYCLE if n.split("_", 2)[2].startswith(step))
    return json.dumps(json.loads((SAMPLES / name).read_text()), separators=(",", ":"))


def sign(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def generate(count: int, prefix: str) -> list[tuple[str, str, str]]:
    """`count` deliveries (event id, signature, body); ids are unique for a given prefix (one letter)."""
    major, minor = _templates(1.0), _templates(0.1)
    out: list[tuple[str, str, str]] = []
    incident = 0
    while len(out) < count:
        incident += 1
        incident_id = f"{prefix}{incident:013d}"  # same length as the sample's id
        key = hashlib.md5(incident_id.encode()).hexdigest()
        for step, (sample_id, template) in enumerate(minor if incident % 10 else major):
            event_id = f"{incident_id}E{step}{'0' * 10}"  # 26 characters, like PagerDuty's ULIDs
            body = template.replace(sample_id, event_id).replace(INCIDENT_ID, incident_id).replace(INCIDENT_KEY, key)
            if incident % 10:
                body = body.replace('"summary":"P1"', '"summary":"P3"')
            out.append((event_id, sign(body.encode()), body))
            if len(out) == count:
                break
    return out


def write(path: Path, deliveries: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(f"{eid}\t{sig}\t{body}\n" for eid, sig, body in deliveries))
    return path


def read(path: Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in path.read_text().splitlines():
        eid, sig, body = line.split("\t", 2)
        rows.append((eid, sig, body))
    return rows
