"""Hypothesis strategies that damage valid alert payloads, the property a parser must keep under them, and a helper
that parses with the stack already deep."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from connectors.events import AlertEvent, PayloadError

# Bounded and derandomized: every run tries the same examples, so CI time stays flat and a failure reproduces.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Stands for a value nested deeper than json.dumps can write; the raw brackets are spliced into the bytes instead.
_DEEP = "\x00deep\x00"
# Any str, lone surrogates included: headers and JSON strings can carry them, and encoding one can raise.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=24)


def odd_values(near_valid: Sequence[Any]) -> st.SearchStrategy[Any]:
    """Any JSON value, or one of `near_valid`: values a source almost sends, which reach branches random ones miss."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT
    nested = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3), max_leaves=6
    )
    return st.one_of(st.sampled_from(near_valid), nested, st.just(_DEEP))


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """(container, key) for every node of the tree, so deep fields are as likely to be hit as top-level ones."""
    slots: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            slots.append((node, key))
            stack.append(child)
    return slots


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[Any], odd: st.SearchStrategy[Any]) -> bytes:
    """A valid seed with 1-4 nodes replaced by odd values or dropped, serialized, and sometimes damaged byte-wise."""
    doc = copy.deepcopy(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(doc)
        if not slots:
            doc = draw(odd)
            continue
        container, key = draw(st.sampled_from(slots))
        if isinstance(container, dict) and draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(odd)
    body = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    depth = draw(st.integers(1, 1500))
    body = body.replace(json.dumps(_DEEP).encode(), b"[" * depth + b"]" * depth)
    damage = draw(st.sampled_from(["none", "none", "truncate", "overwrite", "insert"]))
    pos = draw(st.integers(0, len(body)))
    if damage == "truncate":
        body = body[:pos]
    elif damage == "overwrite" and body:
        pos = min(pos, len(body) - 1)
        body = body[:pos] + bytes([draw(st.integers(0, 255))]) + body[pos + 1 :]
    elif damage == "insert":
        body = body[:pos] + draw(st.binary(min_size=1, max_size=8)) + body[pos:]
    return body


def parses(parse: Callable[[bytes], AlertEvent], body: bytes) -> bool:
    """True when `body` parses to a sane event, False on PayloadError; any other exception fails the caller."""
    try:
        event = parse(body)
    except PayloadError:
        return False
    assert isinstance(event, AlertEvent) and event.event_id
    assert event.at is None or event.at.utcoffset() == timedelta(0)
    assert event.kind is None or isinstance(event.incident_external_id, str)
    return True


def parse_at_depth(parse: Callable[[bytes], AlertEvent], depth: int, body: bytes) -> AlertEvent | None:
    """Parse with `depth` frames already on the stack (deep JSON near the recursion limit); None for PayloadError."""
    if depth:
        return parse_at_depth(parse, depth - 1, body)
    try:
        return parse(body)
    except PayloadError:
        return None
