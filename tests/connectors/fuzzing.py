"""Shared parser fuzzing: mutate captured payloads node by node and byte by byte; only PayloadError may come out."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from connectors.events import AlertEvent, PayloadError


def mutate(doc: Any, rng: random.Random, odd: list[Any]) -> Any:
    """Delete or replace one node picked uniformly from the whole tree, so deep fields get hit too."""
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            slots.append((node, key))
            walk(child)

    walk(doc)
    if not slots:
        return copy.deepcopy(rng.choice(odd))
    container, key = rng.choice(slots)
    if isinstance(container, dict) and rng.random() < 0.25:
        del container[key]
    else:
        container[key] = copy.deepcopy(rng.choice(odd))
    return doc


def fuzz(parse: Callable[[bytes], AlertEvent], seeds: list[Any], odd: list[Any], seed: int) -> dict[str, int]:
    """4,000 mutated bodies: each parses to a sane event or raises PayloadError, never anything else."""
    rng = random.Random(seed)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(4000):
        doc = copy.deepcopy(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            doc = mutate(doc, rng, odd)
        body = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode("utf-8")
        if rng.random() < 0.15:  # byte-level damage: truncate, flip or splice
            raw = bytearray(body)
            pos = rng.randrange(len(raw) + 1)
            choice = rng.random()
            if choice < 0.33:
                del raw[pos:]
            elif choice < 0.66 and raw:
                raw[min(pos, len(raw) - 1)] = rng.randrange(256)
            else:
                raw[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            body = bytes(raw)
        try:
            event = parse(body)
        except PayloadError:
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        assert isinstance(event, AlertEvent) and event.event_id
        assert event.at is None or event.at.utcoffset() == timedelta(0)
        assert event.kind is None or isinstance(event.incident_external_id, str)
    return outcomes


def parse_at_depth(parse: Callable[[bytes], AlertEvent], depth: int, body: bytes) -> AlertEvent | None:
    """Parse with `depth` frames already on the stack (deep JSON near the recursion limit); None for PayloadError."""
    if depth:
        return parse_at_depth(parse, depth - 1, body)
    try:
        return parse(body)
    except PayloadError:
        return None
