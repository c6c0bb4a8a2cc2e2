"""The shared write budget: slots spaced for the per-minute limit, pushed out by the per-hour one, never a long wait
in a worker thread; and the GitHub connector takes a slot before each content-creating request, and only then."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.budget import Budget, gate, take_slot
from app.context import Context
from app.db import utcnow
from connectors.github_tracker import GitHubTracker
from connectors.markup import Document, paragraph
from connectors.targets import WRITE_LIMITS, GitHubTarget, TrackerKind
from connectors.tracker import IssueDraft, RetryLater
from tests.fakes.fake_github import FakeGitHub


def test_slots_are_spaced_for_the_minute_and_pushed_out_by_the_hour(context: Context) -> None:
    budget = Budget(per_minute=60, per_hour=3)
    now = utcnow()
    with context.write() as session:
        slots = [take_slot(session, "k", budget, now) for _ in range(4)]
        other = take_slot(session, "another-token", budget, now)
    assert [round((s - now).total_seconds(), 3) for s in slots[:3]] == [0.0, 1.0, 2.0]
    assert slots[3] == slots[0] + timedelta(hours=1)  # the hour's three are spent: wait for the first to leave it
    assert other == now  # budgets are per token and host


def test_a_budget_keeps_a_margin_under_githubs_limits() -> None:
    budget = Budget.under(WRITE_LIMITS[TrackerKind.GITHUB])
    assert budget.per_minute < 80 and budget.per_hour < 500 and budget.spacing >= timedelta(seconds=0.75)


def test_a_long_wait_goes_back_to_the_queue_instead_of_holding_a_worker(context: Context) -> None:
    budget = Budget(per_minute=60, per_hour=1, max_wait=5)
    take = gate(context.engine, "k", budget)
    take()
    with pytest.raises(RetryLater) as waiting:
        take()
    assert waiting.value.retry_after is not None and waiting.value.retry_after > 3000
    with context.write() as session:  # the refused slot was not kept: the next write is still an hour out, not two
        assert (take_slot(session, "k", budget, utcnow()) - utcnow()).total_seconds() < 3601


def test_the_connector_takes_a_slot_before_every_write_and_only_then() -> None:
    writes: list[str] = []
    with FakeGitHub() as fake:
        fake.add_repo("acme/ops", assignable={"alice"})
        tracker = GitHubTracker("test-token", fake.url, retry_backoff=0, write_gate=lambda: writes.append("slot"))
        target = GitHubTarget(repo="acme/ops")
        draft = IssueDraft("aftermath-1a2b-action-1", "t", Document.of(paragraph("b")), labels=("x",))
        ref = tracker.create_issue(target, draft)
        tracker.find_issue(target, draft.idempotency_key)
        tracker.poll(target, [ref.key], None)
        assert writes == ["slot"] and fake.count("POST") == 1
        tracker.add_comment(ref.key, Document.of(paragraph("reminder")))
        tracker.update_issue(target, ref.key, IssueDraft(draft.idempotency_key, "new", draft.body), {"title"})
        tracker.audit(target, {ref.key: str(ref.tracker_id)})
        assert writes == ["slot"] * 3  # create, comment, edit; not the reads nor the GraphQL query
