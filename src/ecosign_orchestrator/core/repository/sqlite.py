"""SQLite backend: the embedded default.

WAL journal, ``BEGIN IMMEDIATE`` for every write transaction (so a claim is atomic across
processes sharing the file) and a busy timeout. The connection lives in one dedicated thread;
asyncio callers hop to it, so the event loop never blocks on disk.

Durability: ``synchronous=FULL`` syncs the WAL at every commit, so a submission answered or an
outcome recorded survives a power loss or an OS crash. Group commit keeps that affordable: the
hot writes of concurrent callers (claims, outcomes, step and progress records, lease renewals)
that arrive while a commit is on its way to disk are committed together, one sync per batch,
each in its own savepoint so one failing write never undoes another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ecosign_orchestrator.core import errors, transitions
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import Job, Progress, StepRecord, from_epoch, to_epoch
from ecosign_orchestrator.core.repository import sql
from ecosign_orchestrator.core.repository.base import Change, TransactionalRepository
from ecosign_orchestrator.core.repository.batching import Batcher
from ecosign_orchestrator.core.repository.checks import (
    check_limit,
    check_terminal,
    id_patterns,
    like_prefix,
)
from ecosign_orchestrator.core.repository.protocol import StepSave
from ecosign_orchestrator.core.repository.sqlite_gates import SqliteGates
from ecosign_orchestrator.core.repository.sqlite_sync import (
    CODEC,
    INSERT_JOB,
    UPDATE_JOB,
    applied_versions,
    apply_change,
    claim_batch,
    commit_group,
    data_version,
    dumps,
    insert_event,
    load_job,
    migrate_file,
    prune_batch,
    row_to_event,
    row_to_job,
    save_steps_sync,
    translate_errors,
)
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId, JSONValue, LeaseToken

T = TypeVar("T")
Q = sql.queries("sqlite")
#: The most writes one group commit carries (a bound on how long it holds the file's lock).
GROUP_LIMIT = 256
#: How often an idle worker looks at the file's commit counter for other processes' work.
WATCH_SECONDS = 0.05


def path_from_url(url: str) -> Path:
    """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` to a path."""
    if not url.startswith("sqlite:///"):
        raise errors.ConfigurationError(
            f"not a SQLite URL: {url!r} (expected sqlite:///path/to/jobs.db)"
        )
    rest = url.removeprefix("sqlite:///")
    if not rest:
        raise errors.ConfigurationError("SQLite URL has no path")
    return Path(rest)


class _SqliteTx:
    def __init__(self, repo: SqliteRepository) -> None:
        self._repo = repo

    async def _one(self, name: str, params: dict[str, Any]) -> sqlite3.Row | None:
        return await self._repo._call(lambda c: c.execute(Q[name], params).fetchone())

    async def _all(self, name: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        return await self._repo._call(lambda c: c.execute(Q[name], params).fetchall())

    async def load(self, job_id: JobId) -> Job:
        return await self._repo._call(lambda c: load_job(c, job_id))

    async def fetch(self, job_id: JobId) -> Job:
        return await self.load(job_id)

    async def find_holder(self, dedupe_key: str, *, reuse_completed: bool) -> Job | None:
        params = {"dedupe_key": dedupe_key, "reuse_completed": reuse_completed}
        row = await self._one("find_holder", params)
        return None if row is None else row_to_job(row)

    async def find_idempotent(self, key: str) -> Job | None:
        row = await self._one("find_idempotent", {"key": key})
        return None if row is None else row_to_job(row)

    async def insert(self, job: Job) -> None:
        await self._repo._call(lambda c: c.execute(INSERT_JOB, CODEC.job_to_row(job)))

    async def update(self, job: Job) -> None:
        await self._repo._call(lambda c: c.execute(UPDATE_JOB, CODEC.job_to_row(job)))

    async def add_event(self, draft: EventDraft) -> Event:
        return await self._repo._call(lambda c: insert_event(c, draft))

    async def insert_many(self, jobs: Sequence[Job]) -> None:
        rows = [CODEC.job_to_row(job) for job in jobs]
        await self._repo._call(lambda c: c.executemany(INSERT_JOB, rows))

    async def add_events(self, drafts: Sequence[EventDraft]) -> list[Event]:
        return await self._repo._call(lambda c: [insert_event(c, d) for d in drafts])

    async def expired(self, *, limit: int, now: datetime) -> list[Job]:
        rows = await self._all("expired", {"now": to_epoch(now), "limit": limit})
        return [row_to_job(r) for r in rows]

    async def ready(self) -> None:
        """Nothing to send: other processes poll (capped at the next ``run_at``)."""


def _save_params(job_id: JobId, token: LeaseToken, steps: Sequence[StepRecord]) -> dict[str, Any]:
    return {"id": job_id, "token": token, "steps": CODEC.steps_in(list(steps)), "now": time.time()}


class SqliteRepository(SqliteGates, TransactionalRepository):
    """Jobs in one SQLite file, safe for several worker processes on one machine."""

    backend = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        super().__init__()
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        #: Group commit of the hot writes (see ``_write``).
        self._group: Batcher[Callable[[sqlite3.Connection], Any], Any] = Batcher(
            self._commit, max_batch=GROUP_LIMIT
        )

    @classmethod
    def from_url(cls, url: str) -> SqliteRepository:
        """Build from ``sqlite:///path``."""
        return cls(path_from_url(url))

    async def open(self) -> None:
        """Open the file (creating its folder) in the connection's own thread."""
        if self._executor is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.ConfigurationError(
                f"cannot create the folder of the SQLite database {self.path.resolve()} "
                f"({exc.strerror}): point ECOSIGN_ORCH_DATABASE_URL at a writable place"
            ) from None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            self._conn = await self._call_raw(self._connect)
        except errors.RepositoryError as exc:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise errors.ConfigurationError(
                f"cannot open the SQLite database {self.path.resolve()} ({exc.__cause__}): "
                "point ECOSIGN_ORCH_DATABASE_URL at a writable file"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        return conn

    async def close(self) -> None:
        """Close the connection and its thread."""
        if self._executor is None:
            return
        await self._group.drain()  # let writes already accepted reach the disk
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._call_raw(conn.close)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _call_raw(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise errors.RepositoryError("repository is not open: use `async with` or open()")
        loop = asyncio.get_running_loop()
        with translate_errors():
            return await loop.run_in_executor(self._executor, fn)

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise errors.RepositoryError("repository is not open: use `async with` or open()")
        return await self._call_raw(lambda: fn(conn))

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_SqliteTx]:
        async with self._lock:
            await self._begin()
            try:
                yield _SqliteTx(self)
            except BaseException:
                await asyncio.shield(self._call(lambda c: c.execute("ROLLBACK")))
                raise
            await asyncio.shield(self._call(lambda c: c.execute("COMMIT")))

    async def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, closed again if the caller is cancelled while it waits for the
        write lock: the connection's thread opens the transaction anyway, and one left open
        would hold the database's write lock for every other process until this one exits."""
        began = asyncio.ensure_future(self._call(lambda c: c.execute("BEGIN IMMEDIATE")))
        try:
            await asyncio.shield(began)
        except asyncio.CancelledError:
            await asyncio.wait([began])
            if not began.cancelled() and began.exception() is None:
                await asyncio.shield(self._call(lambda c: c.execute("ROLLBACK")))
            raise

    # The hot writes run as one call in the connection's thread (one hop instead of one per
    # statement), grouped with other callers' into one commit; the rules are still the pure
    # functions of core/transitions.py.

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in the next group commit; its result once that commit is durable.

        The write happens even if the caller is cancelled (as with a single commit).
        """
        result: T = await self._group.submit(work)
        return result

    async def _commit(
        self, works: Sequence[Callable[[sqlite3.Connection], Any]]
    ) -> list[Any | BaseException]:
        """One transaction for ``works``, each in its own savepoint: its value or its error."""
        group = functools.partial(commit_group, works=list(works))
        async with self._lock:
            outcomes = await self._call(group)
        return [value if error is None else error for value, error in outcomes]

    async def _apply(self, job_id: JobId, change: Change, *, ready: bool = False) -> Job:
        new, event = await self._write(lambda c: apply_change(c, job_id, change))
        if event is not None:
            self.bus.publish([event])
        if ready:
            self._notify_ready()
        return new

    async def _fenced(self, name: str, job_id: JobId, params: dict[str, Any]) -> sqlite3.Row:
        """One fenced statement (autocommit); ``LeaseLost``/``JobNotFound`` when no row matched."""
        params = {**params, "id": job_id, "now": time.time()}
        row: sqlite3.Row | None = await self._write(lambda c: c.execute(Q[name], params).fetchone())
        if row is None:
            raise await self._lease_lost(job_id)
        return row

    async def renew_leases(
        self, leases: Sequence[tuple[JobId, LeaseToken]], lease_seconds: float
    ) -> dict[JobId, bool]:
        """Renew every lease still held, in one statement."""
        if not leases:
            return {}
        params = {"leases": dumps(list(leases)), "lease_seconds": lease_seconds, "now": time.time()}
        rows = await self._write(lambda c: c.execute(Q["renew_leases"], params).fetchall())
        return {JobId(r["id"]): bool(r["cancel_requested"]) for r in rows}

    async def save_progress(self, job_id: JobId, token: LeaseToken, progress: Progress) -> None:
        """Record progress in one statement (those columns only)."""
        params = {"token": token, "fraction": progress.fraction, "message": progress.message}
        await self._fenced("save_progress", job_id, params)

    async def save_steps(
        self,
        job_id: JobId,
        token: LeaseToken,
        steps: Sequence[StepRecord],
        events: Sequence[EventDraft] = (),
        calls: Sequence[CallRecord] = (),
    ) -> list[Event]:
        """Record the steps (that column only), their events and calls in one transaction."""
        params = _save_params(job_id, token, steps)
        stored = await self._write(lambda c: save_steps_sync(c, params, job_id, events, calls))
        if stored is None:
            raise await self._lease_lost(job_id)
        if stored:
            self.bus.publish(stored)
        return stored

    async def complete(
        self,
        job_id: JobId,
        token: LeaseToken,
        result: JSONValue,
        *,
        steps: StepSave | None = None,
    ) -> None:
        """running -> completed, after the run's last step save in the same transaction."""
        if steps is None:
            return await super().complete(job_id, token, result)
        save = steps
        params = _save_params(job_id, token, save.steps)

        def work(conn: sqlite3.Connection) -> list[Event] | None:
            stored = save_steps_sync(conn, params, job_id, save.events, save.calls)
            if stored is None:
                return None
            _, completed = apply_change(
                conn,
                job_id,
                lambda job, now: transitions.complete(job, token=token, now=now, result=result),
            )
            return stored if completed is None else [*stored, completed]

        published = await self._write(work)
        if published is None:
            raise await self._lease_lost(job_id)
        self.bus.publish(published)
        return None

    async def _claim(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None,
    ) -> list[Job]:
        params = {
            "kinds": dumps(list(kinds)),
            "queues": None if queues is None else dumps(list(queues)),
            "limit": limit,
        }
        claimed = await self._write(lambda c: claim_batch(c, params, worker_id, lease_seconds))
        if claimed:
            self.bus.publish([event for _, event in claimed if event is not None])
        return [job for job, _ in claimed]

    async def _read(self, name: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        return await self._call(lambda c: c.execute(Q[name], params).fetchall())

    # -- schema --------------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one ``BEGIN IMMEDIATE`` transaction (callers serialise)."""
        await self.open()
        async with self._lock:
            return await self._call(migrate_file)

    async def schema_ready(self) -> bool:
        """Whether every migration is applied."""
        applied = await self._call(applied_versions)
        return all(version in applied for version, _ in sql.migrations("sqlite"))

    # -- reads ---------------------------------------------------------------------------------

    async def wait_for_jobs(self, timeout: float) -> None:
        """Sleep until work may be ready. Other processes' commits are noticed within
        ``WATCH_SECONDS`` through ``PRAGMA data_version`` (a counter of the commits other
        connections made to the file: no disk read); only a commit that left a ready job ends
        the wait, so busy neighbours do not make idle workers claim for nothing."""
        deadline = time.monotonic() + await self._capped(timeout)
        version = await self._call(data_version)
        while (remaining := deadline - time.monotonic()) > 0:
            if await self._woken(min(remaining, WATCH_SECONDS)):
                return
            current = await self._call(data_version)
            if current != version:
                version = current
                if await self._read("has_ready", {"now": time.time()}):
                    return

    async def _next_run_at(self) -> datetime | None:
        rows = await self._read("next_run_at", {"now": time.time()})
        return from_epoch(rows[0]["next_run_at"]) if rows else None

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        kinds: Sequence[str] | None = None,
        dedupe_key: str | None = None,
        dedupe_prefix: str | None = None,
        before: JobId | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs newest first."""
        params = {
            "statuses": None if statuses is None else dumps([s.value for s in statuses]),
            "kinds": None if kinds is None else dumps(list(kinds)),
            "dedupe_key": dedupe_key,
            "dedupe_like": None if dedupe_prefix is None else like_prefix(dedupe_prefix),
            "before": before,
            "limit": check_limit(limit),
        }
        return [row_to_job(r) for r in await self._read("list_jobs", params)]

    async def events(
        self, *, after_id: int = 0, job_id: JobId | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after_id``, oldest first."""
        params = {"after_id": after_id, "job_id": job_id, "limit": check_limit(limit)}
        return [row_to_event(r) for r in await self._read("events", params)]

    async def ids_matching(self, short_id: str) -> list[JobId]:
        """Up to two ids starting or ending with ``short_id``."""
        rows = await self._read("ids_matching", id_patterns(short_id))
        return [JobId(r["id"]) for r in rows]

    async def calls(self, job_id: JobId, *, limit: int = 1000) -> list[CallRecord]:
        """A job's call log, oldest first."""
        params = {"job_id": job_id, "limit": check_limit(limit)}
        return [CODEC.row_to_call(r) for r in await self._read("job_calls", params)]

    async def last_event_id(self) -> int:
        """The newest event id (0 when none)."""
        return int((await self._read("last_event_id", {}))[0]["id"])

    # -- maintenance ---------------------------------------------------------------------------

    async def prune(self, *, status: JobStatus, finished_before: datetime, limit: int) -> int:
        """Delete one retention batch in one transaction."""
        params = {
            "status": check_terminal(status).value,
            "before": to_epoch(finished_before),
            "limit": check_limit(limit),
        }
        return await self._write(lambda c: prune_batch(c, params))

    async def count_prunable(self, *, status: JobStatus, finished_before: datetime) -> int:
        """How many jobs :meth:`prune` would delete."""
        params = {"status": check_terminal(status).value, "before": to_epoch(finished_before)}
        return int((await self._read("count_prunable", params))[0]["n"])

    async def probe_write(self) -> None:
        """Commit one row rewrite (fails on a read-only or full disk, or a locked file)."""
        await self._write(lambda c: c.execute(Q["probe_write"], {"now": time.time()}))

    async def oldest_active(self, *, limit: int = 1000) -> list[Job]:
        """The oldest active jobs, oldest first."""
        params = {"limit": check_limit(limit)}
        return [row_to_job(r) for r in await self._read("oldest_active", params)]

    async def counts(self) -> dict[tuple[str, JobStatus], int]:
        """Jobs per (kind, status)."""
        rows = await self._read("counts", {})
        return {(r["kind"], JobStatus(r["status"])): r["n"] for r in rows}
