"""The CLI as a user runs it: a real process on a real SQLite file."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.procs import cli, cli_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(f"sqlite:///{tmp_path}/jobs.db")


def _jobs(env: dict[str, str]) -> list[dict[str, object]]:
    result = cli("jobs", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["jobs"]  # type: ignore[no-any-return]


def _rows(database: Path) -> int:
    """Job and event rows in the SQLite file (read directly: no CLI start-up per check)."""
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "jobs" not in tables:
            return 0
        return sum(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("jobs", "events")
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "enqueue", "no.such.kind"], "unknown job kind 'no.such.kind'"),
        (["jobs", "enqueue", "test.effect", "--payload", "{not json"], "--payload: invalid JSON"),
        (["jobs", "enqueue", "test.effect", "--payload", "[1]"], "payload: must be a JSON object"),
        (["jobs", "enqueue", "test.effect", "--payload", '{"a":1,"a":2}'], "duplicate key"),
        (["jobs", "enqueue", "test.effect", "--payload", '{"a":NaN}'], "NaN is not valid JSON"),
        (["jobs", "enqueue", "test.effect", "--delay", "-5"], "delay: must not be negative"),
        (["jobs", "show", "01a00000-0000-7000-8000-000000000000"], "no job with id"),
        (["jobs", "cancel", "missing"], "no job with id 'missing'"),
        (["jobs", "list", "--status", "sleeping"], "--status: must be one of"),
        # Numbers beyond what a store holds, and text PostgreSQL jsonb cannot store: refused on
        # every backend alike (they ended in OverflowError tracebacks, or NUL was accepted).
        (["jobs", "enqueue", "test.effect", "--priority", str(2**40)], "priority: must be between"),
        (["jobs", "enqueue", "test.effect", "--max-attempts", str(2**40)], "max_attempts: must"),
        (["jobs", "enqueue", "test.effect", "--delay", "1e12"], "delay: must be at most"),
        (["jobs", "enqueue", "test.effect", "--payload", '{"a":"x\\u0000y"}'], "NUL characters"),
        (["jobs", "enqueue", "test.effect", "--payload", '{"a":"\\ud800"}'], "lone surrogate"),
        (["jobs", "prune", "--older-than", "3x"], "--older-than: must be a duration like 30d"),
        (["jobs", "prune", "--status", "running"], "only finished jobs are pruned, not running"),
        (["worker", "--max-per-kind", "demo.sleep"], "--max-per-kind: expected KIND=N"),
    ],
)
def test_bad_input_exits_2_with_the_reason_and_writes_nothing(
    env: dict[str, str], args: list[str], message: str, tmp_path: Path
) -> None:
    result = cli(*args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split())
    assert _rows(tmp_path / "jobs.db") == 0


def test_enqueue_show_events_cancel_retry_round_trip(env: dict[str, str]) -> None:
    created = cli(
        "jobs",
        "enqueue",
        "test.effect",
        "--payload",
        '{"n": 1}',
        "--delay",
        "3600",
        "--json",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)["job"]
    assert json.loads(created.stdout)["created"] is True
    again = cli("jobs", "enqueue", "test.effect", "--dedupe-key", "k", "--json", env=env)
    same = cli("jobs", "enqueue", "test.effect", "--dedupe-key", "k", "--json", env=env)
    assert json.loads(same.stdout)["created"] is False
    assert json.loads(same.stdout)["job"]["id"] == json.loads(again.stdout)["job"]["id"]

    shown = json.loads(cli("jobs", "show", job["id"], "--json", env=env).stdout)
    assert shown["status"] == "queued" and shown["payload"] == {"n": 1}
    assert cli("jobs", "cancel", job["id"], env=env).returncode == 0
    assert (
        json.loads(cli("jobs", "show", job["id"], "--json", env=env).stdout)["status"]
        == "cancelled"
    )
    assert cli("jobs", "retry", job["id"], env=env).returncode == 0
    events = json.loads(cli("jobs", "events", job["id"], "--json", env=env).stdout)
    assert [e["type"] for e in events] == ["job_queued", "job_cancelled", "job_queued"]
    assert events[-1]["data"]["reason"] == "manual_retry"
    table = cli("jobs", "list", env=env)
    assert table.returncode == 0 and "test.effect" in table.stdout


def test_prune_deletes_finished_jobs_past_retention_and_dry_run_only_counts(
    env: dict[str, str], tmp_path: Path
) -> None:
    import asyncio

    from ecosign_orchestrator.core.job import NewJob
    from ecosign_orchestrator.core.repository import SqliteRepository

    async def seed() -> tuple[str, str]:  # one queued job, one cancelled (the CLI is under test)
        async with SqliteRepository(tmp_path / "jobs.db") as repo:
            await repo.migrate()
            kept = (await repo.enqueue(NewJob(kind="test.effect"), max_attempts=1)).job.id
            gone = (await repo.enqueue(NewJob(kind="test.effect"), max_attempts=1)).job.id
            await repo.cancel(gone)
            return kept, gone

    kept, gone = asyncio.run(seed())
    rows = _rows(tmp_path / "jobs.db")
    dry = cli("jobs", "prune", "--older-than", "0s", "--dry-run", "--json", env=env)
    assert {r["status"]: r["jobs"] for r in json.loads(dry.stdout)["pruned"]} == {
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }
    assert _rows(tmp_path / "jobs.db") == rows, "a dry run deletes nothing"
    pruned = cli("jobs", "prune", "--older-than", "0s", "--status", "cancelled", env=env)
    assert pruned.returncode == 0 and "deleted 1 cancelled jobs" in pruned.stdout
    with contextlib.closing(sqlite3.connect(tmp_path / "jobs.db")) as conn:
        left = {row[0] for row in conn.execute("SELECT id FROM jobs")}
        events = {row[0] for row in conn.execute("SELECT job_id FROM events")}
    assert left == events == {kept}, "the cancelled job went, with its events"
    assert gone not in left


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = cli_env(
        "postgresql://orch:hunter2-secret@db.example:5432/app",
        {
            "ECOSIGN_ORCH_SERVICE_KEY": "sk-very-secret-key",
            "ECOSIGN_ORCH_API_TOKENS": "tok-aaaa,tok-bbbb",
        },
    )
    result = cli("config", "show", env=env)
    assert result.returncode == 0, result.stderr
    for secret in ("hunter2-secret", "sk-very-secret-key", "tok-aaaa", "tok-bbbb"):
        assert secret not in result.stdout
    assert json.loads(result.stdout)["database_url"] == "postgresql://orch:***@db.example:5432/app"


def test_python_dash_m_and_help_work(env: dict[str, str]) -> None:
    result = cli("--help", env=env)
    assert result.returncode == 0 and "worker" in result.stdout and "jobs" in result.stdout


def test_files_and_stdin_get_the_api_limits_and_strict_utf8(
    env: dict[str, str], tmp_path: Path
) -> None:
    latin1 = tmp_path / "job.json"
    latin1.write_bytes('{"document_entity_id": "é"}'.encode("latin-1"))
    bad = cli("submit", str(latin1), env=env)
    assert bad.returncode == 2 and "DocumentJob: not valid UTF-8" in bad.stderr
    assert "Traceback" not in bad.stderr
    huge = cli("submit", "-", env=env, input='{"pad": "' + "x" * 1_100_000 + '"}')
    assert huge.returncode == 2 and "larger than 1048576 bytes" in huge.stderr
    digits = cli(
        "submit", "--document", "\u0661" * 8 + "-0f1d-4e7a-9b6c-1d2e3f4a5b6c", "--nda", env=env
    )
    assert digits.returncode == 2 and "document_entity_id: must be a UUID" in digits.stderr
    assert _rows(tmp_path / "jobs.db") == 0


def test_serve_beyond_loopback_refuses_short_tokens(tmp_path: Path) -> None:
    short = {**cli_env(f"sqlite:///{tmp_path}/jobs.db"), "ECOSIGN_ORCH_API_TOKENS": "abc"}
    result = cli("serve", "--host", "0.0.0.0", env=short)
    assert result.returncode == 2
    assert "needs 24+ characters" in " ".join(result.stderr.split())
