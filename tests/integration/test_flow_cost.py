"""What a 7-step document flow costs PostgreSQL in write transactions, from its submission to
its completion: a lone fast flow shares its step records' writes; flows in flight together share
their commits (group commit of step saves)."""

from __future__ import annotations

import pytest

from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.ecosign.steps import CANONICAL_ORDER, DEFAULT_FUNCTIONS
from ecosign_orchestrator.service import wiring
from tests.support.flows import FlowHarness, SandboxAdmin, flow_settings
from tests.support.waiting import wait_job

pytestmark = pytest.mark.postgres

FUNCTIONS = [DEFAULT_FUNCTIONS[step] for step in CANONICAL_ORDER]
SEVEN_STEPS = ({"protect": True}, {"tsa": True, "polygon": True, "bitcoin": True})


async def _xid(repo: PostgresRepository) -> int:
    async with repo._connection() as conn:
        cursor = await conn.execute("SELECT pg_current_xact_id()::text::bigint AS xid")
        row = await cursor.fetchone()
    assert row is not None
    return int(row["xid"])


async def _written_per_flow(
    repo: PostgresRepository, sandbox_url: str, flows: int, call_seconds: float
) -> float:
    """Transactions that wrote (only those take an id), per flow, for ``flows`` flows run
    together with every call taking ``call_seconds``."""
    settings = flow_settings(sandbox_url)
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    await admin.set_timing(polygon=0, bitcoin=0)  # anchors confirm at once: no poll
    if call_seconds:
        await admin.set_faults({f: {"latency": call_seconds, "rate": 0} for f in FUNCTIONS})
    try:
        async with wiring.runtime(settings) as rt:
            flow = FlowHarness(settings=settings, repository=repo, runtime=rt, admin=admin)
            docs = [await admin.create_document() for _ in range(flows)]
            before = await _xid(repo)
            ids = [await flow.submit(doc, *SEVEN_STEPS) for doc in docs]
            async with flow.worker(concurrency=flows):
                jobs = [await wait_job(repo, i, lambda j: j.status.is_terminal) for i in ids]
            after = await _xid(repo)
        assert all(j.status is JobStatus.COMPLETED for j in jobs), [j.last_error for j in jobs]
        assert len((await admin.ledger())["calls"]) == 7 * flows
    finally:
        await admin.aclose()
    return (after - before - 1 - flows) / flows  # each _xid takes one; each submission one


async def test_a_lone_flow_writes_its_steps_in_a_few_transactions(
    pg_repository: PostgresRepository, sandbox_url: str
) -> None:
    """Calls faster than the step records' write window: the records share writes (claim,
    one or two saves, completion)."""
    assert await _written_per_flow(pg_repository, sandbox_url, 1, 0.0) <= 5


async def test_a_lone_slow_flow_stays_within_ten_transactions_from_submission_to_completion(
    pg_repository: PostgresRepository, sandbox_url: str
) -> None:
    """Every call outlasts the write window, nothing shares a commit: the submission, the
    claim, a save per step and the completion carrying the last one."""
    written = await _written_per_flow(pg_repository, sandbox_url, 1, 0.25) + 1  # + submission
    assert written <= 10, written


async def test_flows_in_flight_together_share_their_commits(
    pg_repository: PostgresRepository, sandbox_url: str
) -> None:
    """Every call outlasts the write window, so each flow saves each step on its own (alone:
    the claim, seven saves and the completion); twenty flows together share the commits."""
    # (one commit per save would be about ten per flow)
    assert await _written_per_flow(pg_repository, sandbox_url, 20, 0.25) <= 6
