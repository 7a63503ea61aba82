"""Submitting a document flow from SQL (``submit_document_job``), in the caller's transaction:
the API's rules case by case, a rollback leaves no flow, a commit starts one a worker completes,
a trigger on a table like EcoSign's starts flows, and a role with EXECUTE only may call it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import JobStatus, NewJob
from ecosign_orchestrator.core.queue import fingerprint
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.ecosign import DocumentJob, validate_payload
from ecosign_orchestrator.ecosign.submission import KIND
from ecosign_orchestrator.service.settings import Settings
from ecosign_orchestrator.service.wiring import document_migrations, ecosign_config
from tests.support.flows import SANDBOX_KEY, SandboxAdmin
from tests.support.pgcluster import PostgresCluster
from tests.support.procs import ROOT, cli_env, eventually, start_worker, stop

pytestmark = pytest.mark.postgres

DOC = "0B6C8A5E-5d3f-4f5e-9a41-2f4b8f1a9c10"
HASH = "a" * 64


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


#: Requests the API accepts or refuses, each refused one for a single field.
CASES: list[Any] = [
    {"document_entity_id": DOC, "actions": {"protect": True}},
    {"document_entity_id": DOC, "actions": {"nda": True, "protect": False}, "forensic": {}},
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "forensic": {"tsa": True, "bitcoin": True},
        "metadata": {"custody_mode": "hash_only", "source": "cta", "deep": {"a": [1, None]}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"sign_workflow": True},
        "metadata": {"anchor_stage": "final", "step_index": 2, "witness_hash": HASH},
    },
    {"document_entity_id": DOC, "actions": {"sign_workflow": True}, "metadata": {"step_index": 1}},
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"anchor_stage": "initial", "step_index": 0, "anchor_stage_x": None},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {
            "step_inputs": {
                "encrypt_source": {
                    "encrypted_data": "QUJDRA==",
                    "metadata": {"original_name": "a.pdf", "original_mime": "application/pdf"},
                },
                "append_tsa": {"signer_id": str(uuid.UUID(int=7))},
                "build_artifact": {"artifact_version": "v2.1"},
            }
        },
    },
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": None},
    # refused
    [1, 2],
    {"actions": {"protect": True}},
    {"document_entity_id": 7, "actions": {"protect": True}},
    {"document_entity_id": "{" + DOC + "}", "actions": {"protect": True}},
    {"document_entity_id": DOC},
    {"document_entity_id": DOC, "actions": []},
    {"document_entity_id": DOC, "actions": {}},
    {"document_entity_id": DOC, "actions": {"protect": False}},
    {"document_entity_id": DOC, "actions": {"protect": "yes"}},
    {"document_entity_id": DOC, "actions": {"protect": 1}},
    {"document_entity_id": DOC, "actions": {"sign": True}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "forensic": {"tsa": "true"}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "forensic": {"ots": True}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "forensic": 3},
    {"document_entity_id": DOC, "actions": {"protect": True}, "extra": 1},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": "x"},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"anchor_stage": "x"}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"step_index": -1}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"step_index": True}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"step_index": 10001}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"witness_hash": "AB"}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"witness_hash": 5}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"a": {"b": {}}}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"d": _nest(30)}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"d": _nest(31)}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"d": _nest(40)}},
    {"document_entity_id": DOC, "actions": {"protect": True}, "metadata": {"step_inputs": []}},
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"run_tsa": {}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"append_tsa": {"witness_hash": HASH}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"append_tsa": {"signer_id": "NOT-A-UUID"}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"build_artifact": {"artifact_version": "../../x/evil"}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"build_artifact": {"artifact_version": "1\n"}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"encrypt_source": {"encrypted_data": "not base64!"}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {
            "step_inputs": {"encrypt_source": {"metadata": {"original_name": "../a/b.pdf"}}}
        },
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"create_witness": {"anything": 1}}},
    },
    {
        "document_entity_id": DOC,
        "actions": {"protect": True},
        "metadata": {"step_inputs": {"x": 1}},
    },
]


async def _migrate(url: str, schema: str) -> PostgresRepository:
    repo = PostgresRepository(url, schema=schema, migrations=document_migrations())
    await repo.open()
    await repo.migrate()
    return repo


def _python_verdict(job: Any) -> tuple[str, Any]:
    """``("ok", (payload, intent key))`` or ``("refused", field)`` as the API decides."""
    if not isinstance(job, dict):
        return "refused", "job"
    try:
        payload = validate_payload(job)
    except errors.InvalidJob as exc:
        return "refused", exc.field
    return "ok", (payload, DocumentJob.model_validate(payload).intent_key())


def _sql_verdict(conn: psycopg.Connection[Any], schema: str, job: Any) -> tuple[str, Any]:
    try:
        row = conn.execute(
            f'SELECT payload, intent_key FROM "{schema}".document_job(%s)', (Jsonb(job),)
        ).fetchone()
    except psycopg.errors.InvalidParameterValue as exc:
        return "refused", exc.diag.column_name
    assert row is not None
    return "ok", (row[0], row[1])


async def test_sql_applies_the_apis_rules_case_by_case(
    pg_cluster: PostgresCluster, pg_schema: str
) -> None:
    repo = await _migrate(pg_cluster.url(), pg_schema)
    await repo.close()
    refused = 0
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        for job in CASES:
            expected = _python_verdict(job)
            assert _sql_verdict(conn, pg_schema, job) == expected, job
            refused += expected[0] == "refused"
    assert refused >= 25  # the corpus exercises refusals, not only the happy path


async def test_the_job_budget_is_the_default_settings_one() -> None:
    """The SQL function writes the job-level attempt budget of the default step policies."""
    assert ecosign_config(Settings()).job_max_attempts() == 54


async def test_rollback_leaves_no_flow_commit_starts_one_a_worker_completes(
    pg_cluster: PostgresCluster, pg_schema: str, sandbox_url: str, tmp_path: Path
) -> None:
    repo = await _migrate(pg_cluster.url(), pg_schema)
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    doc = await admin.create_document()
    job = {"document_entity_id": doc, "actions": {"protect": True}, "forensic": {"tsa": True}}
    submit = f'SELECT "{pg_schema}".submit_document_job(%s, %s)'
    table = f'"{pg_schema}_cta"'  # the caller's own table, written in the same transaction
    try:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} (doc text)")
        with psycopg.connect(pg_cluster.url()) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (%s)", (doc,))
            row = conn.execute(submit, (Jsonb(job), "cta-1")).fetchone()
            assert row is not None
            conn.rollback()  # the caller's write and the flow go together
        assert await repo.list_jobs(limit=10) == []
        with psycopg.connect(pg_cluster.url()) as conn:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)

        with psycopg.connect(pg_cluster.url()) as conn:
            conn.execute(f"INSERT INTO {table} VALUES (%s)", (doc,))
            first = conn.execute(submit, (Jsonb(job), "cta-1")).fetchone()
            again = conn.execute(submit, (Jsonb(job), "cta-1")).fetchone()  # same key
            repeat = conn.execute(submit, (Jsonb(job), None)).fetchone()  # same intent
            conn.commit()
        assert first is not None and again == first and repeat == first
        job_id = first[0]
        events = await repo.events(job_id=job_id)
        assert [e.type.value for e in events] == ["job_queued"]

        # The API's side of the same key: the same request returns the flow SQL created.
        payload = validate_payload(job)
        new = NewJob(
            kind=KIND,
            payload=payload,
            idempotency_key="cta-1",
            fingerprint=fingerprint(KIND, payload),
            dedupe_key=DocumentJob.model_validate(payload).intent_key(),
            reuse_completed=True,
        )
        result = await repo.enqueue(new, max_attempts=54)
        assert (result.created, result.job.id) == (False, job_id)
        other = NewJob(kind=KIND, payload={**payload, "forensic": {}}, idempotency_key="cta-1")
        with pytest.raises(errors.IdempotencyConflict):
            await repo.enqueue(other, max_attempts=54)

        env = cli_env(
            pg_cluster.url(),
            {
                "ECOSIGN_ORCH_DATABASE_SCHEMA": pg_schema,
                "EDGE_BASE_URL": sandbox_url,
                "SUPABASE_URL": sandbox_url,
                "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
                "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            },
        )
        worker = start_worker(env, "--kind", "ecosign.document", log=tmp_path / "w.log")
        try:

            async def completed() -> bool:
                return (await repo.get(job_id)).status is JobStatus.COMPLETED

            await eventually(completed, timeout=60, interval=0.1, what="flow completed")
        finally:
            assert stop(worker) == 0
        done = await repo.get(job_id)
        assert isinstance(done.result, dict) and done.result["lifecycle_status"] == "protected"
        statuses = {s.name: s.status.value for s in done.steps}
        assert statuses["append_tsa"] == "succeeded"
    finally:
        await admin.aclose()
        await repo.close()


async def test_a_trigger_starts_flows_and_a_role_needs_only_execute(
    pg_cluster: PostgresCluster, pg_schema: str
) -> None:
    repo = await _migrate(pg_cluster.url(), pg_schema)
    role = f"submitter_{pg_schema}"
    doc = str(uuid.uuid4())
    try:
        with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{role}"')
            conn.execute(f'CREATE TABLE "{pg_schema}_app" (id text, wants jsonb)')
            conn.execute(f'GRANT INSERT ON "{pg_schema}_app" TO "{role}"')
            # The trigger EcoSign would add (docs/operations.md), on a stand-in table.
            conn.execute(
                f"""CREATE FUNCTION "{pg_schema}_start"() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM "{pg_schema}".submit_document_job(
                        jsonb_build_object('document_entity_id', NEW.id, 'actions', NEW.wants),
                        'request:' || NEW.id);
                    RETURN NEW;
                END $$"""
            )
            conn.execute(
                f'CREATE TRIGGER start_flow AFTER INSERT ON "{pg_schema}_app" '
                f'FOR EACH ROW EXECUTE FUNCTION "{pg_schema}_start"()'
            )
            conn.execute(f'SET ROLE "{role}"')
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    f'INSERT INTO "{pg_schema}_app" VALUES (%s, %s)',
                    (doc, Jsonb({"protect": True})),
                )
            conn.execute("RESET ROLE")
            grant = f'GRANT EXECUTE ON FUNCTION "{pg_schema}".submit_document_job'
            conn.execute(f'{grant}(jsonb, text, integer) TO "{role}"')
            conn.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{role}"')
            conn.execute(f'SET ROLE "{role}"')
            with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
                conn.execute(
                    f'INSERT INTO "{pg_schema}_app" VALUES (%s, %s)', (doc, Jsonb({"sign": True}))
                )
            assert refused.value.diag.column_name == "actions.sign"
            assert "actions.sign: Extra inputs are not permitted" in str(refused.value)
            conn.execute(
                f'INSERT INTO "{pg_schema}_app" VALUES (%s, %s)', (doc, Jsonb({"protect": True}))
            )
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f'SELECT count(*) FROM "{pg_schema}".jobs')  # EXECUTE only
            conn.execute("RESET ROLE")
            conn.execute(f'DROP TABLE "{pg_schema}_app"')
            conn.execute(f'DROP FUNCTION "{pg_schema}_start"()')
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')
        [flow] = await repo.list_jobs(limit=10)
        assert flow.payload["document_entity_id"] == doc
        assert flow.idempotency_key == f"request:{doc}"
        assert flow.dedupe_key == f"ecosign:{doc}:protect:-:custody"
    finally:
        await repo.close()


async def test_the_documented_grant_and_trigger_start_a_flow_from_ecosigns_request(
    pg_cluster: PostgresCluster,
) -> None:
    """docs/operations.md's SQL, run as written against a table shaped like EcoSign's."""
    url = pg_cluster.create_database(f"docs_{uuid.uuid4().hex[:10]}")
    repo = await _migrate(url, "orchestrator")
    await repo.close()
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("### Starting flows from SQL") :]
    grant, trigger = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)[:2]
    doc = uuid.uuid4()
    request = {
        "kind": "document.protected.requested",
        "payload": {"required_evidence": ["tsa", "polygon"], "anchor_stage": "initial"},
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE ROLE service_role")
        conn.execute("CREATE TABLE public.document_entities (id uuid PRIMARY KEY, events jsonb)")
        conn.execute(grant)
        conn.execute(trigger)
        conn.execute("INSERT INTO public.document_entities VALUES (%s, '[]')", (doc,))
        for _ in range(2):  # a replayed write of the same request starts nothing twice
            conn.execute(
                "UPDATE public.document_entities SET events = %s WHERE id = %s",
                (Jsonb([request]), doc),
            )
        rows = conn.execute("SELECT dedupe_key, idempotency_key FROM orchestrator.jobs").fetchall()
        conn.execute("DROP OWNED BY service_role")
        conn.execute("DROP ROLE service_role")
    assert rows == [(f"ecosign:{doc}:protect:tsa,polygon:custody", f"request:{doc}:1")]
