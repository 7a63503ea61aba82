"""Job repositories: the port and its backends (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.repository.memory import MemoryRepository
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.repository.sqlite import SqliteRepository

__all__ = ["JobRepository", "MemoryRepository", "SqliteRepository", "repository_from_url"]


def repository_from_url(url: str, **options: object) -> JobRepository:
    """The backend a database URL names: ``sqlite:///path``, ``postgresql://...`` or ``memory://``."""
    if url.startswith("sqlite:///"):
        return SqliteRepository.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from ecosign_orchestrator.core.repository.postgres import PostgresRepository
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise errors.ConfigurationError(
                "PostgreSQL support needs the driver: pip install 'ecosign-orchestrator[postgres]'"
            ) from exc
        return PostgresRepository.from_url(url, **options)
    if url == "memory://":
        return MemoryRepository()
    raise errors.ConfigurationError(
        f"unsupported database URL {url.split(':', 1)[0]!r}: "
        "use sqlite:///path/jobs.db or postgresql://user:pass@host:5432/db"
    )
