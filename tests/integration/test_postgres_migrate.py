"""``db migrate`` with the grants docs/operations.md gives, as a role that is not a superuser."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from ecosign_orchestrator.core.repository import sql
from ecosign_orchestrator.service.wiring import document_migrations
from tests.support.pgcluster import PostgresCluster
from tests.support.procs import cli, cli_env

pytestmark = pytest.mark.postgres

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
#: The engine's migrations, then the document flows' SQL (``submit_document_job``).
VERSIONS = [v for v, _ in [*sql.migrations("postgres"), *document_migrations()]]


def _documented_grants() -> list[str]:
    """The statements of the first ```sql block of docs/operations.md (comments dropped)."""
    block = re.search(r"```sql\n(.*?)```", OPERATIONS.read_text(), re.DOTALL)
    assert block is not None, "docs/operations.md has no ```sql block"
    lines = [ln for ln in block.group(1).splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_migrate_as_the_documented_role_applies_every_migration_and_says_which(
    pg_cluster: PostgresCluster,
) -> None:
    url = pg_cluster.create_database("documented_grants")
    statements = _documented_grants()
    assert any("CREATE ROLE orchestrator" in s for s in statements)
    with psycopg.connect(url, autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement.replace("'...'", "'secret'"))
        # The role is not a superuser and may not create schemas in this database.
        row = admin.execute(
            "SELECT rolsuper, has_database_privilege('orchestrator', current_database(), 'CREATE')"
            " FROM pg_roles WHERE rolname = 'orchestrator'"
        ).fetchone()
        assert row == (False, False)
    role_url = f"postgresql://orchestrator:secret@127.0.0.1:{pg_cluster.port}/documented_grants"
    env = cli_env(role_url)

    first = cli("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(VERSIONS)} migration(s)" in first.stdout
    for version in VERSIONS:
        assert version in first.stdout
    assert "***" in first.stdout and "secret" not in first.stdout  # the password is masked

    again = cli("db", "migrate", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert '"applied": []' in again.stdout

    listed = cli("jobs", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr


def test_migrate_into_a_schema_someone_else_created_with_usage_and_create(
    pg_cluster: PostgresCluster,
) -> None:
    url = pg_cluster.create_database("granted_schema")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE ROLE orch_granted LOGIN PASSWORD 'secret'")
        admin.execute("CREATE SCHEMA shared_orch")
        admin.execute("GRANT USAGE, CREATE ON SCHEMA shared_orch TO orch_granted")
    role_url = f"postgresql://orch_granted:secret@127.0.0.1:{pg_cluster.port}/granted_schema"
    env = cli_env(role_url, {"ECOSIGN_ORCH_DATABASE_SCHEMA": "shared_orch"})

    migrated = cli("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert f"applied {len(VERSIONS)} migration(s)" in migrated.stdout


def test_a_missing_schema_without_the_right_to_create_it_is_one_clear_line(
    pg_cluster: PostgresCluster,
) -> None:
    url = pg_cluster.create_database("no_grants")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE ROLE orch_nothing LOGIN PASSWORD 'secret'")
    role_url = f"postgresql://orch_nothing:secret@127.0.0.1:{pg_cluster.port}/no_grants"

    refused = cli("db", "migrate", env=cli_env(role_url))
    assert refused.returncode == 1
    assert "permission denied" in refused.stderr and "Traceback" not in refused.stderr
