"""Shared fixtures: repositories of every backend, a seeded random source."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ecosign_orchestrator.core.repository import JobRepository, MemoryRepository, SqliteRepository
from tests.support.flows import FlowHarness

BACKENDS = ["memory", "sqlite"]


async def _open(backend: str, tmp_path: Path) -> JobRepository:
    repo: JobRepository
    if backend == "memory":
        repo = MemoryRepository()
    elif backend == "sqlite":
        repo = SqliteRepository(tmp_path / "jobs.db")
    else:  # pragma: no cover
        raise ValueError(backend)
    await repo.open()
    await repo.migrate()
    return repo


@pytest.fixture(params=BACKENDS)
async def repository(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[JobRepository]:
    """A fresh, migrated repository of each backend."""
    repo = await _open(request.param, tmp_path)
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
