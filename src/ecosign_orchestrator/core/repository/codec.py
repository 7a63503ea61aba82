"""One row codec for the SQL backends: a ``Job`` or ``Event`` to and from a database row.

The backends differ only in how they store JSON (text vs ``jsonb``) and time (epoch seconds vs
``timestamptz``) and in their placeholder style; everything else (which columns exist, which
ones a write-back touches, the insert and update statements) is written here once. Adding a
field to ``Job`` touches this file, the ``Job`` value and a migration per dialect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event, EventType
from ecosign_orchestrator.core.job import (
    Job,
    JobError,
    Progress,
    RetryOverride,
    StepRecord,
    Waiting,
)
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId, LeaseToken

#: Columns written once, at insert.
FIXED_COLUMNS = (
    "id",
    "kind",
    "queue",
    "payload",
    "dedupe_key",
    "retry",
    "timeout",
    "created_at",
    "idempotency_key",
    "fingerprint",
)
#: Columns a transition may change (the ``update_job`` write-back).
MUTABLE_COLUMNS = (
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "run_at",
    "lease_owner",
    "lease_token",
    "lease_expires_at",
    "cancel_requested",
    "progress_fraction",
    "progress_message",
    "steps",
    "result",
    "last_error",
    "updated_at",
    "started_at",
    "finished_at",
    "waiting",
)
JOB_COLUMNS = FIXED_COLUMNS + MUTABLE_COLUMNS
#: Columns of the call log (``id`` is assigned by the store).
CALL_COLUMNS = (
    "job_id",
    "job_attempt",
    "step",
    "attempt",
    "target",
    "idempotency_key",
    "started_at",
    "duration_ms",
    "status",
    "error",
    "response_headers",
    "response_body",
    "truncated",
    "request",
)


class Row(Protocol):
    """A database row read by column name (``sqlite3.Row``, a psycopg ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclasses.dataclass(frozen=True, slots=True)
class RowCodec:
    """How one dialect binds and reads JSON and timestamps, and names its parameters."""

    #: A JSON value as a bind parameter (text for SQLite, ``Jsonb`` for PostgreSQL).
    json_in: Callable[[Any], Any]
    #: A stored JSON column as a Python value.
    json_out: Callable[[Any], Any]
    #: An aware datetime as a bind parameter (``None`` stays ``None``).
    time_in: Callable[[datetime | None], Any]
    #: A stored timestamp as an aware datetime (``None`` stays ``None``).
    time_out: Callable[[Any], datetime | None]
    #: ``name`` as a named placeholder (``:name`` or ``%(name)s``).
    placeholder: Callable[[str], str]

    # -- statements ----------------------------------------------------------------------------

    def insert_job_sql(self, table: str, *, suffix: str = "") -> str:
        """``INSERT`` of every job column."""
        columns = ", ".join(JOB_COLUMNS)
        values = ", ".join(self.placeholder(c) for c in JOB_COLUMNS)
        return f"INSERT INTO {table} ({columns}) VALUES ({values}) {suffix}".strip()

    def insert_call_sql(self, table: str) -> str:
        """``INSERT`` of one call-log row."""
        columns = ", ".join(CALL_COLUMNS)
        values = ", ".join(self.placeholder(c) for c in CALL_COLUMNS)
        return f"INSERT INTO {table} ({columns}) VALUES ({values})"

    def update_job_sql(self, table: str) -> str:
        """Write-back of every mutable column of one job."""
        sets = ", ".join(f"{c} = {self.placeholder(c)}" for c in MUTABLE_COLUMNS)
        return f"UPDATE {table} SET {sets} WHERE id = {self.placeholder('id')}"

    # -- values --------------------------------------------------------------------------------

    def job_to_row(self, job: Job) -> dict[str, Any]:
        """Bind parameters for the insert and update statements."""
        js, t = self.json_in, self.time_in
        return {
            "id": job.id,
            "kind": job.kind,
            "queue": job.queue,
            "payload": js(job.payload),
            "status": job.status.value,
            "priority": job.priority,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "run_at": t(job.run_at),
            "dedupe_key": job.dedupe_key,
            "lease_owner": job.lease_owner,
            "lease_token": job.lease_token,
            "lease_expires_at": t(job.lease_expires_at),
            "cancel_requested": job.cancel_requested,
            "progress_fraction": job.progress.fraction,
            "progress_message": job.progress.message,
            "steps": self.steps_in(job.steps),
            "result": js(job.result),
            "last_error": None if job.last_error is None else js(job.last_error.to_json()),
            "retry": js(job.retry.to_json()),
            "timeout": job.timeout,
            "created_at": t(job.created_at),
            "updated_at": t(job.updated_at),
            "started_at": t(job.started_at),
            "finished_at": t(job.finished_at),
            "idempotency_key": job.idempotency_key,
            "fingerprint": job.fingerprint,
            "waiting": None if job.waiting is None else js(job.waiting.to_json()),
        }

    def call_to_row(self, job_id: JobId, job_attempt: int, call: CallRecord) -> dict[str, Any]:
        """Bind parameters for the call-log insert."""
        call = call.storable()
        return {
            "job_id": job_id,
            "job_attempt": job_attempt,
            "step": call.step,
            "attempt": call.attempt,
            "target": call.target,
            "idempotency_key": call.idempotency_key,
            "started_at": self.time_in(call.started_at),
            "duration_ms": call.duration_ms,
            "status": call.status,
            "error": call.error,
            "response_headers": self.json_in(call.response_headers),
            "response_body": call.response_body,
            "truncated": call.truncated,
            "request": self.json_in(call.request),
        }

    def row_to_call(self, row: Row) -> CallRecord:
        """A ``calls`` row as a :class:`CallRecord`."""
        started_at = self.time_out(row["started_at"])
        assert started_at is not None  # NOT NULL column
        return CallRecord(
            id=row["id"],
            job_id=JobId(row["job_id"]),
            job_attempt=row["job_attempt"],
            step=row["step"],
            attempt=row["attempt"],
            target=row["target"],
            idempotency_key=row["idempotency_key"],
            started_at=started_at,
            duration_ms=row["duration_ms"],
            status=row["status"],
            error=row["error"],
            response_headers=self.json_out(row["response_headers"]),
            response_body=row["response_body"],
            truncated=bool(row["truncated"]),
            request=self.json_out(row["request"]),
        )

    def steps_in(self, steps: tuple[StepRecord, ...] | list[StepRecord]) -> Any:
        """The ``steps`` column's bind parameter."""
        return self.json_in([s.to_json() for s in steps])

    def row_to_job(self, row: Row) -> Job:
        """A ``jobs`` row as a :class:`Job`."""
        js, t = self.json_out, self.time_out
        last_error = row["last_error"]
        run_at, created_at, updated_at = (
            t(row["run_at"]),
            t(row["created_at"]),
            t(row["updated_at"]),
        )
        assert run_at and created_at and updated_at  # NOT NULL columns
        return Job(
            id=JobId(row["id"]),
            kind=row["kind"],
            queue=row["queue"],
            payload=js(row["payload"]),
            status=JobStatus(row["status"]),
            priority=row["priority"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            run_at=run_at,
            created_at=created_at,
            updated_at=updated_at,
            dedupe_key=row["dedupe_key"],
            started_at=t(row["started_at"]),
            finished_at=t(row["finished_at"]),
            lease_owner=row["lease_owner"],
            lease_token=None if row["lease_token"] is None else LeaseToken(row["lease_token"]),
            lease_expires_at=t(row["lease_expires_at"]),
            cancel_requested=bool(row["cancel_requested"]),
            progress=Progress(fraction=row["progress_fraction"], message=row["progress_message"]),
            steps=tuple(StepRecord.from_json(s) for s in js(row["steps"])),
            result=js(row["result"]),
            last_error=None if last_error is None else JobError.from_json(js(last_error)),
            retry=RetryOverride.from_json(js(row["retry"])),
            timeout=row["timeout"],
            idempotency_key=row["idempotency_key"],
            fingerprint=row["fingerprint"],
            waiting=Waiting.from_json(js(row["waiting"]) if row["waiting"] is not None else None),
        )

    def row_to_event(self, row: Row) -> Event:
        """An ``events`` row as an :class:`Event`."""
        at = self.time_out(row["at"])
        assert at is not None  # NOT NULL column
        return Event(
            id=row["id"],
            job_id=JobId(row["job_id"]),
            type=EventType(row["type"]),
            at=at,
            attempt=row["attempt"],
            data=self.json_out(row["data"]),
        )
