"""Jobs and events sent to PostgreSQL as one JSON document instead of a parameter per column.

psycopg adapts each bind parameter in Python (a dumper per value); a job has 27 columns, so a
one-by-one enqueue spent more time adapting than the server spent inserting, and a batch of
1,000 cost 130 µs of client CPU per job. As JSON, a whole batch is one ``json.dumps`` (C) and one
parameter; the server unpacks it with ``jsonb_populate_record`` (scalar columns) and ``->``
(``jsonb`` columns).

JSON has one null where a column has two: SQL ``NULL`` and the ``jsonb`` value ``null`` (a job's
``result`` before it has one is stored as ``'null'::jsonb``, its absent ``last_error`` as
``NULL``). A document keeps the difference: a key holding JSON ``null`` is the ``jsonb`` value,
a missing key is SQL ``NULL`` (``d -> 'key'`` gives exactly that).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository.codec import JOB_COLUMNS, RowCodec
from ecosign_orchestrator.core.transitions import EventDraft

#: The ``jsonb`` columns of ``jobs`` (read with ``->``, keeping a JSON null).
JSONB_COLUMNS = frozenset({"payload", "steps", "result", "last_error", "retry", "waiting"})


@dataclasses.dataclass(frozen=True, slots=True)
class _Json:
    """A value bound for a ``jsonb`` column (``None`` here is the JSON null, not SQL NULL)."""

    value: Any


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_DOCUMENT = RowCodec(
    json_in=_Json,
    json_out=lambda value: value,
    time_in=_time,
    time_out=lambda value: value,
    placeholder=lambda name: name,
)


def job_document(job: Job) -> dict[str, Any]:
    """A job's columns as one JSON object (SQL ``NULL``: the key is left out)."""
    document: dict[str, Any] = {}
    for column, value in _DOCUMENT.job_to_row(job).items():
        if isinstance(value, _Json):
            document[column] = value.value
        elif value is not None:
            document[column] = value
    return document


def event_document(draft: EventDraft) -> dict[str, Any]:
    """An event draft as one JSON object (the ``insert_events`` statement's row)."""
    return {
        "job_id": draft.job_id,
        "type": draft.type.value,
        "at": draft.at.isoformat(),
        "attempt": draft.attempt,
        "data": draft.data,
    }


def insert_jobs_sql(table: str, documents: str) -> str:
    """``INSERT`` of the jobs in ``documents``, a set-returning SQL expression of one ``jsonb``
    job document per row (one document, or the elements of an array of them)."""
    values = ", ".join(f"src.d -> '{c}'" if c in JSONB_COLUMNS else f"r.{c}" for c in JOB_COLUMNS)
    return (
        f"INSERT INTO {table} ({', '.join(JOB_COLUMNS)}) SELECT {values} "
        f"FROM {documents} AS src(d) "
        f"CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, src.d) AS r"
    )
