"""Admission: refuse at submission what a flow would fail on at its first run.

One read of the document's state per intent: a document EcoSign does not have (PostgREST's 406
``PGRST116``) is refused naming ``document_entity_id``, and a ``metadata.witness_hash`` the
document never had is refused naming that field. When the state cannot be read within
``timeout`` (the REST endpoint is down or slow) the intent is admitted: the flow makes the same
checks when it runs and fails at once with the same reason. A CTA's submission is never held up
longer than that by EcoSign's REST endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.ecosign.http import CallError
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.processor import WITNESS_UNKNOWN
from ecosign_orchestrator.ecosign.state_source import DocumentNotFound, DocumentStateSource

logger = logging.getLogger(__name__)

#: How many state reads a batch makes at once.
BATCH_READS = 16
#: How long a submission waits for the document's state before admitting it unread.
READ_TIMEOUT_SECONDS = 2.0
NOT_FOUND = "no such document in EcoSign (no document_entities row has this id)"


class Admission:
    """The checks a submission passes before a flow is created."""

    def __init__(
        self, source: DocumentStateSource, *, timeout: float = READ_TIMEOUT_SECONDS
    ) -> None:
        self.source = source
        self.timeout = timeout

    async def check(self, intent: DocumentJob, *, field_prefix: str = "") -> None:
        """``InvalidJob`` naming the field if the intent cannot succeed; returns otherwise."""
        try:
            async with asyncio.timeout(self.timeout):
                state = await self.source.read(intent.document_entity_id)
        except DocumentNotFound:
            raise errors.InvalidJob(f"{field_prefix}document_entity_id", NOT_FOUND) from None
        except (CallError, TimeoutError) as exc:
            logger.warning(
                "document %s not readable at submission (%s); its flow checks it when it runs",
                intent.document_entity_id,
                exc or "timed out",
                extra={"action": "admission_unread", "document_id": intent.document_entity_id},
            )
            return
        declared = intent.declared_witness_hash
        if declared is not None and not state.has_witness(declared):
            raise errors.InvalidJob(f"{field_prefix}metadata.witness_hash", WITNESS_UNKNOWN)

    async def check_many(self, intents: Sequence[DocumentJob]) -> None:
        """Check every intent of a batch (a few reads at a time); the first refusal, in batch
        order, names its item: ``jobs.3.document_entity_id``."""
        gate = asyncio.Semaphore(BATCH_READS)

        async def one(index: int, intent: DocumentJob) -> errors.InvalidJob | None:
            async with gate:
                try:
                    await self.check(intent, field_prefix=f"jobs.{index}.")
                except errors.InvalidJob as exc:
                    return exc
                return None

        refusals = await asyncio.gather(*(one(i, intent) for i, intent in enumerate(intents)))
        first = next((r for r in refusals if r is not None), None)
        if first is not None:
            raise first
