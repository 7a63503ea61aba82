"""Stream tickets and the overview's per-minute counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.overview import per_minute
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service.api.auth import StreamTickets


def test_a_ticket_is_valid_until_it_expires_and_only_for_the_same_tokens() -> None:
    tickets = StreamTickets(["write-a", "read-b"], ttl_seconds=60)
    ticket = tickets.issue(now=1_000)
    assert tickets.valid(ticket, now=1_000) and tickets.valid(ticket, now=1_060)
    assert not tickets.valid(ticket, now=1_061)
    assert StreamTickets(["read-b", "write-a"]).valid(ticket, now=1_000)  # another replica
    assert not StreamTickets(["write-a", "read-c"]).valid(ticket, now=1_000)
    expiry, _, signature = ticket.partition(".")
    assert not tickets.valid(f"{int(expiry) + 1}.{signature}", now=1_000)
    for junk in (
        "",
        ".",
        "abc.def",
        "1" * 13 + "." + signature,
        "\u0661\u0660\u0660\u0660." + signature,
    ):
        assert not tickets.valid(junk, now=1_000)


def _finished(status: JobStatus, at: datetime) -> Job:
    return Job(
        id=JobId("0" * 36),
        kind="k",
        queue="default",
        status=status,
        priority=0,
        attempts=1,
        max_attempts=1,
        payload={},
        created_at=at,
        updated_at=at,
        run_at=at,
        finished_at=at,
    )


def test_finished_jobs_are_counted_in_their_minute() -> None:
    now = datetime(2026, 11, 27, 10, 14, 30, tzinfo=UTC)
    jobs = [
        _finished(JobStatus.COMPLETED, now),
        _finished(JobStatus.COMPLETED, now - timedelta(seconds=20)),
        _finished(JobStatus.FAILED, now - timedelta(minutes=3)),
        _finished(JobStatus.COMPLETED, now - timedelta(minutes=15)),  # outside the window
    ]
    buckets = per_minute(jobs, now)
    assert len(buckets) == 15 and buckets[-1].start == now.replace(second=0)
    assert (buckets[-1].completed, buckets[-1].failed) == (2, 0)
    assert (buckets[-4].completed, buckets[-4].failed) == (0, 1)
    assert sum(b.completed + b.failed for b in buckets) == 3
