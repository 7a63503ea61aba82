"""Shared fixtures: repositories of every backend, a seeded random source."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ecosign_orchestrator.core.repository import JobRepository, MemoryRepository, SqliteRepository

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
