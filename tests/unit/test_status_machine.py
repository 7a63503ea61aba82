"""The status machine: the transition table, and a hypothesis stateful test of every operation."""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.events import EVENT_FOR_STATUS, EventType
from ecosign_orchestrator.core.job import JobError, NewJob
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.core.status import TERMINAL, TRANSITIONS, JobStatus, can_transition


def test_completed_is_a_dead_end_and_every_status_has_an_event() -> None:
    assert TRANSITIONS[JobStatus.COMPLETED] == frozenset()
    assert set(EVENT_FOR_STATUS) == set(JobStatus)
    assert not can_transition(JobStatus.QUEUED, JobStatus.COMPLETED)
    assert can_transition(JobStatus.RUNNING, JobStatus.RETRYING)
    assert can_transition(JobStatus.RETRYING, JobStatus.RUNNING)


ERROR = JobError(type="E", message="m", transient=True)


class StatusMachine(RuleBasedStateMachine):
    """Random sequences of repository operations on one job keep every invariant."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.repo = MemoryRepository()
        self.job_id = self.run(self.repo.enqueue(NewJob(kind="k"), max_attempts=3)).job.id
        self.token: Any = None
        self.was_completed = False
        self.transitions = 1  # the enqueue

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    @property
    def job(self) -> Any:
        return self.repo.jobs[self.job_id]

    def attempt(self, coro: Any, *, evented: bool = True) -> bool:
        before = self.job.status
        try:
            self.run(coro)
        except (errors.IllegalTransition, errors.LeaseLost):
            assert self.job.status is before
            return False
        if evented:
            self.transitions += 1
        return True

    @rule(lease=st.sampled_from([0.0, 30.0]))
    def claim(self, lease: float) -> None:
        # the claim of a waiting job is a check: it writes no event
        check = self.job.status is JobStatus.WAITING
        jobs = self.run(self.repo.claim(worker_id="w", kinds=["k"], limit=1, lease_seconds=lease))
        if jobs:
            self.token = jobs[0].lease_token
            self.transitions += 0 if check else 1

    @precondition(lambda self: self.token is not None)
    @rule()
    def complete(self) -> None:
        if self.attempt(self.repo.complete(self.job_id, self.token, None)):
            self.was_completed = True

    @precondition(lambda self: self.token is not None)
    @rule()
    def fail(self) -> None:
        self.attempt(self.repo.fail(self.job_id, self.token, ERROR))

    @precondition(lambda self: self.token is not None)
    @rule(delay=st.sampled_from([0.0, 3600.0]))
    def retry_later(self, delay: float) -> None:
        self.attempt(self.repo.schedule_retry(self.job_id, self.token, ERROR, delay))

    @precondition(lambda self: self.token is not None)
    @rule()
    def snooze(self) -> None:
        self.attempt(self.repo.requeue(self.job_id, self.token, delay=0, reason="snoozed"))

    @precondition(lambda self: self.token is not None)
    @rule(
        reason=st.sampled_from(["a confirmation", "a free slot"]),
        delay=st.sampled_from([0.0, 60.0]),
    )
    def wait(self, reason: str, delay: float) -> None:
        # a wait writes job_waiting when it begins or what it waits for changes, not at every check
        waiting = self.job.waiting
        changed = waiting is None or waiting.reason != reason
        call = self.repo.wait(self.job_id, self.token, delay=delay, reason=reason)
        self.attempt(call, evented=changed)

    @rule()
    def cancel(self) -> None:
        # a running job is asked to stop, once: job_cancel_requested; any other one ends now
        asked = self.job.status is JobStatus.RUNNING and self.job.cancel_requested
        self.attempt(self.repo.cancel(self.job_id, actor="ops-alice"), evented=not asked)

    @rule()
    def manual_retry(self) -> None:
        self.attempt(self.repo.retry(self.job_id))

    @rule()
    def recover(self) -> None:
        self.transitions += len(self.run(self.repo.recover_expired()))

    @invariant()
    def completed_stays_completed(self) -> None:
        if self.was_completed:
            assert self.job.status is JobStatus.COMPLETED

    @invariant()
    def one_event_per_transition(self) -> None:
        assert len(self.repo.event_log) == self.transitions
        last = self.repo.event_log[-1].type
        assert (
            last is EVENT_FOR_STATUS[self.job.status]
            or (
                self.job.status is JobStatus.RUNNING
                and self.job.cancel_requested
                and last is EventType.JOB_CANCEL_REQUESTED
            )
            # a check writes nothing: while it runs, or after it, the wait's event is the last
            or (self.job.waiting is not None and last is EventType.JOB_WAITING)
        )

    @invariant()
    def waits_only_while_waiting_or_checking(self) -> None:
        job = self.job
        if job.status not in (JobStatus.WAITING, JobStatus.RUNNING):
            assert job.waiting is None
        if job.status is JobStatus.WAITING:
            assert job.waiting is not None and job.waiting.since <= job.updated_at

    @invariant()
    def lease_only_while_running(self) -> None:
        job = self.job
        assert (job.lease_token is not None) == (job.status is JobStatus.RUNNING)
        assert 0 <= job.attempts <= job.max_attempts
        assert (job.finished_at is not None) == (job.status in TERMINAL)


StatusMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestStatusMachine = StatusMachine.TestCase
