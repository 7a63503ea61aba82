"""Shared fixtures: repositories of every backend, a PostgreSQL cluster, the sandbox, an RNG."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from ecosign_orchestrator.core.repository import JobRepository, MemoryRepository, SqliteRepository
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from tests.support.flows import FlowHarness
from tests.support.pgbouncer import PgBouncer, PgBouncerUnavailable
from tests.support.pgcluster import PostgresCluster, PostgresUnavailable, start_cluster

#: Fixtures defined beside their helpers.
pytest_plugins = ["tests.support.dev"]

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    # Through PgBouncer, as through Supabase's pooler: each transaction on any server connection
    # (prepared statements off by the URL's option), and one server connection per client.
    pytest.param("pgbouncer-transaction", marks=pytest.mark.postgres),
    pytest.param("pgbouncer-session", marks=pytest.mark.postgres),
]


def in_ci() -> bool:
    """``CI=true``: a missing dependency fails, it never skips."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the session. In CI a missing server fails the run."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is required in CI and could not start: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.destroy()


def _bouncer(cluster: PostgresCluster, mode: str) -> PgBouncer:
    try:
        return PgBouncer(cluster, mode)
    except PgBouncerUnavailable as exc:
        if in_ci():
            pytest.fail(f"PgBouncer is required in CI and could not start: {exc}")
        pytest.skip(f"PgBouncer unavailable: {exc}")


@pytest.fixture(scope="session")
def pgbouncers(pg_cluster: PostgresCluster) -> Iterator[Callable[[str], PgBouncer]]:
    """PgBouncer in front of the session's cluster, one per pool mode, started on first use."""
    started: dict[str, PgBouncer] = {}

    def bouncer(mode: str) -> PgBouncer:
        if mode not in started:
            started[mode] = _bouncer(pg_cluster, mode)
        return started[mode]

    try:
        yield bouncer
    finally:
        for running in started.values():
            running.stop()


@pytest.fixture
def pg_schema() -> str:
    """A fresh schema name per test (isolation without a database per test)."""
    return f"t_{uuid.uuid4().hex[:12]}"


async def _open(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> JobRepository:
    repo: JobRepository
    if backend == "memory":
        repo = MemoryRepository()
    elif backend == "sqlite":
        repo = SqliteRepository(tmp_path / "jobs.db")
    elif backend.startswith("pgbouncer-"):
        mode = backend.removeprefix("pgbouncer-")
        url = request.getfixturevalue("pgbouncers")(mode).url(pooler=mode)
        repo = PostgresRepository(url, schema=request.getfixturevalue("pg_schema"))
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        repo = PostgresRepository(cluster.url(), schema=request.getfixturevalue("pg_schema"))
    await repo.open()
    await repo.migrate()
    return repo


@pytest.fixture(params=BACKENDS)
async def repository(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[JobRepository]:
    """A fresh, migrated repository of each backend (PostgreSQL: a fresh schema)."""
    repo = await _open(request.param, tmp_path, request)
    try:
        yield repo
    finally:
        await repo.close()


@pytest.fixture
async def pg_repository(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PostgresRepository]:
    """A fresh, migrated PostgreSQL repository (its own schema) for PostgreSQL-only tests."""
    repo = await _open("postgres", tmp_path, request)
    assert isinstance(repo, PostgresRepository)
    try:
        yield repo
    finally:
        await repo.close()


@pytest.fixture
async def memory_repository() -> AsyncIterator[MemoryRepository]:
    """A fresh in-memory repository."""
    repo = MemoryRepository()
    async with repo:
        yield repo


@pytest.fixture
def rng() -> random.Random:
    """A seeded random source: deterministic backoff."""
    return random.Random(1234)


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """A real sandbox HTTP server on loopback for the whole session (reset by each harness)."""
    from tests.support.flows import sandbox_server

    with sandbox_server() as server:
        yield server.url


@pytest.fixture
async def flow(sandbox_url: str, tmp_path: Path) -> AsyncIterator[FlowHarness]:
    """Sandbox + SQLite repository + EcoSign runtime, with fast test delays."""
    from tests.support.flows import harness

    async with harness(sandbox_url, tmp_path) as h:
        yield h


@pytest.fixture(scope="session")
def ffmpeg_exe() -> str:
    """The ffmpeg the processor will use (PATH, else the imageio-ffmpeg wheel)."""
    from ecosign_orchestrator.ffmpeg import find_binaries

    return str(find_binaries().ffmpeg)


@pytest.fixture(scope="session")
def long_clip(ffmpeg_exe: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of video: at preset veryslow its transcode outlasts any test that stops it."""
    from tests.support.media import make_input

    return make_input(ffmpeg_exe, tmp_path_factory.mktemp("media") / "long.mp4", seconds=60)
