"""SQLite: the dialect's rows and error mapping, and the statements that run on the connection's
thread (a transaction's body, a group commit, migrations).

Everything here is synchronous: ``SqliteRepository`` runs it on its dedicated thread, so the event
loop never blocks on disk.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from ecosign_orchestrator.core import errors, jsonfast
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import Job, from_epoch, to_epoch, utcnow
from ecosign_orchestrator.core.repository import sql
from ecosign_orchestrator.core.repository.base import Change, claim_jobs
from ecosign_orchestrator.core.repository.codec import RowCodec
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId

Q = sql.queries("sqlite")


def dumps(value: object) -> str:
    """Compact JSON; NaN/Infinity refused (they are not JSON)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)


#: Rows of this dialect: JSON as text, time as epoch seconds.
CODEC = RowCodec(
    json_in=dumps,
    json_out=jsonfast.loads,
    time_in=_epoch,
    time_out=from_epoch,
    placeholder=lambda name: f":{name}",
)
INSERT_JOB = CODEC.insert_job_sql("jobs")
UPDATE_JOB = CODEC.update_job_sql("jobs")
INSERT_CALL = CODEC.insert_call_sql("calls")
row_to_job = CODEC.row_to_job
row_to_event = CODEC.row_to_event


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map sqlite3 exceptions to :class:`RepositoryError` (the original is in ``__cause__``)."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        if "dedupe_key" in str(exc) or "idempotency_key" in str(exc):
            raise errors.DuplicateJob(None) from exc
        raise errors.RepositoryError(f"sqlite: {exc}") from exc
    except sqlite3.Error as exc:
        raise errors.RepositoryError(f"sqlite: {exc}") from exc


def data_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA data_version").fetchone()[0]
    return version


def prune_batch(conn: sqlite3.Connection, params: dict[str, Any]) -> int:
    ids = dumps([row["id"] for row in conn.execute(Q["prunable"], params)])
    conn.execute(Q["prune_events"], {"ids": ids})
    conn.execute(Q["prune_calls"], {"ids": ids})
    return conn.execute(Q["prune_jobs"], {"ids": ids}).rowcount


def commit_group(
    conn: sqlite3.Connection, works: Sequence[Callable[[sqlite3.Connection], Any]]
) -> list[tuple[Any, BaseException | None]]:
    """Run ``works`` in one transaction, each in a savepoint: ``(result, error)`` per work."""
    outcomes: list[tuple[Any, BaseException | None]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            conn.execute("SAVEPOINT one")
            try:
                with translate_errors():
                    outcomes.append((work(conn), None))
            except Exception as exc:  # this write only: undo it, keep the others
                conn.execute("ROLLBACK TO one")
                outcomes.append((None, exc))
            conn.execute("RELEASE one")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return outcomes


def insert_event(conn: sqlite3.Connection, draft: EventDraft) -> Event:
    params = {
        "job_id": draft.job_id,
        "type": draft.type.value,
        "at": to_epoch(draft.at),
        "attempt": draft.attempt,
        "data": dumps(draft.data),
    }
    return draft.stored(conn.execute(Q["insert_event"], params).fetchone()["id"])


def save_steps_sync(
    conn: sqlite3.Connection,
    params: dict[str, Any],
    job_id: JobId,
    events: Sequence[EventDraft],
    calls: Sequence[CallRecord],
) -> list[Event] | None:
    """Record a running job's steps (fenced by the token in ``params``), its calls and step
    events; None: the lease is lost and nothing was written."""
    row = conn.execute(Q["save_steps"], params).fetchone()
    if row is None:
        return None
    conn.executemany(INSERT_CALL, [CODEC.call_to_row(job_id, row["attempts"], c) for c in calls])
    return [insert_event(conn, draft) for draft in events]


def load_job(conn: sqlite3.Connection, job_id: JobId) -> Job:
    row = conn.execute(Q["load_job"], {"id": job_id}).fetchone()
    if row is None:
        raise errors.JobNotFound(job_id)
    return row_to_job(row)


def apply_change(
    conn: sqlite3.Connection, job_id: JobId, change: Change
) -> tuple[Job, Event | None]:
    new, draft = change(load_job(conn, job_id), utcnow())
    conn.execute(UPDATE_JOB, CODEC.job_to_row(new))
    return new, None if draft is None else insert_event(conn, draft)


def claim_batch(
    conn: sqlite3.Connection, params: dict[str, Any], worker_id: str, lease_seconds: float
) -> list[tuple[Job, Event | None]]:
    now = utcnow()
    rows = conn.execute(Q["claimable"], {**params, "now": to_epoch(now)}).fetchall()
    claimed = []
    ready = [row_to_job(row) for row in rows]
    for new, draft in claim_jobs(ready, now=now, worker_id=worker_id, lease_seconds=lease_seconds):
        conn.execute(UPDATE_JOB, CODEC.job_to_row(new))
        claimed.append((new, None if draft is None else insert_event(conn, draft)))
    return claimed


def applied_versions(conn: sqlite3.Connection) -> set[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at REAL)"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}


def migrate_file(conn: sqlite3.Connection) -> list[str]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = applied_versions(conn)
        done: list[str] = []
        for version, script in sql.migrations("sqlite"):
            if version in applied:
                continue
            for statement in sql.split_statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            done.append(version)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return done
