"""``config show`` never prints a credential, and the log redaction knows every one."""

from __future__ import annotations

import json

import pytest

from ecosign_orchestrator.service.settings import Settings, mask_url, url_secrets


@pytest.mark.parametrize(
    ("url", "masked", "secrets"),
    [
        ("postgresql://u:p%40ss@db/x", "postgresql://u:***@db/x", ["p%40ss"]),
        ("postgresql://u:p@ss@db/x", "postgresql://u:***@db/x", ["p@ss"]),
        (
            "postgresql://u@db/x?password=hunter2&sslmode=require",
            "postgresql://u@db/x?password=***&sslmode=require",
            ["hunter2"],
        ),
        ("https://svc:edge-pass@edge.example/fn", "https://svc:***@edge.example/fn", ["edge-pass"]),
        ("http://h/x?user=a@b", "http://h/x?user=a@b", []),  # an @ in the query is no password
        ("sqlite:///./jobs.db", "sqlite:///./jobs.db", []),
    ],
)
def test_urls_are_masked_and_their_secrets_found(url: str, masked: str, secrets: list[str]) -> None:
    assert mask_url(url) == masked
    assert url_secrets(url) == secrets


def test_config_show_prints_no_credential_of_any_url() -> None:
    settings = Settings(
        database_url="postgresql://orch@db:5432/x?password=db-secret-1",
        api_url="http://cli:api-secret-2@127.0.0.1:8080",
        edge_base_url="https://svc:edge-secret-3@edge.example",
        supabase_url="https://svc:rest-secret-4@rest.example",
    )
    shown = json.dumps(settings.masked())
    for secret in ("db-secret-1", "api-secret-2", "edge-secret-3", "rest-secret-4"):
        assert secret not in shown
        assert secret in settings.secret_values()


def test_retention_defaults_keep_finished_jobs_for_weeks_and_never_means_forever() -> None:
    from datetime import timedelta

    from ecosign_orchestrator.core.status import JobStatus
    from ecosign_orchestrator.service.settings import Settings

    policy = Settings().retention()
    assert policy.keep == {
        JobStatus.COMPLETED: timedelta(days=30),
        JobStatus.FAILED: timedelta(days=90),
        JobStatus.CANCELLED: timedelta(days=30),
    }
    kept = Settings(retention_failed="never", retention_completed="2w").retention().keep
    assert kept[JobStatus.FAILED] is None and kept[JobStatus.COMPLETED] == timedelta(weeks=2)


def test_demo_kinds_run_on_sqlite_by_default_never_on_postgresql_unless_asked() -> None:
    from pydantic import SecretStr

    from ecosign_orchestrator.service.settings import Settings

    assert Settings(database_url=SecretStr("sqlite:///x.db")).with_demo_kinds
    pg = SecretStr("postgresql://u@127.0.0.1:5432/db")
    assert not Settings(database_url=pg).with_demo_kinds
    assert Settings(database_url=pg, demo_kinds=True).with_demo_kinds
    assert Settings(worker_queues="media, docs").worker_queues == ["media", "docs"]
