"""The job runner: every kind has a handler, and the runner settles what a handler answers or raises."""

from __future__ import annotations

from app import jobs, worker
from app.context import Context
from app.jobs import Done, Job, JobKind, JobStatus, Later
from connectors.tracker import OutcomeUnknown, PermanentError


def test_every_job_kind_has_one_handler() -> None:
    assert worker.JOB_MODULES  # importing the worker registers the handlers
    assert set(jobs.HANDLERS) == set(JobKind)


def _run_one(context: Context, answer: object) -> Job:
    """Queue a comment job whose handler (swapped in for this test) answers or raises `answer`; run it once."""

    def run(_context: Context, _job: Job) -> Done | Later:
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Done | Later)
        return answer

    with context.write() as session:
        queued = jobs.enqueue(session, JobKind.COMMENT)
    assert queued is not None and queued.id is not None
    registered = jobs.HANDLERS[JobKind.COMMENT]
    jobs.HANDLERS[JobKind.COMMENT] = jobs.Handler(run, None)
    try:
        assert jobs.run_next(context, "test-worker")
    finally:
        jobs.HANDLERS[JobKind.COMMENT] = registered
    with context.read() as session:
        job = session.get(Job, queued.id)
    assert job is not None
    return job


def test_done_finishes_and_records(context: Context) -> None:
    recorded: list[int | None] = []
    job = _run_one(context, Done(lambda _session, job: recorded.append(job.id)))
    assert job.status == JobStatus.DONE and recorded == [job.id] and job.locked_by is None


def test_later_reschedules_without_failing(context: Context) -> None:
    job = _run_one(context, Later(120, "waiting for the index"))
    assert job.status == JobStatus.PENDING and job.last_error == "waiting for the index"
    assert (job.run_after - job.created_at).total_seconds() > 100


def test_a_refusal_fails_for_good_and_a_lost_answer_is_retried_and_remembered(context: Context) -> None:
    failed = _run_one(context, PermanentError("no such project"))
    assert failed.status == JobStatus.FAILED and failed.last_error == "no such project"
    unknown = _run_one(context, OutcomeUnknown("502 after the POST", retry_after=30))
    assert unknown.status == JobStatus.PENDING and jobs.outcome_unknown_since(unknown) is not None
    assert (unknown.run_after - unknown.created_at).total_seconds() >= 29
