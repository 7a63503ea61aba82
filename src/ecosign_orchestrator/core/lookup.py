"""Finding a job by a short id: any unique prefix or suffix of 8 or more characters.

Job ids are UUIDv7: the first characters are a timestamp (shared by jobs created in the same
minute), the last ones random. The CLI and the demo show the random tail; either end works.
"""

from __future__ import annotations

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.repository.checks import MIN_SHORT_ID
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.types import JobId

FULL_ID_LENGTH = 36
_ID_CHARS = frozenset("0123456789abcdef-")


async def resolve_job_id(repository: JobRepository, text: str) -> JobId:
    """The id ``text`` names: a full id as it is, else the one job whose id starts or ends with
    it (``JobNotFound`` when none, or when ``text`` cannot be part of an id; ``InvalidJob``
    naming ``job_id`` when it is too short to look up or ambiguous)."""
    value = text.strip().lower()
    if len(value) == FULL_ID_LENGTH:
        return JobId(value)
    if 0 < len(value) < MIN_SHORT_ID and set(value) <= _ID_CHARS:
        raise errors.InvalidJob(
            "job_id",
            f"{value!r} is too short: give {MIN_SHORT_ID} or more of the id's characters "
            "(tables show its last 12)",
        )
    try:
        matches = await repository.ids_matching(value)
    except errors.InvalidJob:  # too short, or not hex: it names no job
        raise errors.JobNotFound(text) from None
    if not matches:
        raise errors.JobNotFound(value)
    if len(matches) > 1:
        raise errors.InvalidJob(
            "job_id", f"{value!r} matches several jobs ({matches[0]}, {matches[1]}, ...): give more"
        )
    return matches[0]
