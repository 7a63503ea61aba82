"""Migrations: files are ordered and applied once; a database migrated step by step matches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ecosign_orchestrator.core import ids
from ecosign_orchestrator.core.job import Job, utcnow
from ecosign_orchestrator.core.repository import SqliteRepository, codec, sql
from ecosign_orchestrator.core.repository.sqlite_sync import CODEC as SQLITE_CODEC
from ecosign_orchestrator.core.status import JobStatus


def _a_job() -> Job:
    now = utcnow()
    return Job(
        id=ids.new_job_id(),
        kind="k",
        queue="default",
        payload={},
        status=JobStatus.QUEUED,
        priority=0,
        attempts=0,
        max_attempts=1,
        run_at=now,
        created_at=now,
        updated_at=now,
    )


def test_migration_files_are_numbered_and_match_across_dialects() -> None:
    sqlite_versions = [v for v, _ in sql.migrations("sqlite")]
    postgres_versions = [v for v, _ in sql.migrations("postgres")]
    assert sqlite_versions == postgres_versions == sorted(sqlite_versions)
    assert all(v[:4].isdigit() for v in sqlite_versions)


def test_query_blocks_parse_and_cover_both_dialects() -> None:
    shared = {"find_holder", "find_idempotent", "insert_event", "renew_leases", "save_steps"}
    shared |= {"save_progress", "ids_matching", "last_event_id", "events", "list_jobs"}
    assert shared | {"load_job", "claimable"} <= set(sql.queries("sqlite"))
    assert shared | {"claim", "complete_many", "notify"} <= set(sql.queries("postgres"))
    assert sql.parse_queries("-- a --\n-- doc\nSELECT 1\n-- b --\nSELECT 2\n") == {
        "a": "SELECT 1",
        "b": "SELECT 2",
    }


def test_the_codec_writes_every_column_of_a_job_and_rewrites_only_mutable_ones() -> None:
    insert = SQLITE_CODEC.insert_job_sql("jobs")
    update = SQLITE_CODEC.update_job_sql("jobs")
    for column in codec.JOB_COLUMNS:
        assert f":{column}" in insert
    for column in codec.FIXED_COLUMNS:
        assert f"{column} =" not in update.split("WHERE")[0]
    assert update.endswith("WHERE id = :id")
    assert set(SQLITE_CODEC.job_to_row(_a_job())) == set(codec.JOB_COLUMNS)


async def test_sqlite_migrates_incrementally_to_the_same_schema(tmp_path: Path) -> None:
    first, *rest = sql.migrations("sqlite")
    stepwise = tmp_path / "stepwise.db"
    with sqlite3.connect(stepwise) as conn:
        conn.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at REAL)")
        for statement in sql.split_statements(first[1]):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (first[0],))
    async with SqliteRepository(stepwise) as old:
        assert not await old.schema_ready()
        assert await old.migrate() == [v for v, _ in rest]
        assert await old.schema_ready()
    async with SqliteRepository(tmp_path / "fresh.db") as fresh:
        await fresh.migrate()

    def schema(path: Path) -> list[tuple[str, str]]:
        with sqlite3.connect(path) as conn:
            return sorted(
                (name, " ".join(text.split()))
                for name, text in conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"
                )
            )

    assert schema(stepwise) == schema(tmp_path / "fresh.db")


def test_statements_split_at_line_ends_but_not_inside_a_function_body() -> None:
    script = (
        "-- a comment; ignored\n"
        "CREATE TABLE t (a int);\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "    PERFORM 1;\n"
        "    RETURN 2;\n"
        "END\n"
        "$$;\n"
        "CREATE INDEX t_a ON t (a);\n"
    )
    assert sql.split_statements(script) == [
        "CREATE TABLE t (a int)",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n    PERFORM 1;\n"
        "    RETURN 2;\nEND\n$$",
        "CREATE INDEX t_a ON t (a)",
    ]
    assert sql.split_statements("-- only a comment\n") == []
