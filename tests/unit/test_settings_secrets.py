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
        # libpq reads a raw ? (and @) inside the password as part of it: mask all of it
        ("postgresql://u:pa?ss@db/x", "postgresql://u:***@db/x", ["pa?ss"]),
        ("postgresql://u:pa?ss@db", "postgresql://u:***@db", ["pa?ss"]),
        (
            "postgresql://u:p?w@db:5432/x?sslmode=require",
            "postgresql://u:***@db:5432/x?sslmode=require",
            ["p?w"],
        ),
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


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("LEASE_SECONDS", "inf", "finite"),
        ("LEASE_SECONDS", "nan", "finite"),
        ("LEASE_SECONDS", "1e300", "less than or equal to 86400"),
        ("HEARTBEAT_SECONDS", "40", "at most half of lease_seconds"),  # lease 30 s
        ("HEARTBEAT_SECONDS", "inf", "finite"),
        ("LEASE_MARGIN_SECONDS", "25", "less than lease_seconds minus heartbeat_seconds"),
        ("BACKOFF_SCALE", "inf", "finite"),
        ("CONFIRMATION_SCALE", "1e9", "less than or equal to 1000"),
        ("EDGE_TIMEOUT_SCALE", "nan", "finite"),
        ("HTTP_SEND_TIMEOUT_SECONDS", "inf", "finite"),
        ("FFMPEG_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("EDGE_MAX_CONNECTIONS", "0", "greater than or equal to 1"),  # no request could leave
    ],
)
def test_settings_that_would_break_a_guarantee_are_refused_naming_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv(f"ECOSIGN_ORCH_{variable}", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    [error] = refused.value.errors()
    assert error["loc"] == (variable.lower(),)
    assert says in error["msg"]


def test_worker_settings_refuse_a_lease_a_live_worker_could_lose() -> None:
    from ecosign_orchestrator.core import errors
    from ecosign_orchestrator.core.worker_settings import WorkerSettings

    for bad in (
        {"lease_seconds": float("inf")},
        {"lease_seconds": 30, "heartbeat_seconds": 20},
        {"lease_seconds": 30, "lease_margin_seconds": 25},
    ):
        with pytest.raises(errors.ConfigurationError):
            WorkerSettings(**bad)  # type: ignore[arg-type]
    assert WorkerSettings(lease_seconds=30, heartbeat_seconds=15).heartbeat_every == 15


async def test_ffmpeg_jobs_have_a_default_timeout() -> None:
    from ecosign_orchestrator import ffmpeg
    from ecosign_orchestrator.service import wiring

    async with wiring.runtime(Settings()) as runtime:
        assert runtime.registry.get(ffmpeg.KIND).timeout == 3600
    async with wiring.runtime(Settings(ffmpeg_timeout_seconds=90)) as runtime:
        assert runtime.registry.get(ffmpeg.KIND).timeout == 90
